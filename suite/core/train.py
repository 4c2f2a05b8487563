"""One training run: one cell, one clip setting, one task, measured.

The loop draws a fresh batch from the task generator at every step (infinite data, as
in the literature), evaluates on one fixed validation set every ``eval_every`` steps,
and stops as soon as the task is solved. One compiled function does the whole
step: forward, loss, gradients, the pre-clip global gradient norm, whether clipping
fired, the Keras optimizer update (which does the clipping), and the window
accumulators. The host reads those accumulators only at eval points, where the
expensive diagnostic, the gradient-through-time profile ‖∂L/∂x_t‖, is computed too.
The step itself is backend code (``suite.core.steps``: TensorFlow or JAX, ``backend``); this
loop, and everything downstream of it, is the same for both.

Time-to-target counts train steps (data generation included), not evaluation,
diagnostics or logging (AlgoPerf's rule).

Example:
    >>> cfg = TrainConfig(task="adding", seq_len=10, cell="gru", max_steps=20, eval_every=10)
    >>> result = train(cfg)                              # doctest: +SKIP
    >>> result.status in ("solved", "unsolved", "diverged")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from suite.core.backend import check_backend, default_backend
from suite.core.clipping import parse_clip
from suite.core.models import check_cell
from suite.core.omega import OMEGA_CELLS
from suite.core.optim import OPTIMIZERS

DIVERGENCE_FACTOR = 1000.0  # loss above this multiple of the baseline ends the run as diverged
DATA_CHUNK = 32  # batches drawn from the generator per call (one vectorised numpy call)

SOLVED, UNSOLVED, DIVERGED = "solved", "unsolved", "diverged"


@dataclass
class TrainConfig:
    """Everything that defines one training run (its hash drives sweep resume)."""

    task: str = "adding"  # one of tasks.TASK_NAMES
    seq_len: int = 100  # T, the dependency length
    cell: str = "lstm"  # one of suite.core.models.CELLS
    clip: str = "none"  # none | clipnorm=TAU | global_clipnorm=TAU | clipvalue=TAU | normalize=TAU
    hidden: int = 128  # recurrent units (tracking.layout.DEFAULT_HIDDEN)
    batch_size: int = 64  # fresh samples per step
    optimizer: str = "adam"  # adam | rmsprop | sgd
    lr: float = 1e-3  # learning rate (Adam's default)
    momentum: float = 0.0  # SGD momentum (Pascanu et al. 2013 studied plain SGD)
    # Pascanu et al.'s vanishing-gradient regulariser weight α (0: off; simple_rnn, irnn)
    omega: float = 0.0
    max_steps: int = 2000  # hard limit on train steps
    max_seconds: float | None = None  # optional limit on training time (eval excluded)
    eval_every: int = 100  # steps between evaluations / diagnostics
    val_size: int = 1000  # fixed validation set, drawn from a separate seed
    profile_size: int = 64  # validation samples used for the ‖∂L/∂x_t‖ profile
    seed: int = 0  # seeds data, validation data (seed + 10**6) and weights
    task_options: dict = field(default_factory=dict)  # e.g. {"num_symbols": 8}
    backend: str = field(default_factory=default_backend)  # tensorflow | jax ($KERAS_BACKEND)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad value (before anything heavy runs)."""
        from tasks import get_task

        get_task(self.task, seq_len=self.seq_len, **self.task_options)
        check_cell(self.cell)
        parse_clip(self.clip)
        check_backend(self.backend)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}."
            )
        positive_ints = (
            "hidden",
            "batch_size",
            "max_steps",
            "eval_every",
            "val_size",
            "profile_size",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}.")
        if not (0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"momentum applies to --optimizer sgd only, got {self.optimizer!r}.")
        if isinstance(self.omega, bool) or not (
            isinstance(self.omega, (int, float)) and math.isfinite(self.omega) and self.omega >= 0
        ):
            raise ValueError(f"omega must be a finite number >= 0, got {self.omega!r}.")
        if self.omega and self.cell not in OMEGA_CELLS:
            raise ValueError(
                f"omega (Pascanu et al.'s regulariser) applies to {' and '.join(OMEGA_CELLS)} "
                f"only, got cell {self.cell!r}."
            )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}.")

    @property
    def clip_spec(self):
        return parse_clip(self.clip)

    @property
    def run_name(self) -> str:
        """``{task}-T{seq_len}-{cell}-{clip}[-{optimizer}][-h{hidden}]-s{seed}``, the MLflow
        run name (``tracking.layout.run_name``: the optimizer only when it is not Adam at 1e-3,
        the hidden size only when it is not the default)."""
        from tracking.layout import run_name

        return run_name(
            self.task, self.seq_len, self.cell, self.treatment, self.seed, self.optimizer_label,
            self.hidden,
        )  # fmt: skip

    @property
    def treatment(self) -> str:
        """The gradient treatment: the clip spec, ``+omega=ALPHA`` with Pascanu's regulariser."""
        from tracking.layout import treatment_label

        return treatment_label(self.clip_spec, self.omega)

    @property
    def optimizer_label(self) -> str:
        """``adam`` (Adam at lr 1e-3) or e.g. ``sgd(lr=0.01,momentum=0.9)``."""
        from tracking.layout import optimizer_label

        return optimizer_label(self.optimizer, self.lr, self.momentum)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["clip"] = str(self.clip_spec)  # canonical spelling: "clipnorm=1.0" -> "clipnorm=1"
        return d

    def config_hash(self, without: tuple[str, ...] = ()) -> str:
        """Stable hash of everything that defines the run (16 hex chars).

        The backend is part of it (a JAX run and a TensorFlow run are different results);
        TensorFlow, the original backend, is left out so earlier stores still resume.

        Args:
            without: fields left out (``("seed",)``: the key of a population).
        """
        d = self.to_dict()
        if d["backend"] == "tensorflow":
            del d["backend"]
        if not d.get("omega"):  # runs without the regulariser keep the hash they had before it
            d.pop("omega", None)
        elif isinstance(d["omega"], int):  # omega = 2 in a spec is --omega 2.0
            d["omega"] = float(d["omega"])
        for name in without:
            d.pop(name, None)
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class EvalRecord:
    """What one evaluation point measured."""

    step: int
    train_seconds: float
    metrics: dict[str, float]  # train_loss, val_loss, [val_accuracy], grad_norm(_max), ...
    profile: list[float]  # ‖∂L/∂x_t‖ for every input step t


