"""How much memory one training run needs, estimated before anything is built.

The estimate (float32, 4 bytes a number) adds up:

    weights         per gate: input x hidden + hidden x hidden + hidden, plus the head
    optimizer state Adam keeps 2 numbers per weight, RMSprop 1, SGD 1 with momentum
    gradients       1 number per weight
    activations     batch x input length x hidden x gates x 3 (pre-activations, activations
                    and states kept for backprop through T steps); the transformer adds its
                    attention maps, batch x ATTENTION_MAPS x length^2
    data            the generator's chunk (DATA_CHUNK batches) and the validation set,
                    inputs and targets, each counted twice for numpy's intermediates
    profile         the ‖∂L/∂x_t‖ profile's batch, forward and backward

It is a floor, not a measurement: the backend adds its own buffers (and XLA compiles), so a
run that fits this estimate can still need more; one that does not fit it never runs.

Example:
    >>> from suite.core.train import TrainConfig
    >>> estimate_bytes(TrainConfig(task="adding", seq_len=100, cell="lstm", hidden=128)) < 2**30
    True
"""

from __future__ import annotations

# gate blocks per cell (the transformer: its blocks hold 4 hidden^2 weights, as an LSTM's gates)
GATES = {"simple_rnn": 1, "irnn": 1, "relu_rnn": 1, "leaky_rnn": 1, "sigmoid_rnn": 1,
         "ortho_rnn": 1, "lstm": 4, "chrono_lstm": 4, "gru": 3, "transformer": 4}  # fmt: skip
# [T, T] maps per sequence kept for backprop: scores and probabilities of each of the
# transformer's 2 blocks x 4 heads (suite.core.transformer.LAYERS, HEADS)
ATTENTION_MAPS = {"transformer": 2 * 2 * 4}
OPTIMIZER_SLOTS = {"adam": 2, "rmsprop": 1, "sgd": 1}
FLOAT = 4  # bytes


def estimate_bytes(config) -> int:
    """The memory floor of one run of ``config`` (a validated ``TrainConfig``), in bytes."""
    from suite.core.train import DATA_CHUNK
    from tasks import PER_STEP_CLASS, get_task

    task = get_task(config.task, seq_len=config.seq_len, **config.task_options)
    g, h, d = GATES.get(config.cell, 4), config.hidden, task.input_dim
    length, out = task.length, task.output_dim
    weights = g * (d * h + h * h + h) + h * out + out
    slots = OPTIMIZER_SLOTS.get(config.optimizer, 2)
    params = weights * (2 + slots)  # weights, gradients, optimizer state
    attention = ATTENTION_MAPS.get(config.cell, 0) * length * length
    acts = config.batch_size * (length * h * g * 3 + attention)
    y_per = length if task.output_kind == PER_STEP_CLASS else 1
    data = 2 * (DATA_CHUNK * config.batch_size + config.val_size) * (length * d + y_per)
    preds = config.val_size * y_per * out
    profile = config.profile_size * (length * (h * g * 3 + 2 * d) + attention)
    return int(FLOAT * (params + acts + data + preds + profile))


def available_bytes() -> int:
    """Memory available to a new process now (psutil's ``available``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_fits(configs, available: int | None = None, copies: int = 1) -> None:
    """Raise ``ValueError`` (one line, both numbers) when a config's estimate exceeds the
    memory available; each config of a grid is checked, the largest named.

    Args:
        configs: ``TrainConfig`` objects (one run, or every config of a sweep).
        available: bytes to compare with (default: :func:`available_bytes`).
        copies: models held at once per config (a population of that many members).
    """
    configs = list(configs)
    if not configs:
        return
    need, worst = max((estimate_bytes(c) * copies, i) for i, c in enumerate(configs))
    have = available_bytes() if available is None else available
    if need > have:
        c = configs[worst]
        raise ValueError(
            f"{c.run_name} (hidden {c.hidden}, batch {c.batch_size}, T "
            f"{c.seq_len}{f', {copies} at once' if copies > 1 else ''}) needs at least "
            f"{_gib(need)} of memory, and {_gib(have)} is "
            "available; use a smaller --hidden, --batch-size, --seq-len or val_size."
        )
