"""Model builders: input -> one recurrent layer -> Dense head shaped by the task.

Cells:
    simple_rnn   Keras SimpleRNN, tanh, Keras default initialisers (orthogonal recurrent).
    irnn         SimpleRNN with ReLU, identity recurrent init and zero bias (Le, Jaitly & Hinton 2015).
    relu_rnn     irnn with Keras's default (orthogonal) recurrent init instead of the identity: the
                 same activation, kernel and bias inits, so irnn vs relu_rnn isolates IRNN's
                 identity initialisation.
    leaky_rnn    irnn with leaky ReLU (negative slope ``LEAKY_SLOPE`` = 0.2) instead of ReLU:
                 identity recurrent init, zero bias; units below zero still pass a gradient.
    sigmoid_rnn  SimpleRNN with the logistic sigmoid, Keras default initialisers.
    ortho_rnn    vanilla RNN whose recurrent matrix is orthogonal by construction: the Cayley
                 transform of a trained skew-symmetric matrix, modReLU activation (expRNN /
                 scoRNN family; Arjovsky et al. 2016, Lezcano-Casado & Martinez-Rubio 2019);
                 ``suite.core.ortho.OrthoRNN``, Cayley init (eigen-angles in (0, pi/2)).
    lstm, gru    Keras defaults (GRU reset_after=True), cuDNN-eligible on a GPU: default
                 activations, no recurrent dropout, no unroll, use_bias. The suite's JAX step
                 runs GRU through Keras's generic loop on a CPU
                 (:func:`use_generic_gru_loop_on_jax_cpu`).
    chrono_lstm  the lstm with chrono initialisation (Tallec & Ollivier 2018): forget-gate bias
                 b_f = log(U(1, T_max - 1)), input-gate bias b_i = -b_f, T_max = the task's
                 input length (``task.length``); cuDNN-eligible like lstm.
    transformer  not a recurrence: a 2-block pre-LN causal self-attention encoder with
                 sinusoidal positions (``suite.core.transformer``); ``hidden`` -> d_model
                 ``hidden // 2``, so its size tracks the LSTM's (4 hidden^2 weights).

Initial weights follow the Keras defaults (Glorot-uniform kernels, orthogonal recurrent
matrices, zero biases, LSTM forget-gate bias 1), but their random draws come from numpy
(``np.random.default_rng``) rather than the backend's RNG: the same seed builds the same
weights on TensorFlow and on JAX, without touching global RNG state. The same holds for
ortho_rnn's skew matrix and modReLU bias and chrono_lstm's gate biases.

Example:
    >>> from tasks import get_task
    >>> model = build_model("lstm", get_task("adding", seq_len=10), hidden=8, seed=0)
    >>> model.output_shape
    (None, 1)
"""

from __future__ import annotations

import numpy as np

CELLS = (
    "simple_rnn", "irnn", "relu_rnn", "leaky_rnn", "sigmoid_rnn", "ortho_rnn", "lstm",
    "chrono_lstm", "gru", "transformer",
)  # fmt: skip

