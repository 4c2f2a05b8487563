"""Temporal order (Hochreiter & Schmidhuber 1997, experiment 6a; Pascanu, Mikolov & Bengio 2013).

Every step shows a one-hot symbol. All steps but two show a random distractor (a, b, c, d
with the defaults); one step t1 in [T/10, 2T/10] and one step t2 in [4T/10, 5T/10] show a
relevant symbol, X or Y, each drawn independently and uniformly. The target, read at the
last step, is their order: XX = 0, XY = 1, YX = 2, YY = 3. The four classes are equally
likely, so the best input-independent predictor (uniform) scores cross-entropy ln 4.

As in Pascanu et al.'s version (6 inputs with the defaults) the sequence carries no start /
end markers (the original's B and E): the readout is always the last step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tasks.base import CROSSENTROPY, FINAL_CLASS, Task, one_hot

X, Y = 0, 1  # symbol ids of the relevant symbols; distractors are 2 .. num_distractors + 1


@dataclass(frozen=True)
class TemporalOrderTask(Task):
    """Classify the order of X/Y at two random steps among distractors (T >= 10).

    The relevant steps (0-indexed) are t1 uniform in ``ceil(T/10) .. floor(2T/10)`` and t2
    uniform in ``ceil(4T/10) .. floor(5T/10)`` (both ranges inclusive; non-empty and
    t1 < t2 for every T >= 10). Input ids: 0 = X, 1 = Y, 2 .. D + 1 the D distractors.

    Args:
        seq_len: T, total steps (the readout is the last of them).
        num_distractors: D, how many distinct distractor symbols (>= 1; default 4, the
            original's a, b, c, d); the input width is D + 2.

    Example:
        >>> import numpy as np
        >>> x, y = TemporalOrderTask(seq_len=10).generate(3, np.random.default_rng(0))
        >>> x.shape, y.shape, (x.argmax(-1) < 2).sum(axis=1).tolist()
        ((3, 10, 6), (3,), [2, 2, 2])
    """

    name: ClassVar[str] = "temporal_order"
    min_seq_len: ClassVar[int] = 10
    output_kind: ClassVar[str] = FINAL_CLASS
    loss: ClassVar[str] = CROSSENTROPY
    description: ClassVar[str] = "order (XX/XY/YX/YY) of two symbols hidden among distractors"
    solved_metric: ClassVar[str] = "accuracy"
    solved_threshold: ClassVar[float] = 0.99  # < 1 % errors, the original's success rule

    num_distractors: int = 4  # D distractor symbols (a, b, c, d in the original)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.num_distractors, bool) or not isinstance(
            self.num_distractors, (int, np.integer)
        ):
            raise TypeError(
                f"num_distractors must be an integer >= 1, got {self.num_distractors!r}."
            )
        if self.num_distractors < 1:
            raise ValueError(
                f"num_distractors must be >= 1, got num_distractors={self.num_distractors}."
            )

    @property
    def input_dim(self) -> int:
        return self.num_distractors + 2  # X, Y, D distractors

    @property
    def num_classes(self) -> int:
        return 4  # XX, XY, YX, YY

    @property
    def first_range(self) -> tuple[int, int]:
        """Inclusive range of t1: ``(ceil(T/10), floor(2T/10))``."""
        T = self.seq_len
        return -(-T // 10), (2 * T) // 10

    @property
    def second_range(self) -> tuple[int, int]:
        """Inclusive range of t2: ``(ceil(4T/10), floor(5T/10))``."""
        T = self.seq_len
        return -(-4 * T // 10), (5 * T) // 10

    def _baseline(self) -> float:
        return math.log(4)

    def _generate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        T, D = self.seq_len, self.num_distractors
        (lo1, hi1), (lo2, hi2) = self.first_range, self.second_range
        ids = rng.integers(2, D + 2, size=(n, T))
        t1 = rng.integers(lo1, hi1 + 1, size=n)
        t2 = rng.integers(lo2, hi2 + 1, size=n)
        sym = rng.integers(0, 2, size=(n, 2))  # X = 0, Y = 1
        rows = np.arange(n)
        ids[rows, t1] = sym[:, 0]
        ids[rows, t2] = sym[:, 1]
        y = (2 * sym[:, 0] + sym[:, 1]).astype(np.int64)  # XX 0, XY 1, YX 2, YY 3
        return one_hot(ids, D + 2), y
