"""The JAX train step: Keras's stateless API inside one ``jax.jit``.

``model.stateless_call`` + ``jax.value_and_grad`` + ``optimizer.stateless_apply`` (which
clips exactly as the Keras optimizer is configured), with the window accumulators carried
in the jitted state as a dict of named scalars. Steps are dispatched asynchronously; the
host waits only in ``sync()`` (end of a timed window) and reads the window at evaluations.
The trained values go back into the Keras variables in ``finish()``.

:func:`member_functions` holds the pure per-model functions; ``suite.population`` vmaps and
jits them over P models, and :class:`JaxStepper` is a population of one.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from suite.steps import (
    WINDOW_FIELDS,
    Window,
    clip_fired,
    global_norm,
    profile_loss,
    update_window,
)


def member_functions(model, task, optimizer, loss_fn, clip) -> SimpleNamespace:
    """Pure functions of one model's state: ``step(state, x, y) -> state``,
    ``predict(tv, ntv, x)``, ``profile(tv, ntv, x, y) -> ‖∂L/∂x_t‖``.

    ``model`` and ``optimizer`` only give the computation (their variables are not read):
    any model built by ``build_model`` with the same cell, task and hidden size shares it.
    """
    import jax
    import jax.numpy as jnp
    import keras

    from tasks import FINAL_SCALAR

    ops = keras.ops
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

    def step(state, x, y):
        (loss, ntv), grads = grad_fn(state["trainable"], state["non_trainable"], x, y)
        gnorm = global_norm(jnp, grads)
        fired = clip_fired(ops, clip.kind, clip.tau, grads, gnorm)
        tv, ov = optimizer.stateless_apply(state["optimizer"], grads, state["trainable"])
        window = update_window(ops, state["window"], loss, gnorm, fired)
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
    """One run on JAX: a population of one (``suite.population.PopulationStepper``).

    A run trained alone and the same config trained as a member of a population run the same
    compiled, vmapped computation (only the population axis differs in size), so on a CPU
    ``--population off`` and ``--population N`` give the same numbers, bit for bit. (A plain,
    un-vmapped jit differs from the vmapped one in the last bits, which grow over thousands of
    steps: measured, the quick sweep's statuses differed in 2 of 48 runs.)
    """

    def __init__(self, model, task, optimizer, loss_fn, clip) -> None:
        from suite.population import PopulationStepper

        self._pop = PopulationStepper([model], task, optimizer, loss_fn, clip)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        self._pop.train_step(x[None], y[None])

    def sync(self) -> None:
        self._pop.sync()

    def read_window(self) -> Window:
        return self._pop.read_windows()[0]

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return self._pop.evaluate(x[None], y[None])[0]

    def profile(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._pop.profile(x[None], y[None])[0]

    def finish(self) -> None:
        self._pop.finish()
