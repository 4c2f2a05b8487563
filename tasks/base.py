"""The contract every rnnbench task follows.

A task is a synthetic long-range problem with a known trivial baseline and a
"solved" criterion (AlgoPerf style: the task owns its target). Subclasses only
implement ``_generate`` and ``_baseline``; this base class validates inputs,
evaluates predictions and decides ``solved``.

Example:
    >>> import numpy as np
    >>> from tasks import get_task
    >>> task = get_task("adding", seq_len=50)
    >>> x, y = task.generate(4, np.random.default_rng(0))
    >>> x.shape, y.shape
    ((4, 50, 2), (4,))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

# Output kinds a model builder must support.
PER_STEP_CLASS = "per_step_class"  # one class prediction per input step (copy)
FINAL_CLASS = "final_class"  # one class prediction read at the last step
FINAL_SCALAR = "final_scalar"  # one real value read at the last step

MSE = "mse"
CROSSENTROPY = "sparse_categorical_crossentropy"


@dataclass(frozen=True)
class Task:
    """Base class of the synthetic tasks.

    Args:
        seq_len: T, the length of the dependency the task tests (see each task for
            how it maps to the input length ``length``).
    """

    name: ClassVar[str] = "task"
    min_seq_len: ClassVar[int] = 1
    output_kind: ClassVar[str] = FINAL_SCALAR
    loss: ClassVar[str] = MSE
    description: ClassVar[str] = ""

    seq_len: int = 100
    # Evaluation keys this task's `solved` looks at, filled by subclasses.
    solved_metric: ClassVar[str] = "loss"
    solved_threshold: ClassVar[float] = 0.0
    # Options added after stores existed: a config leaves them out of its task_options (and
    # so of its hash) while they hold their default (see ``tasks.canonical_options``).
    implicit_defaults: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, (int, np.integer)):
            raise TypeError(
                f"seq_len must be an integer, got {self.seq_len!r} ({type(self.seq_len).__name__})."
            )
        if self.seq_len < self.min_seq_len:
            raise ValueError(
                f"Task '{self.name}' needs seq_len >= {self.min_seq_len}, got seq_len={self.seq_len}."
            )

    # ----- metadata a model builder needs -------------------------------------------------
    @property
    def length(self) -> int:
        """Number of input (and, for per-step tasks, output) time steps."""
        return self.seq_len

    @property
    def input_dim(self) -> int:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of output classes (0 for regression tasks)."""
        return 0

    @property
    def output_dim(self) -> int:
        """Width of the model's output head (classes, or 1 for a scalar)."""
        return self.num_classes if self.num_classes else 1

    @property
    def options(self) -> dict:
        """Task options beyond ``seq_len`` (e.g. ``{"num_symbols": 8}``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "seq_len"}

    @property
    def baseline_loss(self) -> float:
        """Loss of the best input-independent predictor."""
        return float(self._baseline())

    @property
    def solved_when(self) -> str:
        """Human-readable solved criterion, e.g. ``"val accuracy >= 0.99"``."""
        op = "<=" if self.solved_metric == "loss" else ">="
        return f"val {self.solved_metric} {op} {self.solved_threshold:g}"

    def describe(self) -> dict:
        """JSON-friendly summary (the row of ``rnnbench tasks``)."""
        return {
            "name": self.name,
            "seq_len": int(self.seq_len),
            "input_length": int(self.length),
            "input_dim": int(self.input_dim),
            "output_kind": self.output_kind,
            "num_classes": int(self.num_classes),
            "loss": self.loss,
            "baseline_loss": self.baseline_loss,
            "solved_when": self.solved_when,
            "options": dict(self.options),
            "description": self.description,
        }

    # ----- data -----------------------------------------------------------------------------
    def generate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` fresh samples.

        Args:
            n: number of samples, >= 1.
            rng: a ``numpy.random.Generator`` (e.g. ``np.random.default_rng(seed)``);
                the same generator state gives byte-identical arrays.

        Returns:
            ``(x, y)``: ``x`` float32 ``[n, length, input_dim]``; ``y`` int64 class ids
            (``[n, length]`` per step or ``[n]`` final) or float32 ``[n]`` for regression.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got n={n!r}.")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                "rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
                f"got {type(rng).__name__}."
            )
        return self._generate(int(n), rng)

    def _generate(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _baseline(self) -> float:
        raise NotImplementedError

    # ----- evaluation ---------------------------------------------------------------------
    def evaluate(self, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        """Task metrics of predictions, computed in numpy (no TensorFlow).

        Args:
            y: targets as returned by :meth:`generate`.
            pred: model outputs: logits ``[..., num_classes]`` for classification
                tasks (the models output unnormalised logits), values ``[n]`` or
                ``[n, 1]`` for regression.

        Returns:
            ``{"loss": ...}`` plus ``"accuracy"`` for classification tasks.
        """
        pred = np.asarray(pred, dtype=np.float64)
        if self.num_classes == 0:
            pred = pred.reshape(len(y))
            return {"loss": float(np.mean((pred - np.asarray(y, np.float64)) ** 2))}
        logp = _log_softmax(pred)
        nll = -np.take_along_axis(logp, np.asarray(y)[..., None], axis=-1)[..., 0]
        hit = pred.argmax(-1) == y
        return {"loss": float(nll.mean()), "accuracy": float(self._accuracy(hit))}

    def _accuracy(self, hit: np.ndarray) -> float:
        return hit.mean()

    def solved(self, metrics: dict) -> bool:
        """Whether validation metrics meet the task's target.

        Args:
            metrics: a dict with ``"loss"``/``"accuracy"`` (or ``"val_loss"``/
                ``"val_accuracy"``), e.g. the output of :meth:`evaluate`.
        """
        key = self.solved_metric
        value = metrics.get(key, metrics.get(f"val_{key}"))
        if value is None:
            raise KeyError(
                f"Task '{self.name}' decides 'solved' from '{key}' (or 'val_{key}'); "
                f"got metrics with keys {sorted(metrics)}."
            )
        value = float(value)
        if not math.isfinite(value):
            return False
        if key == "loss":
            return value <= self.solved_threshold
        return value >= self.solved_threshold


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def one_hot(ids: np.ndarray, depth: int) -> np.ndarray:
    """float32 one-hot encoding of an integer array (vectorised)."""
    return np.eye(depth, dtype=np.float32)[ids]
