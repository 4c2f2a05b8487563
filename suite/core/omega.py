"""Pascanu, Mikolov & Bengio 2013's vanishing-gradient regulariser Ω (their eq. 10).

For a vanilla RNN ``h_t = f(z_t)``, ``z_t = x_t W + h_{t-1} U + b`` (Keras's row convention,
``U`` the SimpleRNN's ``recurrent_kernel``) and ``δ_t = ∂L/∂h_t``, the TOTAL derivative of the
loss with respect to ``h_t`` (through all later steps and the head):

    a_n = δ_{t+1} ⊙ f′(z_{t+1}),   v_n = a_n Uᵀ   (= ∂L/∂h_t through one recurrent step)
    r_n = ‖v_n‖² / ‖δ_{t+1}‖²
    Ω   = mean over n = (t, batch), t = 1..T-1, of (r_n − 1)²

Entries with ``‖δ_{t+1}‖² < DELTA_FLOOR`` are left out of the mean (Ω = 0 if none is kept).
``δ`` and ``f′`` (and ``h``) are held constant: only the immediate derivative with respect to
``U`` counts, which has the closed form

    ∂Ω/∂U = (4/N) Σ_n ((r_n − 1) / ‖δ_{t+1}‖²) v_nᵀ a_n      (N: the kept entries)

``f`` is tanh for simple_rnn (``f′ = 1 − h²``) and ReLU for irnn (``f′ = 1[h > 0]``). The
train step adds ``α ∂Ω/∂U`` to the loss gradient of the recurrent kernel before clipping and
the optimizer (``suite.core.steps``).

The Keras layer does not expose its per-step states, so δ comes from :func:`forward`, a
manual forward of the same SimpleRNN (Keras's math: ``h_t = act(x_t W + b + h_{t-1} U)``,
zero initial state) with an additive zero perturbation ``e_t`` on each ``h_t``, then the
"head" Dense layer (on the last state, or on every state for per-step tasks): ``δ = ∂L/∂e``.
The autodiff with respect to ``e`` is the backend's (``jax.grad`` in the JAX step, a
``tf.GradientTape`` in the TensorFlow step); everything else is here, in ``keras.ops``.

Example (U = 2 I, f′ = 1: every one-step gradient doubles, r = 4, Ω = (4 − 1)² = 9):
    >>> import numpy as np
    >>> delta, hs = np.ones((3, 2, 4), "float32"), np.zeros((3, 2, 4), "float32")
    >>> omega, d_u = omega_and_grad(delta, hs, 2 * np.eye(4, dtype="float32"), "tanh")
    >>> float(omega)
    9.0

    In a train step (``values``: the trainable values; ``grad_wrt_e``: the backend's):
    >>> layout = omega_layout(model, task)                                    # doctest: +SKIP
    >>> e = zero_perturbation(values, layout, x)                              # doctest: +SKIP
    >>> delta, hs = grad_wrt_e(lambda e: forward(values, layout, x, e), e)    # doctest: +SKIP
    >>> omega, d_u = omega_and_grad(delta, hs, values[layout.recurrent], layout.activation)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

OMEGA_CELLS = ("simple_rnn", "irnn")  # the cells Ω applies to (a Keras SimpleRNN layer)
ACTIVATIONS = ("tanh", "relu")  # simple_rnn, irnn
DELTA_FLOOR = 1e-20  # entries with ‖δ_{t+1}‖² below this are left out of Ω's mean


@dataclass(frozen=True)
class OmegaLayout:
    """Where the regulariser's weights sit in ``model.trainable_variables`` (indices), the
    recurrent activation, and whether the head reads every state (per-step tasks)."""

    kernel: int
    recurrent: int
    bias: int
    head_kernel: int
    head_bias: int
    activation: str  # "tanh" | "relu"
    per_step: bool


def omega_layout(model, task) -> OmegaLayout:
    """The :class:`OmegaLayout` of a ``build_model`` model (one SimpleRNN layer, a "head").

    Raises:
        ValueError: the model has no single SimpleRNN layer with tanh or ReLU and a bias.
    """
    import keras

    from tasks import PER_STEP_CLASS

    rnns = [la for la in model.layers if isinstance(la, keras.layers.SimpleRNN)]
    if len(rnns) != 1:
        raise ValueError(
            f"omega needs a model with one SimpleRNN layer (cells: {', '.join(OMEGA_CELLS)})."
        )
    rnn, head = rnns[0], model.get_layer("head")
    activation = rnn.get_config()["activation"]
    if activation not in ACTIVATIONS or rnn.cell.bias is None:
        raise ValueError(
            f"omega needs a SimpleRNN with bias and activation tanh or relu, got {activation!r}."
        )
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    return OmegaLayout(
        kernel=index[id(rnn.cell.kernel)],
        recurrent=index[id(rnn.cell.recurrent_kernel)],
        bias=index[id(rnn.cell.bias)],
        head_kernel=index[id(head.kernel)],
        head_bias=index[id(head.bias)],
        activation=activation,
        per_step=task.output_kind == PER_STEP_CLASS,
    )


def _act(name: str, z):
    from keras import ops

    return ops.tanh(z) if name == "tanh" else ops.relu(z)


def zero_perturbation(values, layout: OmegaLayout, x):
    """The zero perturbation ``e`` of :func:`forward`: ``[time, batch, hidden]``."""
    from keras import ops

    xw = ops.matmul(x, values[layout.kernel])  # [batch, time, hidden]
    return ops.zeros_like(ops.transpose(xw, (1, 0, 2)))


def forward(values, layout: OmegaLayout, x, e):
    """The model's forward pass written out, with ``e_t`` added to each state ``h_t``.

    Args:
        values: the model's trainable values, in ``model.trainable_variables`` order.
        layout: from :func:`omega_layout`.
        x: inputs ``[batch, time, features]``.
        e: the perturbation ``[time, batch, hidden]`` (zeros: the model's own output).

    Returns:
        ``(pred, hs)``: the model's output (as ``model(x)`` returns it) and the states
        ``h_t + e_t``, ``[time, batch, hidden]``.
    """
    from keras import ops

    w, u, b = values[layout.kernel], values[layout.recurrent], values[layout.bias]
    xw = ops.transpose(ops.add(ops.matmul(x, w), b), (1, 0, 2))  # [time, batch, hidden]
    hidden = u.shape[-1]

    def step(h, xw_e):
        xw_t, e_t = xw_e[..., :hidden], xw_e[..., hidden:]
        h = _act(layout.activation, xw_t + ops.matmul(h, u)) + e_t
        return h, h

    # one scanned tensor: Keras 3.15's TensorFlow scan fails on several with a dynamic length
    _, hs = ops.scan(step, ops.zeros_like(xw[0]), ops.concatenate([xw, e], axis=-1))
    k, c = values[layout.head_kernel], values[layout.head_bias]
    if layout.per_step:
        return ops.add(ops.matmul(ops.transpose(hs, (1, 0, 2)), k), c), hs
    return ops.add(ops.matmul(hs[-1], k), c), hs


def omega_and_grad(delta, hs, u, activation: str):
    """Ω and its immediate derivative ∂Ω/∂U (the module's formula, δ and f′ constant).

    Args:
        delta: ``∂L/∂h_t``, ``[time, batch, hidden]``.
        hs: the states ``h_t``, ``[time, batch, hidden]`` (f′ is computed from them).
        u: the recurrent kernel ``U``, ``[hidden, hidden]``.
        activation: ``tanh`` or ``relu``.

    Returns:
        ``(omega, d_u)``: a scalar and a ``[hidden, hidden]`` array like ``u``.
    """
    from keras import ops

    hidden = u.shape[-1]
    fprime = 1.0 - ops.square(hs) if activation == "tanh" else ops.cast(hs > 0, hs.dtype)
    d = ops.reshape(delta[1:], (-1, hidden))  # δ_{t+1}, rows n = (t, batch)
    a = d * ops.reshape(fprime[1:], (-1, hidden))
    v = ops.matmul(a, ops.transpose(u))
    dn = ops.sum(ops.square(d), axis=-1)
    kept = dn >= DELTA_FLOOR
    dn_safe = ops.where(kept, dn, 1.0)
    r = ops.sum(ops.square(v), axis=-1) / dn_safe
    count = ops.maximum(ops.sum(ops.cast(kept, a.dtype)), 1.0)
    omega = ops.sum(ops.where(kept, ops.square(r - 1.0), 0.0)) / count
    c = ops.where(kept, 4.0 * (r - 1.0) / dn_safe, 0.0) / count
    d_u = ops.matmul(ops.transpose(v * c[:, None]), a)
    return omega, d_u