@dataclass
class TrainResult:
    status: str  # solved | unsolved | diverged
    steps: int  # train steps run
    train_seconds: float  # time in train steps only
    steps_to_solve: int | None
    seconds_to_solve: float | None
    val_metrics: dict[str, float]
    val_loss_ratio: float  # final val loss / task baseline
    baseline_loss: float
    stop_reason: str
    history: list[EvalRecord]
    model: Any = field(repr=False, default=None)

    def summary(self) -> str:
        """One line: status, steps and seconds to solve, final val loss / baseline."""
        if self.status == SOLVED:
            head = (
                f"SOLVED in {self.steps_to_solve} steps, {self.seconds_to_solve:.1f} s of training"
            )
        elif self.status == DIVERGED:
            head = f"DIVERGED at step {self.steps} ({self.stop_reason})"
        else:
            head = f"FAIL: unsolved after {self.steps} steps, {self.train_seconds:.1f} s ({self.stop_reason})"
        extra = ""
        if "val_accuracy" in self.val_metrics:
            extra = f", val accuracy {self.val_metrics['val_accuracy']:.3f}"
        return f"{head}; val loss / baseline = {self.val_loss_ratio:.3g}{extra}"


class TrainCallbacks:
    """Hooks the training loop calls; every method is a no-op here (as in
    ``keras.callbacks.Callback``): subclass and override what you need.

    Example:
        >>> class PrintEvals(TrainCallbacks):
        ...     def on_eval(self, record):
        ...         print(record.step, record.metrics["val_loss"])
    """

    def on_start(self, config: TrainConfig, task, model) -> None:
        """The run starts: its config, task and (built, untrained) model."""

    def on_steps(self, step: int) -> None:
        """``step`` train steps are done (called once per evaluation window)."""

    def on_eval(self, record: EvalRecord) -> None:
        """An evaluation: its metrics and the ‖∂L/∂x_t‖ profile."""


class CallbackList(TrainCallbacks):
    """Several ``TrainCallbacks`` called in order (``None`` entries are skipped), as
    ``keras.callbacks.CallbackList`` does."""

    def __init__(self, callbacks) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_start(self, config, task, model) -> None:
        for c in self.callbacks:
            c.on_start(config, task, model)

    def on_steps(self, step: int) -> None:
        for c in self.callbacks:
            c.on_steps(step)

    def on_eval(self, record) -> None:
        for c in self.callbacks:
            c.on_eval(record)


def grad_decay_slope(profile: np.ndarray, task=None) -> float:
    """Slope of log10 ‖∂L/∂x_t‖ per 100 steps of distance from the loss (last step), by the
    report's rule (``tasks.gradients.decay_slope``: the positions the loss reads directly,
    copy's recall steps, cut when ``task`` is given; floored zeros left out).

    Negative = gradients shrink with distance (vanishing); ~0 = they reach far back.
    """
    from tasks.gradients import decay_slope

    return decay_slope(profile, task)


def make_optimizer(config: TrainConfig):
    import keras

    clip = config.clip_spec.optimizer_kwargs()
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.lr, **clip)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=config.lr, **clip)
    return keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum, **clip)


def make_loss(task):
    import keras

    from tasks import MSE

    if task.loss == MSE:
        return keras.losses.MeanSquaredError()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _batches(task, batch_size: int, rng: np.random.Generator):
    """Endless fresh batches, drawn ``DATA_CHUNK`` at a time in one vectorised call."""
    while True:
        x, y = task.generate(batch_size * DATA_CHUNK, rng)
        for i in range(DATA_CHUNK):
            s = slice(i * batch_size, (i + 1) * batch_size)
            yield x[s], y[s]


