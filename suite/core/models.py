"""Model builders: input -> one recurrent layer -> Dense head shaped by the task.

Cells:
    simple_rnn  Keras SimpleRNN, tanh, Keras default initialisers (orthogonal recurrent).
    irnn        SimpleRNN with ReLU, identity recurrent init and zero bias (Le, Jaitly & Hinton 2015).
    lstm, gru   Keras defaults (GRU reset_after=True), cuDNN-eligible on a GPU: default
                activations, no recurrent dropout, no unroll, use_bias.

Initial weights follow the Keras defaults (Glorot-uniform kernels, orthogonal recurrent
matrices, zero biases, LSTM forget-gate bias 1), but their random draws come from numpy
(``np.random.default_rng``) rather than the backend's RNG: the same seed builds the same
weights on TensorFlow and on JAX, without touching global RNG state.

Example:
    >>> from tasks import get_task
    >>> model = build_model("lstm", get_task("adding", seq_len=10), hidden=8, seed=0)
    >>> model.output_shape
    (None, 1)
"""

from __future__ import annotations

import numpy as np

CELLS = ("simple_rnn", "irnn", "lstm", "gru")

# What TensorFlow requires of a Keras LSTM/GRU layer to run the fused cuDNN kernel on a GPU.
CUDNN_REQUIREMENTS = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "unroll": False,
    "use_bias": True,
}


def check_cell(cell: str) -> str:
    if cell not in CELLS:
        raise ValueError(f"Unknown cell {cell!r}; choose one of: {', '.join(CELLS)}.")
    return cell


def build_model(cell: str, task, hidden: int = 128, seed: int = 0):
    """Build an uncompiled Keras 3 model for ``task``.

    Args:
        cell: one of ``CELLS``.
        task: a ``tasks.Task`` (gives input width, output kind and classes).
        hidden: recurrent units.
        seed: seeds every initialiser.

    Returns:
        A ``keras.Model`` taking float32 ``[batch, time, task.input_dim]`` (batch and time
        dynamic) and returning logits (classification) or the scalar prediction.
    """
    import keras

    from tasks import PER_STEP_CLASS

    check_cell(cell)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be an integer >= 1, got {hidden!r}.")
    init = keras.initializers
    per_step = task.output_kind == PER_STEP_CLASS
    common = dict(
        units=hidden,
        return_sequences=per_step,
        kernel_initializer=init.GlorotUniform(seed=seed),
        recurrent_initializer=init.Orthogonal(seed=seed + 1),
        name=cell,
    )
    if cell == "simple_rnn":
        rnn = keras.layers.SimpleRNN(activation="tanh", **common)
    elif cell == "irnn":
        common["recurrent_initializer"] = init.Identity()
        rnn = keras.layers.SimpleRNN(activation="relu", bias_initializer=init.Zeros(), **common)
    elif cell == "lstm":
        rnn = keras.layers.LSTM(**CUDNN_REQUIREMENTS, **common)
    else:
        rnn = keras.layers.GRU(reset_after=True, **CUDNN_REQUIREMENTS, **common)
    inputs = keras.Input((None, task.input_dim), name="x")
    head = keras.layers.Dense(
        task.output_dim, kernel_initializer=init.GlorotUniform(seed=seed + 2), name="head"
    )
    outputs = head(rnn(inputs))
    model = keras.Model(inputs, outputs, name=f"{task.name}_{cell}")
    for v, value in zip(model.weights, initial_weights(model, cell, seed), strict=True):
        v.assign(value)
    return model


def _glorot_uniform(shape, rng: np.random.Generator) -> np.ndarray:
    fan_in, fan_out = shape[0], shape[-1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(shape, rng: np.random.Generator) -> np.ndarray:
    """Keras's ``Orthogonal`` (gain 1): QR of a normal matrix, signs fixed by diag(R)."""
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape)


def initial_weights(model, cell: str, seed: int) -> list[np.ndarray]:
    """The model's initial weights (in ``model.weights`` order) drawn with numpy from ``seed``.

    Random draws replace the backend's: kernels Glorot-uniform, recurrent kernels orthogonal
    (IRNN keeps its identity), each from its own stream ``default_rng([seed, index])``;
    biases keep their deterministic Keras initial values.
    """
    out = []
    for i, v in enumerate(model.weights):
        value = np.asarray(v.value if hasattr(v, "value") else v)
        name = v.path.rsplit("/", 1)[-1]
        rng = np.random.default_rng([seed, i])
        if name == "kernel":
            value = _glorot_uniform(value.shape, rng)
        elif name == "recurrent_kernel" and cell != "irnn":
            value = _orthogonal(value.shape, rng)
        out.append(np.asarray(value, dtype=np.float32))
    return out
