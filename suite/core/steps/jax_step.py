"""The JAX train step: Keras's stateless API inside one ``jax.jit``.

``model.stateless_call`` + ``jax.value_and_grad`` + ``optimizer.stateless_apply`` (which
clips exactly as the Keras optimizer is configured; ``normalize`` and Pascanu et al.'s
regulariser are applied to the gradients just before it), with the window accumulators carried
in the jitted state as a dict of named scalars. Steps are dispatched asynchronously; the
host waits only in ``sync()`` (end of a timed window) and reads the window at evaluations.
The trained values go back into the Keras variables in ``finish()``.

:func:`member_functions` holds the pure per-model functions; :class:`JaxStepper` jits them
for one model, ``suite.core.population`` vmaps them over many.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from suite.core.steps import (
    WINDOW_FIELDS,
    Window,
    clip_fired,
    evaluate_in_chunks,
    global_norm,
    profile_loss,
    treat_grads,
    update_window,
)


def member_functions(model, task, optimizer, loss_fn, clip, omega=0.0) -> SimpleNamespace:
    """Pure functions of one model's state: ``step(state, x, y) -> state``,
    ``predict(tv, ntv, x)``, ``profile(tv, ntv, x, y) -> ‖∂L/∂x_t‖``.

    ``model`` and ``optimizer`` only give the computation (their variables are not read):
    any model built by ``build_model`` with the same cell, task and hidden size shares it.
    ``omega``: the weight α of Pascanu et al.'s regulariser (``suite.core.omega``; 0: off).
    """
    import jax
    import jax.numpy as jnp
    import keras

    from suite.core.models import use_generic_gru_loop_on_jax_cpu
    from tasks import FINAL_SCALAR

    ops = keras.ops
    use_generic_gru_loop_on_jax_cpu(model)  # before tracing: the loop is chosen at call time
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    scalar = task.output_kind == FINAL_SCALAR

    def compute_loss(y, pred):
        if scalar:
            pred = jnp.reshape(pred, (-1,))
        return loss_fn(y, pred)

    def loss_and_state(tv, ntv, x, y):
        pred, ntv = model.stateless_call(tv, ntv, x, training=True)
        return compute_loss(y, pred), ntv

    grad_fn = jax.value_and_grad(loss_and_state, has_aux=True)
    if omega:
        from suite.core import omega as om

        layout = om.omega_layout(model, task)

        def regulariser(tv, x, y):
            """Ω and α ∂Ω/∂U, with δ = ∂L/∂e through the manual forward."""

            def loss_of_e(e):
                pred, hs = om.forward(tv, layout, x, e)
                return compute_loss(y, pred), hs

            e = om.zero_perturbation(tv, layout, x)
            delta, hs = jax.grad(loss_of_e, has_aux=True)(e)
            value, d_u = om.omega_and_grad(delta, hs, tv[layout.recurrent], layout.activation)
            return value, omega * d_u

    def step(state, x, y):
        (loss, ntv), grads = grad_fn(state["trainable"], state["non_trainable"], x, y)
        omega_value = 0.0
        if omega:  # added before clipping: the pre-clip grad_norm is the norm of the sum
            omega_value, d_u = regulariser(state["trainable"], x, y)
            grads = list(grads)
            grads[layout.recurrent] = grads[layout.recurrent] + d_u
        gnorm = global_norm(jnp, grads)
        fired = clip_fired(ops, clip.kind, clip.tau, grads, gnorm)
        grads = treat_grads(ops, clip.kind, clip.tau, grads, gnorm)  # normalize=TAU
        tv, ov = optimizer.stateless_apply(state["optimizer"], grads, state["trainable"])
        window = update_window(ops, state["window"], loss, gnorm, fired, omega_value)
        return {"trainable": tv, "non_trainable": ntv, "optimizer": ov, "window": window}

    def predict(tv, ntv, x):
        return model.stateless_call(tv, ntv, x, training=False)[0]

    def profile(tv, ntv, x, y):
        def loss_of_input(x):
            pred = model.stateless_call(tv, ntv, x, training=False)[0]
            return profile_loss(task, loss_fn, compute_loss, y, pred)

        g = jax.grad(loss_of_input)(x)  # [batch, time, features]
        return jnp.sqrt(jnp.sum(jnp.square(g), axis=(0, 2)))

    return SimpleNamespace(
        step=step, predict=predict, profile=profile, y_dtype=np.float32 if scalar else np.int32
    )


def initial_state(model, optimizer) -> dict:
    """A copy of the model's and optimizer's current values as a step state (the state's
    buffers are donated to each step; the Keras variables keep theirs)."""
    import jax.numpy as jnp

    return {
        "trainable": [jnp.array(v.value) for v in model.trainable_variables],
        "non_trainable": [jnp.array(v.value) for v in model.non_trainable_variables],
        "optimizer": [jnp.array(v.value) for v in optimizer.variables],
        "window": zero_window(),
    }


def zero_window(shape=()) -> dict:
    import jax.numpy as jnp

    return {k: jnp.zeros(shape, jnp.float32) for k in WINDOW_FIELDS}


def write_back(model, optimizer, state: dict) -> None:
    """Put a step state's values into the Keras model's (and optimizer's) variables."""
    for v, value in zip(model.trainable_variables, state["trainable"], strict=True):
        v.assign(value)
    for v, value in zip(model.non_trainable_variables, state["non_trainable"], strict=True):
        v.assign(value)
    if optimizer is not None:
        for v, value in zip(optimizer.variables, state["optimizer"], strict=True):
            v.assign(value)


class JaxStepper:
    """The jitted functions of one run and its device-resident state."""

    def __init__(self, model, task, optimizer, loss_fn, clip, omega=0.0) -> None:
        import jax

        self.model, self.task, self.optimizer = model, task, optimizer
        fns = member_functions(model, task, optimizer, loss_fn, clip, omega)
        self._y_dtype = fns.y_dtype
        self._step = jax.jit(fns.step, donate_argnums=0)
        self._predict = jax.jit(fns.predict)
        self._profile = jax.jit(fns.profile)
        self.state = initial_state(model, optimizer)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        self.state = self._step(self.state, x, y.astype(self._y_dtype, copy=False))

    def sync(self) -> None:
        import jax

        jax.block_until_ready(self.state)

    def read_window(self) -> Window:
        w = Window.from_values([np.asarray(self.state["window"][k]) for k in WINDOW_FIELDS])
        self.state["window"] = zero_window()
        return w

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        tv, ntv = self.state["trainable"], self.state["non_trainable"]
        return evaluate_in_chunks(self.task, lambda xb: self._predict(tv, ntv, xb), x, y)

    def profile(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        s = self.state
        g = self._profile(s["trainable"], s["non_trainable"], x, y.astype(self._y_dtype))
        return np.asarray(g, dtype=np.float64)

    def finish(self) -> None:
        write_back(self.model, self.optimizer, self.state)
