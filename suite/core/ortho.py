"""The orthogonal RNN layer: a vanilla RNN whose recurrent matrix is orthogonal by construction.

``W = (I + S)^-1 (I - S)`` (the Cayley transform) of the skew-symmetric ``S = A - A^T``, where
``A`` (``recurrent_skew``) is the trained parameter: every ``A`` gives an orthogonal ``W``, so
the recurrence neither shrinks nor grows the hidden state's norm through ``W``. The
activation is modReLU, ``h = sign(z) * relu(|z| + b)`` (Arjovsky, Shah & Bengio 2016), whose
bias ``b`` (``modrelu_bias``) is trained too; ``z = x_t K + h_{t-1} W + b_in``. This is the
expRNN/scoRNN family (Lezcano-Casado & Martinez-Rubio 2019; Helfrich et al. 2018) with the
Cayley map.

``W`` is computed once per forward pass (one ``keras.ops.solve``), then the recurrence runs
with ``keras.ops.scan``: the layer runs on TensorFlow and on JAX. ``A`` starts at the
"Cayley init" of scoRNN/expRNN: 2x2 skew blocks ``[[0, s], [-s, 0]]`` with
``s = -tan(theta / 2)``, ``theta ~ U(0, pi/2)``, so ``W`` starts block-diagonal with
rotations spread over eigen-angles ``(0, pi/2)``.

This module imports Keras at the top: import it only after the backend is configured (as
``build_model`` and the exporter do). Importing it registers the layer for
``keras.saving.load_model`` (``rnnbench>OrthoRNN``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

MODRELU_BIAS_INIT = 0.01  # modReLU bias starts ~ U(-0.01, 0.01) (expRNN)


def cayley_skew(shape, rng: np.random.Generator) -> np.ndarray:
    """``A`` of the Cayley init: superdiagonal ``-tan(theta/2)`` on every other row, zeros
    elsewhere, so ``S = A - A^T`` is block-diagonal with 2x2 skew blocks (an odd size leaves the
    last unit with eigenvalue 1)."""
    n = shape[0]
    theta = rng.uniform(0.0, np.pi / 2.0, size=n // 2)
    a = np.zeros((n, n))
    idx = np.arange(n // 2) * 2
    a[idx, idx + 1] = -np.tan(theta / 2.0)
    return a


def cayley_numpy(a: np.ndarray) -> np.ndarray:
    """``W = (I + S)^-1 (I - S)``, ``S = A - A^T``, in float64 (the exporter's copy)."""
    a = np.asarray(a, dtype=np.float64)
    s = a - a.T
    eye = np.eye(len(a))
    return np.linalg.solve(eye + s, eye - s)


@keras.saving.register_keras_serializable(package="rnnbench")
class CayleySkew(keras.initializers.Initializer):
    """Initializer of ``A``: :func:`cayley_skew` drawn with numpy from ``seed``."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, shape, dtype=None):
        value = cayley_skew(shape, np.random.default_rng(self.seed))
        return ops.convert_to_tensor(value, dtype=dtype or "float32")

    def get_config(self) -> dict:
        return {"seed": self.seed}


def modrelu(z, b):
    """``sign(z) * relu(|z| + b)``: the modulus shifted by ``b``, the sign kept."""
    return ops.sign(z) * ops.relu(ops.abs(z) + b)


@keras.saving.register_keras_serializable(package="rnnbench")
class OrthoRNN(keras.layers.Layer):
    """Vanilla RNN with a Cayley-orthogonal recurrent matrix and modReLU.

    Args:
        units: hidden size.
        return_sequences: return every step's state ``[batch, time, units]`` (else the last,
            ``[batch, units]``).
        seed: seeds the layer's own initialisers (``build_model`` overwrites them with its
            numpy draws anyway).

    Weights (``layer.weights`` order): ``kernel`` [d, units] (Glorot-uniform),
    ``recurrent_skew`` [units, units] (``A``), ``bias`` [units] (``b_in``, zeros) and
    ``modrelu_bias`` [units] (``b``).

    Example:
        >>> layer = OrthoRNN(8, return_sequences=True)       # doctest: +SKIP
        >>> layer(np.zeros((2, 5, 3), "float32")).shape      # doctest: +SKIP
        (2, 5, 8)
    """

    def __init__(self, units: int, return_sequences: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        self.seed = int(seed)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape) -> None:
        d, H = input_shape[-1], self.units
        self.kernel = self.add_weight(
            shape=(d, H),
            initializer=keras.initializers.GlorotUniform(seed=self.seed),
            name="kernel",
        )
        self.recurrent_skew = self.add_weight(
            shape=(H, H), initializer=CayleySkew(seed=self.seed + 1), name="recurrent_skew"
        )
        self.bias = self.add_weight(shape=(H,), initializer="zeros", name="bias")
        self.modrelu_bias = self.add_weight(
            shape=(H,),
            initializer=keras.initializers.RandomUniform(
                -MODRELU_BIAS_INIT, MODRELU_BIAS_INIT, seed=self.seed + 2
            ),
            name="modrelu_bias",
        )

    def recurrent_matrix(self):
        """``W = (I + S)^-1 (I - S)``, ``S = A - A^T``: orthogonal for every ``A``."""
        a = ops.convert_to_tensor(self.recurrent_skew)
        s = a - ops.transpose(a)
        eye = ops.eye(self.units, dtype=a.dtype)
        return ops.solve(eye + s, eye - s)

    def call(self, inputs):
        w = self.recurrent_matrix()  # once per forward pass, not per step
        b = ops.convert_to_tensor(self.modrelu_bias)
        # the input term inside the step, not hoisted into one [B, T, H] matmul before the scan:
        # the hoisted [T, B, H] input and its gradient made a JAX step on a CPU superlinear in T
        # (batch 64, hidden 128: 15.6 -> 107.5 ms from T = 100 to 400; in the step 11.4 ->
        # 47.7; TensorFlow 23.6 -> 83.5 and 23.2 -> 76.4; measured 2026-12-04)
        kernel, bias = ops.convert_to_tensor(self.kernel), ops.convert_to_tensor(self.bias)
        xs = ops.transpose(inputs, (1, 0, 2))  # time-major [T, B, d]
        h0 = ops.zeros((ops.shape(inputs)[0], self.units), dtype=w.dtype)

        def step(h, x_t):
            h = modrelu(ops.matmul(x_t, kernel) + bias + ops.matmul(h, w), b)
            return h, h

        last, seq = ops.scan(step, h0, xs)
        return ops.transpose(seq, (1, 0, 2)) if self.return_sequences else last

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "return_sequences": self.return_sequences,
            "seed": self.seed,
        }
