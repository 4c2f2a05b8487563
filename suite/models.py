"""Model builders: input -> one recurrent layer -> Dense head shaped by the task.

Cells:
    simple_rnn  Keras SimpleRNN, tanh, Keras default initialisers (orthogonal recurrent).
    irnn        SimpleRNN with ReLU, identity recurrent init and zero bias (Le, Jaitly & Hinton 2015).
    lstm, gru   Keras defaults (GRU reset_after=True), cuDNN-eligible on a GPU: default
                activations, no recurrent dropout, no unroll, use_bias.

Initialisers are the Keras defaults given explicit seeds, so the same seed builds the
same weights without touching global RNG state.

Example:
    >>> from tasks import get_task
    >>> model = build_model("lstm", get_task("adding", seq_len=10), hidden=8, seed=0)
    >>> model.output_shape
    (None, 1)
"""

from __future__ import annotations

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
    return keras.Model(inputs, outputs, name=f"{task.name}_{cell}")
