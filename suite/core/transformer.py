"""The transformer cell: a small causal self-attention encoder on the RNN cells' bench.

``x`` [batch, time, features] -> ``embed`` (Dense to ``d_model``) + sinusoidal positions ->
``LAYERS`` pre-LN blocks ``h += MHA(LN(h))`` (causal), ``h += FFN(LN(h))`` (Dense ReLU ->
Dense) -> a final LayerNormalization -> the task's Dense ``head``, wrapped like the RNN cells
(``suite.core.models.build_model``): one layer named ``transformer`` (the cell) returning every
position ``[batch, time, d_model]`` for copy's per-step outputs, else the last position
``[batch, d_model]`` for adding, delayed_recall and temporal_order; input ``x`` with dynamic
batch and time, head ``head``, model ``{task}_transformer``.

Causal: every position attends to itself and the positions before it only (Keras's
``use_causal_mask=True``). So the final position, the one the final-output tasks read, sees the
whole sequence, while copy's per-step outputs see only the past, as an RNN's states do: one
model serves every task, and no output can peek at inputs after it.

Positions: ``PE[t, k] = sin(t * w_k + phase_k)``, ``w_k = 10000^(-2 floor(k/2) / d_model)``,
``phase_k = 0`` (even k, sine) or ``pi/2`` (odd k, cosine), computed with ``keras.ops`` for
the input's own T (no maximum length; backend-neutral); ``w`` and ``phase`` are numpy float32
constants (:func:`position_constants`), the very ones the ONNX export computes with.

Sizes from ``hidden`` (:func:`transformer_sizes`): ``d_model = hidden // 2`` (at least 1),
``HEADS`` = 4 heads when ``d_model`` divides by 4 (else 2, else 1; key dim ``d_model // heads``),
feed-forward width ``FFN_RATIO * d_model`` (= ``hidden`` for an even ``hidden``), ``LAYERS`` = 2
blocks. Each block holds ``4 d^2`` (attention) + ``4 d^2`` (feed-forward) weights, so the two
blocks hold ``16 d_model^2 = 4 hidden^2``: the parameter count tracks the LSTM's
``4 hidden^2`` at every ``hidden``, and ``hidden`` compares cells at equal size. On the adding
task (input width 2, ``model.count_params()``): hidden 64 gives 17,281 parameters
(``d_model`` 32, 4 heads of 8, feed-forward 64), the hidden-64 LSTM 17,217 (+0.4 %).

Initial weights: Keras's defaults (Glorot-uniform kernels, with Keras's own fans for the
attention's 3-d kernels, zero biases, LayerNorm gamma 1 and beta 0), the random draws from numpy
(``np.random.default_rng([seed, index])``, like ``suite.core.models.initial_weights``), so the
same seed builds the same weights on TensorFlow and on JAX. No dropout.

This module imports Keras at the top: import it only after the backend is configured (as
``build_model`` and the exporter do). Importing it registers the layer for
``keras.saving.load_model`` (``rnnbench>CausalTransformer``).

Example:
    >>> from tasks import get_task                                            # doctest: +SKIP
    >>> build_transformer(get_task("copy", seq_len=10), hidden=8).output_shape  # doctest: +SKIP
    (None, None, 10)
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

LAYERS = 2  # pre-LN blocks
HEADS = 4  # attention heads (fewer when d_model does not divide by 4)
FFN_RATIO = 2  # feed-forward width / d_model
LN_EPSILON = 1e-5  # every LayerNormalization's epsilon
POSITION_BASE = 10000.0


def transformer_sizes(hidden: int) -> tuple[int, int, int]:
    """``(d_model, heads, ffn_units)`` of the transformer cell at ``hidden`` (module docstring)."""
    d_model = max(1, int(hidden) // 2)
    return d_model, math.gcd(HEADS, d_model), FFN_RATIO * d_model


def position_constants(d_model: int) -> tuple[np.ndarray, np.ndarray]:
    """The frequencies ``w`` and phases of :func:`sinusoidal_positions`, float32 ``[d_model]``."""
    k = np.arange(d_model)
    freq = POSITION_BASE ** (-(2.0 * (k // 2)) / d_model)
    phase = (k % 2) * (np.pi / 2.0)
    return freq.astype(np.float32), phase.astype(np.float32)


def sinusoidal_positions(length, d_model: int):
    """``[length, d_model]`` sinusoidal positions for any ``length`` (a Python int or a tensor)."""
    freq, phase = position_constants(d_model)
    t = ops.cast(ops.arange(length), "float32")
    return ops.sin(ops.expand_dims(t, 1) * freq[None, :] + phase[None, :])


@keras.saving.register_keras_serializable(package="rnnbench")
class CausalTransformer(keras.layers.Layer):
    """A pre-LN causal transformer encoder (see the module docstring).

    Args:
        d_model: the model width (the head reads it).
        num_heads: attention heads (``d_model`` divides by it).
        num_layers: blocks.
        ffn_units: the feed-forward width.
        return_sequences: return every position ``[batch, time, d_model]`` (else the last,
            ``[batch, d_model]``).
        epsilon: the LayerNormalizations' epsilon.
        seed: seeds the sublayers' own initialisers (``build_transformer`` overwrites them with
            its numpy draws anyway).

    Sublayers (weights in this order): ``embed``; per block ``i`` ``attn_norm{i}``,
    ``attn{i}`` (query, key, value, attention_output), ``ffn_norm{i}``, ``ffn_in{i}``,
    ``ffn_out{i}``; ``final_norm``.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int = HEADS,
        num_layers: int = LAYERS,
        ffn_units: int | None = None,
        return_sequences: bool = False,
        epsilon: float = LN_EPSILON,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.d_model = int(d_model)
        self.num_heads = int(num_heads)
        self.num_layers = int(num_layers)
        self.ffn_units = int(ffn_units or FFN_RATIO * self.d_model)
        self.return_sequences = bool(return_sequences)
        self.epsilon = float(epsilon)
        self.seed = int(seed)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} does not divide by {self.num_heads} heads.")
        self.input_spec = keras.layers.InputSpec(ndim=3)
        L = keras.layers
        seeds = iter(range(self.seed, self.seed + 1 + 3 * self.num_layers))

        def glorot():
            return keras.initializers.GlorotUniform(seed=next(seeds))

        def norm(name):
            return L.LayerNormalization(epsilon=self.epsilon, name=name)

        self.embed = L.Dense(self.d_model, kernel_initializer=glorot(), name="embed")
        self.attn_norms, self.attentions, self.ffn_norms = [], [], []
        self.ffn_ins, self.ffn_outs = [], []
        for i in range(self.num_layers):
            self.attn_norms.append(norm(f"attn_norm{i}"))
            self.attentions.append(
                L.MultiHeadAttention(
                    self.num_heads,
                    self.d_model // self.num_heads,
                    kernel_initializer=glorot(),
                    name=f"attn{i}",
                )
            )
            self.ffn_norms.append(norm(f"ffn_norm{i}"))
            self.ffn_ins.append(
                L.Dense(
                    self.ffn_units,
                    activation="relu",
                    kernel_initializer=glorot(),
                    name=f"ffn_in{i}",
                )
            )
            self.ffn_outs.append(
                L.Dense(self.d_model, kernel_initializer=glorot(), name=f"ffn_out{i}")
            )
        self.final_norm = norm("final_norm")

    @property
    def units(self) -> int:
        """The width of the output the head reads (``d_model``), as an RNN layer's ``units``."""
        return self.d_model

    def build(self, input_shape) -> None:
        batch, time = input_shape[0], input_shape[1]
        seq = (batch, time, self.d_model)
        self.embed.build(input_shape)
        for i in range(self.num_layers):
            self.attn_norms[i].build(seq)
            self.attentions[i].build(seq, seq)
            self.ffn_norms[i].build(seq)
            self.ffn_ins[i].build(seq)
            self.ffn_outs[i].build((batch, time, self.ffn_units))
        self.final_norm.build(seq)

    def call(self, inputs, training=None):
        positions = sinusoidal_positions(ops.shape(inputs)[1], self.d_model)
        h = self.embed(inputs) + ops.expand_dims(positions, 0)
        for i in range(self.num_layers):
            a = self.attn_norms[i](h)
            h = h + self.attentions[i](a, a, use_causal_mask=True, training=training)
            f = self.ffn_norms[i](h)
            h = h + self.ffn_outs[i](self.ffn_ins[i](f))
        h = self.final_norm(h)
        return h if self.return_sequences else h[:, -1, :]

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.d_model)
        return (input_shape[0], self.d_model)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "ffn_units": self.ffn_units,
            "return_sequences": self.return_sequences,
            "epsilon": self.epsilon,
            "seed": self.seed,
        }


