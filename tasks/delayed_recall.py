"""Delayed recall: remember the first symbol through T - 2 distractors.

Step 0 shows a signal symbol in 0..K-1; steps 1..T-2 show distractors drawn
uniformly from the same K symbols (noise the model must ignore); the last step shows
a query marker. The target is the signal symbol, read at the last step. Guessing
uniformly gives cross-entropy ln K. With ``distractors=False`` the delay is blank
(all-zero inputs), the easier variant in which memory must only be kept, not guarded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tasks.base import CROSSENTROPY, FINAL_CLASS, Task


@dataclass(frozen=True)
class DelayedRecallTask(Task):
    """Recall the step-0 symbol at step T - 1 (T counts every step, T >= 2).

    Args:
        seq_len: T, total steps including the signal and the query.
        num_symbols: K, the alphabet size (>= 2).
        distractors: draw the delay's symbols from the K signals (True) or leave it blank.

    Example:
        >>> import numpy as np
        >>> x, y = DelayedRecallTask(seq_len=6).generate(3, np.random.default_rng(0))
        >>> x.shape, y.shape, x[:, -1, -1].tolist()
        ((3, 6, 9), (3,), [1.0, 1.0, 1.0])
    """

    name: ClassVar[str] = "delayed_recall"
    min_seq_len: ClassVar[int] = 2
    output_kind: ClassVar[str] = FINAL_CLASS
    loss: ClassVar[str] = CROSSENTROPY
    description: ClassVar[str] = "recall the first symbol through T-2 distractors"
    solved_metric: ClassVar[str] = "accuracy"
    solved_threshold: ClassVar[float] = 0.99

    num_symbols: int = 8  # K symbols to recall; ln 8 = 2.0794 baseline
    distractors: bool = True  # noise from the signal alphabet (the harder variant)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.num_symbols, bool) or not isinstance(
            self.num_symbols, (int, np.integer)
        ):
            raise TypeError(f"num_symbols must be an integer >= 2, got {self.num_symbols!r}.")
        if self.num_symbols < 2:
            raise ValueError(f"num_symbols must be >= 2, got num_symbols={self.num_symbols}.")
        if not isinstance(self.distractors, (bool, np.bool_)):
            raise TypeError(f"distractors must be true or false, got {self.distractors!r}.")

    @property
    def input_dim(self) -> int:
        return self.num_symbols + 1  # K symbols + the query marker

    @property
    def num_classes(self) -> int:
        return self.num_symbols

    def _baseline(self) -> float:
        return math.log(self.num_symbols)

    def _generate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        T, K = self.seq_len, self.num_symbols
        signal = rng.integers(0, K, size=n)
        ids = np.full((n, T), -1, dtype=np.int64)  # -1 = blank (all-zero input)
        ids[:, 0] = signal
        if self.distractors and T > 2:
            ids[:, 1 : T - 1] = rng.integers(0, K, size=(n, T - 2))
        ids[:, T - 1] = K  # query marker
        x = np.eye(K + 1, dtype=np.float32)[np.where(ids < 0, 0, ids)]
        x[ids < 0] = 0.0
        return x, signal.astype(np.int64)