def train(config: TrainConfig, callbacks: TrainCallbacks | None = None, model=None) -> TrainResult:
    """Train one model and measure it.

    Args:
        config: the run's settings (validated here).
        callbacks: optional hooks for tracking and progress (see ``TrainCallbacks``).
        model: optional pre-built model (default: ``build_model`` from the config).

    Returns:
        A ``TrainResult``; divergence is a result (``status="diverged"``), not an error.
    """
    config.validate()
    from suite.core.backend import configure

    configure(backend=config.backend)
    from suite.core.models import build_model
    from suite.core.steps import make_stepper
    from tasks import get_task

    task = get_task(config.task, seq_len=config.seq_len, **config.task_options)
    baseline = task.baseline_loss
    model = model or build_model(config.cell, task, hidden=config.hidden, seed=config.seed)
    stepper = make_stepper(
        config.backend,
        model,
        task,
        make_optimizer(config),
        make_loss(task),
        config.clip_spec,
        config.omega,
    )
    data = _batches(task, config.batch_size, np.random.default_rng(config.seed))
    x_val, y_val = task.generate(config.val_size, np.random.default_rng(config.seed + 10**6))
    px, py = x_val[: config.profile_size], y_val[: config.profile_size]
    if callbacks:
        callbacks.on_start(config, task, model)

    history: list[EvalRecord] = []
    step, train_seconds = 0, 0.0
    ended: tuple[str, str] | None = None
    val: dict[str, float] = {}
    while step < config.max_steps:
        n = min(config.eval_every, config.max_steps - step)
        t0 = time.perf_counter()
        for _ in range(n):
            x, y = next(data)
            stepper.train_step(x, y)
        stepper.sync()
        train_seconds += time.perf_counter() - t0
        step += n
        if callbacks:
            callbacks.on_steps(step)

        window = stepper.read_window()
        val = stepper.evaluate(x_val, y_val)
        prof = stepper.profile(px, py)
        metrics = eval_metrics(window, val, prof, baseline, omega=config.omega > 0, task=task)
        record = EvalRecord(step, train_seconds, metrics, prof.tolist())
        history.append(record)
        if callbacks:
            callbacks.on_eval(record)
        ended = decide(config, task, record, window)
        if ended:
            break

    stepper.finish()
    return make_result(task, ended, step, train_seconds, history, val, model)


def eval_metrics(
    window, val: dict, prof: np.ndarray, baseline: float, omega: bool = False, task=None
) -> dict[str, float]:
    """The stepped metrics of one evaluation (the MLflow layout's names); ``omega`` (the
    window's mean Ω) only for runs with Pascanu et al.'s regulariser on (``omega=True``);
    ``grad_decay`` by the report's slope rule for ``task``."""
    extra = {"omega": window.omega} if omega else {}
    return {
        "train_loss": window.train_loss,
        **val,
        "grad_norm": window.grad_norm,
        "grad_norm_max": window.grad_norm_max,
        "clip_fraction": window.clip_fraction,
        "grad_decay": grad_decay_slope(prof, task),
        "val_loss_ratio": val["val_loss"] / baseline,
        **extra,
    }


def decide(config: TrainConfig, task, record: EvalRecord, window) -> tuple[str, str] | None:
    """``(status, stop_reason)`` when the run ends at this evaluation, else ``None``.

    The one rule for every loop (single runs and populations): non-finite loss, gradient
    norm or val loss, or a loss above ``DIVERGENCE_FACTOR`` x baseline: diverged; the task's
    target met: solved; training time past ``max_seconds`` with steps still left: stopped
    by the time cap (a run that used its whole step budget ended on ``max_steps``).
    """
    m, baseline = record.metrics, task.baseline_loss
    limit = DIVERGENCE_FACTOR * baseline
    bad = [k for k in ("train_loss", "val_loss", "grad_norm") if not math.isfinite(m[k])]
    if window.nonfinite or bad:
        return DIVERGED, f"non-finite {', '.join(bad) or 'loss'}"
    if m["train_loss"] > limit or m["val_loss"] > limit:
        return DIVERGED, f"loss above {DIVERGENCE_FACTOR:g}x baseline"
    if task.solved({k: v for k, v in m.items() if k.startswith("val_")}):
        return SOLVED, "solved"
    if (
        config.max_seconds is not None
        and record.train_seconds >= config.max_seconds
        and record.step < config.max_steps
    ):
        return UNSOLVED, "max_seconds reached"
    return None


def make_result(task, ended, step, train_seconds, history, val, model) -> TrainResult:
    """The ``TrainResult`` of a run that ended with ``ended`` (``None``: the step budget)."""
    status, reason = ended or (UNSOLVED, "max_steps reached")
    solved = status == SOLVED
    val_loss = val.get("val_loss", float("nan"))
    baseline = task.baseline_loss
    return TrainResult(
        status=status,
        steps=step,
        train_seconds=train_seconds,
        steps_to_solve=step if solved else None,
        seconds_to_solve=train_seconds if solved else None,
        val_metrics=val,
        val_loss_ratio=val_loss / baseline if math.isfinite(val_loss) else float("inf"),
        baseline_loss=baseline,
        stop_reason=reason,
        history=history,
        model=model,
    )
