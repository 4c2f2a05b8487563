"""The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

Each step carries a value uniform in [0, 1) and a marker bit. Exactly two steps are
marked, one uniformly placed in each half of the sequence; the target is the sum of
the two marked values, read at the last step. Predicting 1.0 always gives MSE 1/6
(the variance of a sum of two U(0, 1)), the baseline a model must beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tasks.base import FINAL_SCALAR, MSE, Task


@dataclass(frozen=True)
class AddingTask(Task):
    """Adding problem of length ``seq_len`` (T >= 2: one marker per half).

    Example:
        >>> import numpy as np
        >>> x, y = AddingTask(seq_len=10).generate(2, np.random.default_rng(0))
        >>> x.shape, x[..., 1].sum(axis=1).tolist()
        ((2, 10, 2), [2.0, 2.0])
    """

    name: ClassVar[str] = "adding"
    min_seq_len: ClassVar[int] = 2
    output_kind: ClassVar[str] = FINAL_SCALAR
    loss: ClassVar[str] = MSE
    description: ClassVar[str] = "sum of the two marked values (one marker per half)"
    solved_metric: ClassVar[str] = "loss"
    solved_threshold: ClassVar[float] = 0.01  # val MSE, Le et al. 2015 use a similar bar

    @property
    def input_dim(self) -> int:
        return 2  # value channel, marker channel

    def _baseline(self) -> float:
        return 1.0 / 6.0  # Var(U1 + U2) = 2/12: MSE of predicting the mean 1.0

    def _generate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        T = self.seq_len
        half = T // 2
        values = rng.random((n, T), dtype=np.float32)
        first = rng.integers(0, half, size=n)
        second = rng.integers(half, T, size=n)
        markers = np.zeros((n, T), dtype=np.float32)
        rows = np.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = np.stack([values, markers], axis=-1)
        y = (values[rows, first] + values[rows, second]).astype(np.float32)
        return x, y
