"""The TensorFlow train step: one traced ``tf.function`` per step, window state in named
``tf.Variable`` accumulators that the host reads once per evaluation."""

from __future__ import annotations

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


class TFStepper:
    """The traced functions of one run: train step, window stats, eval, profile."""

    def __init__(self, model, task, optimizer, loss_fn, clip, omega=0.0) -> None:
        import keras
        import tensorflow as tf

        from tasks import FINAL_SCALAR, PER_STEP_CLASS

        ops = keras.ops
        self.model, self.task = model, task
        variables = model.trainable_variables
        optimizer.build(variables)
        scalar = task.output_kind == FINAL_SCALAR
        y_dtype = tf.float32 if scalar else tf.int64
        y_shape = [None] if task.output_kind != PER_STEP_CLASS else [None, None]
        x_spec = tf.TensorSpec([None, None, task.input_dim], tf.float32)
        y_spec = tf.TensorSpec(y_shape, y_dtype)
        self.acc = {name: tf.Variable(0.0, trainable=False, name=name) for name in WINDOW_FIELDS}

        def compute_loss(y, pred):
            if scalar:
                pred = tf.reshape(pred, [-1])
            return loss_fn(y, pred)

        if omega:
            from suite.core import omega as om

            layout = om.omega_layout(model, task)

            def regulariser(x, y):
                """Ω and α ∂Ω/∂U, with δ = ∂L/∂e through the manual forward."""
                values = [v.value for v in variables]
                e = om.zero_perturbation(values, layout, x)
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(e)
                    pred, hs = om.forward(values, layout, x, e)
                    loss = compute_loss(y, pred)
                delta = tape.gradient(loss, e)
                u = values[layout.recurrent]
                value, d_u = om.omega_and_grad(delta, hs, u, layout.activation)
                return value, omega * d_u

        @tf.function(input_signature=[x_spec, y_spec], reduce_retracing=True)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = compute_loss(y, model(x, training=True))
            grads = tape.gradient(loss, variables)
            omega_value = 0.0
            if omega:  # added before clipping: the pre-clip grad_norm is the norm of the sum
                omega_value, d_u = regulariser(x, y)
                grads[layout.recurrent] = grads[layout.recurrent] + d_u
            gnorm = global_norm(ops, grads)
            fired = clip_fired(ops, clip.kind, clip.tau, grads, gnorm)
            grads = treat_grads(ops, clip.kind, clip.tau, grads, gnorm)  # normalize=TAU
            optimizer.apply(grads, variables)  # Keras clips here, exactly as configured
            new = update_window(
                ops,
                {k: v.read_value() for k, v in self.acc.items()},
                loss,
                gnorm,
                fired,
                omega_value,
            )
            for k, v in new.items():
                self.acc[k].assign(v)

        @tf.function(input_signature=[x_spec])
        def predict(x):
            return model(x, training=False)

        @tf.function(input_signature=[x_spec, y_spec])
        def profile(x, y):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = profile_loss(task, loss_fn, compute_loss, y, model(x, training=False))
            g = tape.gradient(loss, x)  # [batch, time, features]
            return tf.sqrt(tf.reduce_sum(tf.square(g), axis=[0, 2]))

        self._train_step, self._predict, self._profile = train_step, predict, profile

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        self._train_step(x, y)

    def sync(self) -> None:
        pass  # a tf.function call returns when its step is done

    def read_window(self) -> Window:
        w = Window.from_values([self.acc[k].numpy() for k in WINDOW_FIELDS])
        for v in self.acc.values():
            v.assign(0.0)
        return w

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return evaluate_in_chunks(self.task, lambda xb: self._predict(xb).numpy(), x, y)

    def profile(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._profile(x, y).numpy().astype(np.float64)

    def finish(self) -> None:
        pass  # the Keras variables were updated in place