# leaky_rnn's negative slope: Keras's own ``leaky_relu`` default, so the layer's activation
# serialises as the plain name "leaky_relu" and a saved .keras model loads back with this slope
# in any process (no custom object to register); the ONNX export's LeakyRelu alpha.
LEAKY_SLOPE = 0.2
# the activation of each Keras SimpleRNN cell (also the ONNX RNN op's activation, via the exporter)
SIMPLE_RNN_ACTIVATIONS = {
    "simple_rnn": "tanh",
    "irnn": "relu",
    "relu_rnn": "relu",
    "leaky_rnn": "leaky_relu",
    "sigmoid_rnn": "sigmoid",
}
# the cells whose recurrent kernel starts at the identity (the others: orthogonal)
IDENTITY_INIT = ("irnn", "leaky_rnn")

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
        seed: seeds the numpy draws of every random initial weight (:func:`initial_weights`).

    Returns:
        A ``keras.Model`` taking float32 ``[batch, time, task.input_dim]`` (batch and time
        dynamic) and returning logits (classification) or the scalar prediction.
    """
    import keras

    from tasks import PER_STEP_CLASS

    check_cell(cell)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be an integer >= 1, got {hidden!r}.")
    if cell == "transformer":  # attention, not a recurrence: its own builder, same wrapping
        from suite.core.transformer import build_transformer

        return build_transformer(task, hidden=hidden, seed=seed)
    init = keras.initializers
    per_step = task.output_kind == PER_STEP_CLASS
    # Zeros where initial_weights() draws the values with numpy (every kernel and recurrent
    # kernel): the backend's own random initialisers would only be overwritten, and on JAX
    # each new shape compiled them first (0.2-0.9 s per model; 3.4 s -> 0.5 s for twelve
    # models, measured 2026-12-04). The deterministic ones (identity, biases) are Keras's.
    common = dict(
        units=hidden,
        return_sequences=per_step,
        kernel_initializer=init.Zeros(),
        recurrent_initializer=init.Zeros(),
        name=cell,
    )
    if cell in SIMPLE_RNN_ACTIVATIONS:
        if cell in IDENTITY_INIT:
            common["recurrent_initializer"] = init.Identity()
        rnn = keras.layers.SimpleRNN(
            activation=SIMPLE_RNN_ACTIVATIONS[cell], bias_initializer=init.Zeros(), **common
        )
    elif cell == "ortho_rnn":
        from suite.core.ortho import OrthoRNN

        rnn = OrthoRNN(hidden, return_sequences=per_step, seed=seed, name=cell)
    elif cell == "lstm":
        rnn = keras.layers.LSTM(**CUDNN_REQUIREMENTS, **common)
    elif cell == "chrono_lstm":  # its gate biases are drawn in initial_weights
        rnn = keras.layers.LSTM(unit_forget_bias=False, **CUDNN_REQUIREMENTS, **common)
    else:
        rnn = keras.layers.GRU(reset_after=True, **CUDNN_REQUIREMENTS, **common)
    inputs = keras.Input((None, task.input_dim), name="x")
    head = keras.layers.Dense(task.output_dim, kernel_initializer=init.Zeros(), name="head")
    outputs = head(rnn(inputs))
    model = keras.Model(inputs, outputs, name=f"{task.name}_{cell}")
    values = initial_weights(model, cell, seed, t_max=task.length)
    for v, value in zip(model.weights, values, strict=True):
        v.assign(value)
    return model


def use_generic_gru_loop_on_jax_cpu(model) -> int:
    """Run the model's Keras GRU layers through Keras's generic RNN loop when JAX runs on a CPU.

    Keras's JAX backend gives ``GRU`` its own loop (``keras.src.backend.jax.rnn.gru``, taken
    whenever ``use_cudnn`` is ``"auto"``): the input projection of all T steps in one matmul,
    then a ``lax.scan`` whose step splits that [B, 3H] row into the three gates. XLA on a CPU
    fuses the scan's slice of row t with the three slices into one elementwise kernel that it
    does not vectorise: the gate math of a step took 100 µs instead of 5 (B = 64, H = 128).
    The generic loop (``GRUCell.call`` per step: the same formula, its input matmul inside the
    step) avoids it. Measured 2026-12-04, this 2-core CPU, batch 64, hidden 128, T = 100 / 400:
    forward 23.1 / 97.8 ms -> 8.8 / 34.4 ms, forward + backward 36.7 / 163.4 -> 36.7 / 148.8 ms
    (t(400)/t(100) 4.46 -> 4.05). On a GPU, and on TensorFlow, nothing changes: ``use_cudnn``
    is not saved with the model, so this is a run-time choice, not part of the model.

    Args:
        model: a model from :func:`build_model`.

    Returns:
        How many layers were switched (0 off JAX, on a GPU, or without a GRU).
    """
    import keras

    if keras.backend.backend() != "jax":
        return 0
    import jax

    if jax.default_backend() != "cpu":
        return 0
    grus = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    for layer in grus:
        layer.use_cudnn = False
    return len(grus)


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


def chrono_bias(units: int, t_max: int, rng: np.random.Generator) -> np.ndarray:
    """Chrono initialisation of a Keras LSTM bias ([i, f, c, o], each ``units`` long).

    ``b_f = log(U(1, T_max - 1))`` so forget gates start with characteristic times spread up
    to the longest dependency, ``b_i = -b_f``; ``b_c = b_o = 0`` (Keras's defaults). For
    ``T_max - 1 < 2`` the range is empty and ``b_f = 0`` (plain zero bias).
    """
    high = max(float(t_max) - 1.0, 1.0)
    b_f = np.log(rng.uniform(1.0, high, size=units)) if high > 1.0 else np.zeros(units)
    return np.concatenate([-b_f, b_f, np.zeros(units), np.zeros(units)])


def initial_weights(model, cell: str, seed: int, t_max: int | None = None) -> list[np.ndarray]:
    """The model's initial weights (in ``model.weights`` order) drawn with numpy from ``seed``.

    Random draws replace the backend's: kernels Glorot-uniform, recurrent kernels orthogonal
    (irnn and leaky_rnn keep their identity), ortho_rnn's skew matrix the Cayley init and its
    modReLU bias U(-0.01, 0.01), chrono_lstm's gate biases the chrono init (needs ``t_max``, the task's
    input length), each from its own stream ``default_rng([seed, index])``; other biases keep
    their deterministic Keras initial values.
    """
    out = []
    for i, v in enumerate(model.weights):
        value = np.asarray(v.value if hasattr(v, "value") else v)
        name = v.path.rsplit("/", 1)[-1]
        rng = np.random.default_rng([seed, i])
        if name == "kernel":
            value = _glorot_uniform(value.shape, rng)
        elif name == "recurrent_kernel" and cell not in IDENTITY_INIT:
            value = _orthogonal(value.shape, rng)
        elif name == "recurrent_skew":
            from suite.core.ortho import cayley_skew

            value = cayley_skew(value.shape, rng)
        elif name == "modrelu_bias":
            from suite.core.ortho import MODRELU_BIAS_INIT

            value = rng.uniform(-MODRELU_BIAS_INIT, MODRELU_BIAS_INIT, size=value.shape)
        elif name == "bias" and cell == "chrono_lstm" and v.path.startswith(f"{cell}/"):
            if t_max is None:
                raise ValueError("chrono_lstm's initial weights need t_max (the input length).")
            value = chrono_bias(value.shape[0] // 4, t_max, rng)
        out.append(np.asarray(value, dtype=np.float32))
    return out
