"""Copy memory (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016).

With the defaults (``num_recall = 10`` symbols from an ``alphabet`` of 8) there are 10
classes: 0 blank, 1..8 data symbols, 9 delimiter. The input (length T + 20) shows 10 random
data symbols, T - 1 blanks, the delimiter, then 10 blanks; the target is T + 10 blanks
followed by the 10 data symbols. A model that outputs blanks and then guesses uniformly
among the 8 symbols scores 10·ln 8 / (T + 20).

In general (the variants of Henaff et al. 2016 and of the TCN benchmark, Bai et al. 2018)
with R = ``num_recall`` symbols from an alphabet of A: A + 2 classes (0 blank, 1..A data
symbols, A + 1 delimiter), input length T + 2R, baseline R·ln A / (T + 2R), and accuracy on
the last R positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tasks.base import CROSSENTROPY, PER_STEP_CLASS, Task, one_hot

BLANK = 0
DELIMITER = 9  # the delimiter's class with the default alphabet (alphabet + 1 in general)
N_CLASSES = 10  # blank, 8 data symbols, delimiter (the defaults)
N_COPY = 10  # symbols to memorise (the default num_recall)
ALPHABET = 8  # data symbols (the default alphabet)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {name}={value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value}.")


@dataclass(frozen=True)
class CopyTask(Task):
    """Copy memory with a delay of ``seq_len`` blanks (input length T + 2R, T >= 1).

    Accuracy (and ``solved``) is measured on the R recall positions only; the loss is
    per-step cross-entropy over all T + 2R steps, as in Arjovsky et al. 2016.

    Args:
        seq_len: T, the blanks between the last data symbol and the end of the delay
            (the delimiter is the last of them).
        num_recall: R, symbols to memorise and recall (>= 1; default 10).
        alphabet: A, how many distinct data symbols (>= 2; default 8).

    Example:
        >>> import numpy as np
        >>> x, y = CopyTask(seq_len=5).generate(1, np.random.default_rng(0))
        >>> x.shape, y.shape
        ((1, 25, 10), (1, 25))
        >>> x, y = CopyTask(seq_len=5, num_recall=3, alphabet=4).generate(1, np.random.default_rng(0))
        >>> x.shape, y.shape
        ((1, 11, 6), (1, 11))
    """

    name: ClassVar[str] = "copy"
    min_seq_len: ClassVar[int] = 1
    output_kind: ClassVar[str] = PER_STEP_CLASS
    loss: ClassVar[str] = CROSSENTROPY
    description: ClassVar[str] = "reproduce R symbols (default 10) after a delay of T blanks"
    solved_metric: ClassVar[str] = "accuracy"
    solved_threshold: ClassVar[float] = 0.99  # on the recall positions
    # Options added after stores existed: left out of a config's task_options (and so of its
    # hash) when at their default, so earlier copy runs keep their hashes.
    implicit_defaults: ClassVar[tuple[str, ...]] = ("num_recall", "alphabet")

    num_recall: int = N_COPY  # R symbols to memorise and recall
    alphabet: int = ALPHABET  # A data symbols; ln 8 per recalled symbol at the baseline

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_int("num_recall", self.num_recall, 1)
        _check_int("alphabet", self.alphabet, 2)

    @property
    def delimiter(self) -> int:
        """The delimiter's class id (alphabet + 1)."""
        return self.alphabet + 1

    @property
    def length(self) -> int:
        return self.seq_len + 2 * self.num_recall

    @property
    def input_dim(self) -> int:
        return self.alphabet + 2

    @property
    def num_classes(self) -> int:
        return self.alphabet + 2

    @property
    def recall_slice(self) -> slice:
        """The output positions that must reproduce the data symbols (the last R)."""
        return slice(self.length - self.num_recall, self.length)

    def _baseline(self) -> float:
        return self.num_recall * math.log(self.alphabet) / self.length

    def _generate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        L, R = self.length, self.num_recall
        data = rng.integers(1, self.alphabet + 1, size=(n, R))
        ids = np.zeros((n, L), dtype=np.int64)
        ids[:, :R] = data
        ids[:, self.seq_len + R - 1] = self.delimiter
        y = np.zeros((n, L), dtype=np.int64)
        y[:, self.recall_slice] = data
        return one_hot(ids, self.num_classes), y

    def _accuracy(self, hit: np.ndarray) -> float:
        return hit[:, self.recall_slice].mean()
