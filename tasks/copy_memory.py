"""Copy memory (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016).

Alphabet of 10 classes: 0 blank, 1..8 data symbols, 9 delimiter. The input (length
T + 20) shows 10 random data symbols, T - 1 blanks, the delimiter, then 10 blanks;
the target is T + 10 blanks followed by the 10 data symbols. A model that outputs
blanks and then guesses uniformly among the 8 symbols scores 10·ln 8 / (T + 20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tasks.base import CROSSENTROPY, PER_STEP_CLASS, Task, one_hot

BLANK = 0
DELIMITER = 9
N_CLASSES = 10  # blank, 8 data symbols, delimiter
N_COPY = 10  # symbols to memorise


@dataclass(frozen=True)
class CopyTask(Task):
    """Copy memory with a delay of ``seq_len`` blanks (input length T + 20, T >= 1).

    Accuracy (and ``solved``) is measured on the 10 recall positions only; the loss is
    per-step cross-entropy over all T + 20 steps, as in Arjovsky et al. 2016.

    Example:
        >>> import numpy as np
        >>> x, y = CopyTask(seq_len=5).generate(1, np.random.default_rng(0))
        >>> x.shape, y.shape
        ((1, 25, 10), (1, 25))
    """

    name: ClassVar[str] = "copy"
    min_seq_len: ClassVar[int] = 1
    output_kind: ClassVar[str] = PER_STEP_CLASS
    loss: ClassVar[str] = CROSSENTROPY
    description: ClassVar[str] = "reproduce 10 symbols after a delay of T blanks"
    solved_metric: ClassVar[str] = "accuracy"
    solved_threshold: ClassVar[float] = 0.99  # on the 10 recall positions

    @property
    def length(self) -> int:
        return self.seq_len + 2 * N_COPY

    @property
    def input_dim(self) -> int:
        return N_CLASSES

    @property
    def num_classes(self) -> int:
        return N_CLASSES

    @property
    def recall_slice(self) -> slice:
        """The output positions that must reproduce the data symbols."""
        return slice(self.length - N_COPY, self.length)

    def _baseline(self) -> float:
        return N_COPY * math.log(8) / self.length

    def _generate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        L = self.length
        data = rng.integers(1, 9, size=(n, N_COPY))
        ids = np.zeros((n, L), dtype=np.int64)
        ids[:, :N_COPY] = data
        ids[:, self.seq_len + N_COPY - 1] = DELIMITER
        y = np.zeros((n, L), dtype=np.int64)
        y[:, self.recall_slice] = data
        return one_hot(ids, N_CLASSES), y

    def _accuracy(self, hit: np.ndarray) -> float:
        return hit[:, self.recall_slice].mean()
