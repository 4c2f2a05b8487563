"""The train step: one interface, one implementation per Keras backend.

``train()`` (``suite.core.train``) drives a :class:`Stepper` and never touches backend code:

    train_step(x, y)   one optimizer step on a batch; no host sync (results stay on device)
    sync()             wait for the queued steps (the loop's timer stops after it)
    read_window()      the :class:`Window` since the last read, then reset it
    evaluate(x, y)     the task's validation metrics (``val_`` prefixed)
    profile(x, y)      ‖∂L/∂x_t‖ for every input step t (numpy, [time])
    finish()           leave the trained weights in the Keras model (for logging/export)

Implementations: ``tf_step.TFStepper`` (``tf.function`` + ``GradientTape``) and
``jax_step.JaxStepper`` (Keras's stateless API in one ``jax.jit``). Both let the Keras
optimizer clip exactly as configured and measure the same things. What Keras has no
argument for is done here, once, with backend ops, before the optimizer applies: the
``normalize=TAU`` rescale (:func:`treat_grads`) and Pascanu et al.'s regulariser
(``suite.core.omega``, added to the recurrent kernel's gradient first).

Example:
    >>> stepper = make_stepper("jax", model, task, optimizer, loss_fn, clip)  # doctest: +SKIP
    >>> stepper.train_step(x, y); stepper.read_window().steps                 # doctest: +SKIP
    1
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

# Names of the window accumulators, in the order both implementations keep them.
WINDOW_FIELDS = (
    "steps",  # train steps in the window
    "grad_norm_sum",  # sum of pre-clip global gradient norms
    "grad_norm_max",  # largest pre-clip global gradient norm
    "clipped_steps",  # steps on which the configured clipping changed the gradients
    "loss_sum",  # sum of train losses
    "last_loss",  # the window's last train loss
    "nonfinite",  # 1 if any step had a non-finite loss or gradient norm
    "omega_sum",  # sum of Pascanu et al.'s regulariser Omega (0 when it is off)
)


@dataclass
class Window:
    """What the train steps since the last evaluation measured (read once per evaluation)."""

    steps: float = 0.0
    grad_norm_sum: float = 0.0
    grad_norm_max: float = 0.0
    clipped_steps: float = 0.0
    loss_sum: float = 0.0
    last_loss: float = 0.0
    nonfinite: float = 0.0
    omega_sum: float = 0.0

    @classmethod
    def from_values(cls, values) -> Window:
        a = np.asarray(values, dtype=np.float64)
        return cls(**{f.name: float(a[i]) for i, f in enumerate(fields(cls))})

    @property
    def grad_norm(self) -> float:
        return self.grad_norm_sum / max(self.steps, 1.0)

    @property
    def clip_fraction(self) -> float:
        return self.clipped_steps / max(self.steps, 1.0)

    @property
    def train_loss(self) -> float:
        return self.loss_sum / max(self.steps, 1.0)

    @property
    def omega(self) -> float:
        return self.omega_sum / max(self.steps, 1.0)


def update_window(ops, acc: dict, loss, gnorm, fired, omega=0.0) -> dict:
    """The accumulators after one step, written once with backend ``ops`` (``keras.ops``
    semantics: ``maximum``, ``cast``, ``isfinite``, ``logical_and``); ``omega`` is the
    step's regulariser value (``suite.core.omega``; 0 when it is off)."""
    finite = ops.cast(ops.logical_and(ops.isfinite(loss), ops.isfinite(gnorm)), "float32")
    return {
        "steps": acc["steps"] + 1.0,
        "grad_norm_sum": acc["grad_norm_sum"] + gnorm,
        "grad_norm_max": ops.maximum(acc["grad_norm_max"], gnorm),
        "clipped_steps": acc["clipped_steps"] + ops.cast(fired, "float32"),
        "loss_sum": acc["loss_sum"] + loss,
        "last_loss": ops.cast(loss, "float32"),
        "nonfinite": ops.maximum(acc["nonfinite"], 1.0 - finite),
        "omega_sum": acc["omega_sum"] + ops.cast(omega, "float32"),
    }


NORMALIZE_RTOL = 1e-6  # normalize=TAU "changed" the gradient when |norm - TAU| > this x TAU


def clip_fired(ops, kind: str, tau: float | None, grads, gnorm):
    """Whether the configured clipping (the Keras optimizer's, or :func:`treat_grads`'s
    ``normalize``) changes these (pre-clip) gradients."""
    if kind == "normalize":  # every step but those already at norm TAU (or exactly zero)
        return ops.logical_and(gnorm > 0, ops.abs(gnorm - tau) > NORMALIZE_RTOL * tau)
    if kind == "global_clipnorm":
        return gnorm > tau
    if kind == "clipnorm":
        return ops.any(ops.stack([ops.sqrt(ops.sum(ops.square(g))) > tau for g in grads]))
    if kind == "clipvalue":
        return ops.any(ops.stack([ops.max(ops.abs(g)) > tau for g in grads]))
    return ops.convert_to_tensor(False)


def global_norm(ops, grads):
    return ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))


def normalize_grads(ops, grads, gnorm, tau: float) -> list:
    """``grads`` rescaled jointly to global norm exactly ``tau`` (``gnorm``: their global
    norm); a zero gradient stays zero (the division is guarded)."""
    positive = gnorm > 0
    scale = ops.where(positive, tau / ops.where(positive, gnorm, 1.0), 0.0)
    return [g * ops.cast(scale, g.dtype) for g in grads]


def treat_grads(ops, kind: str, tau: float | None, grads, gnorm) -> list:
    """The gradients the optimizer gets: rescaled for ``normalize=TAU``, else unchanged
    (the Keras kinds clip inside the optimizer)."""
    if kind == "normalize":
        return normalize_grads(ops, grads, gnorm, tau)
    return list(grads)


class Stepper(Protocol):
    def train_step(self, x: np.ndarray, y: np.ndarray) -> None: ...
    def sync(self) -> None: ...
    def read_window(self) -> Window: ...
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]: ...
    def profile(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...
    def finish(self) -> None: ...


def make_stepper(backend: str, model, task, optimizer, loss_fn, clip, omega=0.0) -> Stepper:
    """The stepper for ``backend`` (``tensorflow`` or ``jax``), built for this model
    (``omega``: the weight α of Pascanu et al.'s regulariser, ``suite.core.omega``; 0: off)."""
    if backend == "jax":
        from suite.core.steps.jax_step import JaxStepper

        return JaxStepper(model, task, optimizer, loss_fn, clip, omega)
    from suite.core.steps.tf_step import TFStepper

    return TFStepper(model, task, optimizer, loss_fn, clip, omega)


def evaluate_in_chunks(task, predict, x, y, chunk: int = 500) -> dict[str, float]:
    """Validation metrics of ``predict`` (numpy in, numpy out) over ``x`` in chunks."""
    preds = [np.asarray(predict(x[i : i + chunk])) for i in range(0, len(x), chunk)]
    m = task.evaluate(y, np.concatenate(preds))
    return {f"val_{k}": v for k, v in m.items()}


def profile_loss(task, loss_fn, compute_loss, y, pred):
    """The loss the ‖∂L/∂x_t‖ profile differentiates: copy's recall positions only."""
    from tasks import PER_STEP_CLASS

    if task.output_kind == PER_STEP_CLASS and hasattr(task, "recall_slice"):
        s = task.recall_slice
        return loss_fn(y[:, s.start : s.stop], pred[:, s.start : s.stop])
    return compute_loss(y, pred)