def keras_fans(shape) -> tuple[int, int]:
    """Keras's ``compute_fans``: ``(shape[0], shape[1])`` for a matrix; for a kernel of more
    axes (the attention's ``[d, heads, key_dim]`` and ``[heads, key_dim, d]``) the last two axes
    times the product of the others (its convolution-style receptive field)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, rng: np.random.Generator) -> np.ndarray:
    """Keras's ``GlorotUniform`` (``U(-l, l)``, ``l = sqrt(6 / (fan_in + fan_out))``) from ``rng``."""
    fan_in, fan_out = keras_fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def initial_weights(model, seed: int) -> list[np.ndarray]:
    """The transformer model's initial weights (``model.weights`` order) drawn with numpy: every
    ``kernel`` Glorot-uniform from its own stream ``default_rng([seed, index])``; biases,
    gammas and betas keep their deterministic Keras initial values (0, 1, 0)."""
    out = []
    for i, v in enumerate(model.weights):
        value = np.asarray(v.value if hasattr(v, "value") else v)
        if v.path.rsplit("/", 1)[-1] == "kernel":
            value = glorot_uniform(value.shape, np.random.default_rng([seed, i]))
        out.append(np.asarray(value, dtype=np.float32))
    return out


def build_transformer(task, hidden: int = 128, seed: int = 0):
    """The transformer cell's uncompiled Keras model for ``task`` (``build_model`` calls it).

    Returns:
        A ``keras.Model`` taking float32 ``[batch, time, task.input_dim]`` (batch and time
        dynamic) and returning logits (classification) or the scalar prediction, per step for
        copy, at the last position otherwise.
    """
    from tasks import PER_STEP_CLASS

    d_model, heads, ffn = transformer_sizes(hidden)
    inputs = keras.Input((None, task.input_dim), name="x")
    encoder = CausalTransformer(
        d_model,
        heads,
        LAYERS,
        ffn,
        return_sequences=task.output_kind == PER_STEP_CLASS,
        seed=seed,
        name="transformer",
    )
    head = keras.layers.Dense(
        task.output_dim,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2),
        name="head",
    )
    model = keras.Model(inputs, head(encoder(inputs)), name=f"{task.name}_transformer")
    for v, value in zip(model.weights, initial_weights(model, seed), strict=True):
        v.assign(value)
    return model
