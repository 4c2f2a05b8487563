"""Build an ONNX graph straight from a trained Keras model's weights, in one of three forms.

Graph forms (``FORMS``; :func:`graph_forms` lists a cell's):

``native``: every cell with a native ONNX op maps to it (tf2onnx, and so Keras' own
``model.export(format="onnx")``, emits a ``Loop`` for GRU and SimpleRNN instead, 2-3x slower in
onnxruntime at batch 1)::

    simple_rnn -> RNN (Tanh)    irnn, relu_rnn -> RNN (Relu)    sigmoid_rnn -> RNN (Sigmoid)
    leaky_rnn -> RNN (LeakyRelu, activation_alpha = suite.core.models.LEAKY_SLOPE)
    lstm, chrono_lstm -> LSTM    gru -> GRU (linear_before_reset=1)

``scan``: the input projection ``x W + b`` of every time step hoisted out of the loop into one
MatMul over the whole sequence, then a ``Scan`` over time whose body does only the recurrent
step: ``z = xw_t + h U`` (one ``Gemm``) and the cell's gate math, as Keras does it::

    SimpleRNN cells   h' = act(z)                                  (Tanh, Relu, Sigmoid, LeakyRelu)
    lstm, chrono_lstm i, f, o = sigmoid(z_i, z_f, z_o), g = tanh(z_c)
                      c' = f * c + i * g, h' = o * tanh(c')        (Keras' i, f, c, o gates)
    gru               z, r = sigmoid(xw_zr + h U_zr + bh_zr)       (Keras reset_after=True,
                      hh = tanh(xw_h + r * (h U_h + bh_h))          gates z, r, h)
                      h' = z * h + (1 - z) * hh, as hh + z * (h - hh)
    ortho_rnn         h' = Sign(z) * Relu(Abs(z) + b_mod)          (modReLU; its only form)

``switch``: both, behind an ``If`` on the batch size: form ``low`` up to ``max_low_batch``,
``high`` above (``switch = (low, max_low_batch, high)``, metadata ``graph_form_switch``, e.g.
``native<=32<scan``); both branches read the same initializers.

onnxruntime's native ``RNN`` op is fastest at batch 1 but ~10x slower than the Scan at batch 64
(SimpleRNN, hidden 64, T = 100, 2-core CPU); which form wins is measured per model at export
(``suite.deploy.export.measure_forms``) and the model's metadata says which it is
(``graph_form``).

Graph: ``x`` [batch, time, features] (both dynamic) -> Transpose to time-major -> the
recurrence -> the Dense head -> ``y``: logits [batch, time, classes] (copy), logits [batch,
classes] (delayed_recall) or [batch, 1] (adding); per-step states stay time-major through the
head (one Transpose of the logits at the end). Metadata props carry task, seq_len, cell, clip,
run id, package version and graph form, so ``rnnbench infer`` can rebuild task data without
TensorFlow.

Weights: Keras LSTM packs its gates [i, f, c, o]; ONNX's LSTM wants [i, o, f, c] and the Scan
body [i, f, o, c] (the three sigmoid gates side by side: one Sigmoid node). Keras GRU packs
[z, r, h] as ONNX does, and its bias is [input bias; recurrent bias] like ONNX's Wb/Rb.
ortho_rnn's recurrent matrix is materialised at export (the Cayley transform of the trained
skew matrix, in float64 numpy).
"""

from __future__ import annotations

import numpy as np

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "x", "y"
FORMS = ("native", "scan", "switch")  # every graph form the builder knows; ties go to the first
FORM_META = "graph_form"  # the metadata key naming a model's form
SWITCH_META = "graph_form_switch"  # a switch's forms and batch limit, e.g. native<=32<scan
DEFAULT_SWITCH = ("native", 32, "scan")  # build_onnx's switch unless told one
# the cells with a native ONNX op (ortho_rnn's modReLU has none: it is built as a Scan only)
NATIVE_OPS = {"simple_rnn": "RNN", "irnn": "RNN", "relu_rnn": "RNN", "leaky_rnn": "RNN",
              "sigmoid_rnn": "RNN", "lstm": "LSTM", "chrono_lstm": "LSTM", "gru": "GRU"}  # fmt: skip


def graph_forms(cell: str) -> tuple[str, ...]:
    """The graph forms ``cell`` can be built in; the first is ``build_onnx``'s default.

    A cell this module does not build (its builder dispatched elsewhere) has one form, ``graph``.

    >>> graph_forms("gru"), graph_forms("ortho_rnn")
    (('native', 'scan', 'switch'), ('scan',))
    """
    if cell in NATIVE_OPS:
        return FORMS
    return ("scan",) if cell == "ortho_rnn" else ("graph",)


def _lstm_reorder(m: np.ndarray, H: int, order: str = "iofc") -> np.ndarray:
    """Reorder the gate axis (last) from Keras [i, f, c, o] to ``order`` (ONNX: [i, o, f, c])."""
    gates = dict(zip("ifco", (m[..., k * H : (k + 1) * H] for k in range(4)), strict=True))
    return np.concatenate([gates[g] for g in order], axis=-1)


def _lstm_family(cell: str) -> bool:
    return cell in ("lstm", "chrono_lstm")


# the ONNX RNN activation of each Keras SimpleRNN activation (suite.core.models)
RNN_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "leaky_relu": "LeakyRelu"}


def rnn_activation_attrs(cell: str) -> dict:
    """The ONNX ``RNN`` op's ``activations`` (and ``activation_alpha`` for LeakyRelu) of a
    SimpleRNN cell."""
    from suite.core.models import LEAKY_SLOPE, SIMPLE_RNN_ACTIVATIONS

    act = RNN_ACTIVATIONS[SIMPLE_RNN_ACTIVATIONS[cell]]
    attrs: dict = {"activations": [act]}
    if act == "LeakyRelu":
        attrs["activation_alpha"] = [LEAKY_SLOPE]
    return attrs


def _layer_weights(layer) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    return weights[0], weights[1], weights[2:]


def _gru_biases(rest: list[np.ndarray], H: int) -> tuple[np.ndarray, np.ndarray]:
    """Keras GRU's (input bias, recurrent bias), each [3H] (zeros without a bias)."""
    bias = rest[0] if rest else np.zeros((2, 3 * H), np.float32)
    return (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))


def recurrent_weights(cell: str, layer) -> dict[str, np.ndarray]:
    """The recurrent layer's weights as the native form's initializers.

    Native ops: ONNX ``W``, ``R``, ``B`` ([1, gates*H, d], [1, gates*H, H], [1, 2*gates*H]).
    ortho_rnn (no native op): :func:`scan_weights`.
    """
    if cell == "ortho_rnn":
        return scan_weights(cell, layer)
    kernel, recurrent, rest = _layer_weights(layer)
    H = recurrent.shape[0]
    if _lstm_family(cell):
        bias = rest[0] if rest else np.zeros(4 * H, np.float32)
        W, R = _lstm_reorder(kernel, H).T, _lstm_reorder(recurrent, H).T
        B = np.concatenate([_lstm_reorder(bias, H), np.zeros(4 * H, np.float32)])
    elif cell == "gru":
        W, R = kernel.T, recurrent.T  # both [z, r, h] in Keras and ONNX
        B = np.concatenate(_gru_biases(rest, H))
    else:
        bias = rest[0] if rest else np.zeros(H, np.float32)
        W, R = kernel.T, recurrent.T
        B = np.concatenate([bias, np.zeros(H, np.float32)])
    return {
        "W": W[None].astype(np.float32),
        "R": R[None].astype(np.float32),
        "B": B[None].astype(np.float32),
    }


def scan_weights(cell: str, layer) -> dict[str, np.ndarray]:
    """The recurrent layer's weights as the scan form's initializers.

    ``Wx`` [d, gates*H] and ``bx`` [gates*H]: the input kernel and bias (``x`` multiplies from
    the left); ``Wh`` [H, gates*H]: the recurrent matrix (``h`` multiplies from the left). LSTM
    gates in the order [i, f, o, c]; GRU [z, r, h] plus ``bh`` [3H] (the recurrent bias,
    inside the reset gate's product); ortho_rnn: ``Wh`` the materialised orthogonal matrix and
    ``b_mod`` [H] (modReLU bias).
    """
    kernel, recurrent, rest = _layer_weights(layer)
    H = recurrent.shape[0]
    if cell == "ortho_rnn":
        from suite.core.ortho import cayley_numpy

        out = {"Wx": kernel, "bx": rest[0], "Wh": cayley_numpy(recurrent), "b_mod": rest[1]}
    elif _lstm_family(cell):
        bias = rest[0] if rest else np.zeros(4 * H, np.float32)
        out = {"Wx": _lstm_reorder(kernel, H, "ifoc"), "bx": _lstm_reorder(bias, H, "ifoc"),
               "Wh": _lstm_reorder(recurrent, H, "ifoc")}  # fmt: skip
    elif cell == "gru":
        bx, bh = _gru_biases(rest, H)
        out = {"Wx": kernel, "bx": bx, "Wh": recurrent, "bh": bh}
    else:
        bias = rest[0] if rest else np.zeros(H, np.float32)
        out = {"Wx": kernel, "bx": bias, "Wh": recurrent}
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def build_onnx(
    model,
    cell: str,
    task,
    metadata: dict | None = None,
    form: str | None = None,
    switch: tuple[str, int, str] | None = None,
):
    """An ``onnx.ModelProto`` equivalent to ``model`` (built by ``suite.core.models.build_model``).

    Args:
        model: the trained Keras model.
        cell: its cell name (one of ``suite.core.models.CELLS``).
        task: the task it was trained on (output kind, widths).
        metadata: string key/values stored as the model's metadata props (``graph_form``, and
            for a switch ``graph_form_switch``, are added).
        form: one of :func:`graph_forms` (``cell``) [default: its first, the native op where
            there is one].
        switch: the ``switch`` form's ``(low, max_low_batch, high)``: form ``low`` runs
            batches up to ``max_low_batch``, ``high`` the larger ones [default:
            ``DEFAULT_SWITCH``].
    """
    from onnx import helper, numpy_helper

    from tasks import PER_STEP_CLASS

    if cell == "transformer":  # attention, not a recurrence: suite.deploy.onnx_transformer
        from suite.deploy.onnx_transformer import build_transformer_onnx

        return build_transformer_onnx(model, task, metadata)
    form = form or graph_forms(cell)[0]
    if form not in graph_forms(cell):
        raise ValueError(
            f"{cell} has no graph form {form!r}; it has: {', '.join(graph_forms(cell))}."
        )
    rnn = model.get_layer(cell)
    head = model.get_layer("head")
    H = rnn.units
    per_step = task.output_kind == PER_STEP_CLASS
    meta = {**(metadata or {}), FORM_META: form}
    if form == "switch":
        switch = check_switch(switch or DEFAULT_SWITCH)
        w = {**recurrent_weights(cell, rnn), **scan_weights(cell, rnn)}  # disjoint names
        nodes, last, more = _switch(cell, H, per_step, switch)
        meta[SWITCH_META] = switch_label(switch)
    else:
        w = recurrent_weights(cell, rnn) if form == "native" else scan_weights(cell, rnn)
        nodes, last, more = _recurrence(form, cell, H, per_step)
    kernel, bias = (np.asarray(v, np.float32) for v in head.get_weights())
    inits = [numpy_helper.from_array(v, name) for name, v in w.items()]
    inits += [numpy_helper.from_array(kernel, "head_W"), numpy_helper.from_array(bias, "head_b")]
    inits += more
    if per_step:  # time-major states [T, B, H]: the head, then logits [B, T, out]
        nodes += [
            helper.make_node("MatMul", [last, "head_W"], ["logits_tm_nb"]),
            helper.make_node("Add", ["logits_tm_nb", "head_b"], ["logits_tm"]),
            helper.make_node("Transpose", ["logits_tm"], [OUTPUT_NAME], perm=[1, 0, 2]),
        ]
    else:
        nodes += [
            helper.make_node("MatMul", [last, "head_W"], ["logits_nb"]),
            helper.make_node("Add", ["logits_nb", "head_b"], [OUTPUT_NAME]),
        ]
    return finish_model(nodes, inits, cell, task, kernel.shape[1], per_step, meta)


def finish_model(nodes, inits, cell: str, task, out_dim: int, per_step: bool, meta: dict):
    """The checked ModelProto of ``nodes``: input ``x`` [batch, time, features], output ``y``
    ([batch, time, out_dim] per step, else [batch, out_dim]), opset ``OPSET``, ``meta`` as
    its metadata props (every exported cell's graph ends here)."""
    import onnx
    from onnx import TensorProto, helper

    out_shape = ["batch", "time", out_dim] if per_step else ["batch", out_dim]
    graph = helper.make_graph(
        nodes,
        f"rnnbench_{task.name}_{cell}",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", "time", task.input_dim]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rnnbench"
    )
    proto.ir_version = min(proto.ir_version, 10)  # readable by older onnxruntime releases too
    helper.set_model_props(proto, {k: str(v) for k, v in (meta or {}).items()})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_switch(switch) -> tuple[str, int, str]:
    """``(low, max_low_batch, high)`` of a switch, checked: two different non-switch forms and
    a batch >= 1."""
    low, k, high = switch
    if {low, high} != {"native", "scan"} or isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(
            f"a switch is (low form, max batch >= 1, high form) of native and scan, got {switch!r}."
        )
    return str(low), int(k), str(high)


def switch_label(switch) -> str:
    """``graph_form_switch``'s value, e.g. ``native<=32<scan`` (native up to batch 32).

    >>> switch_label(("native", 32, "scan"))
    'native<=32<scan'
    """
    low, k, high = check_switch(switch)
    return f"{low}<={k}<{high}"


def parse_switch_label(label: str) -> tuple[str, int, str]:
    """:func:`switch_label` read back.

    >>> parse_switch_label("native<=32<scan")
    ('native', 32, 'scan')
    """
    low, rest = label.split("<=", 1)
    k, high = rest.split("<", 1)
    return check_switch((low, int(k), high))


def graph_ops(proto) -> list[str]:
    """The sorted op types of a model (or graph), its subgraphs' (Scan body, If branches) too."""
    graph = getattr(proto, "graph", proto)
    ops = set()
    for node in graph.node:
        ops.add(node.op_type)
        for a in node.attribute:
            for g in [a.g] if a.HasField("g") else list(a.graphs):
                ops.update(graph_ops(g))
    return sorted(ops)


def _recurrence(form: str, cell: str, H: int, per_step: bool):
    """(nodes, output name, int64 initializers) of one form from ``x`` to the states:
    time-major ``[T, B, H]`` (per-step outputs) or the last ``[B, H]``."""
    if form not in ("native", "scan"):
        raise ValueError(f"no recurrence of form {form!r} for {cell}.")
    return _native_rnn(cell, H, per_step) if form == "native" else _scan(cell, H, per_step)


def _switch(cell: str, H: int, per_step: bool, switch: tuple[str, int, str]):
    """The switch form: an ``If`` on the batch size whose branches are the two forms' graphs
    (both read the outer graph's initializers)."""
    from onnx import TensorProto, helper, numpy_helper

    low, k, high = switch
    shape = ["time", "batch", H] if per_step else ["batch", H]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "sw_zero"),
        numpy_helper.from_array(np.array([1], np.int64), "sw_one"),
        numpy_helper.from_array(np.array([k], np.int64), "sw_max_low"),
    ]
    branch = {}
    for form in (low, high):
        nodes, last, more = _recurrence(form, cell, H, per_step)
        inits += more  # the two forms' constants have different names
        out = helper.make_tensor_value_info(last, TensorProto.FLOAT, shape)
        branch[form] = helper.make_graph(nodes, f"{cell}_{form}", [], [out])
    nodes = [
        helper.make_node("Shape", [INPUT_NAME], ["sw_shape"]),
        helper.make_node("Slice", ["sw_shape", "sw_zero", "sw_one"], ["sw_batch"]),
        helper.make_node("LessOrEqual", ["sw_batch", "sw_max_low"], ["sw_low"]),
        helper.make_node(
            "If", ["sw_low"], ["rec"], then_branch=branch[low], else_branch=branch[high]
        ),
    ]
    return nodes, "rec", inits


def _native_rnn(cell: str, H: int, per_step: bool):
    """Nodes from ``x`` to the hidden states (``[T, B, H]`` or ``[B, H]``) with a native op."""
    from onnx import helper, numpy_helper

    inits = []
    nodes = [helper.make_node("Transpose", [INPUT_NAME], ["x_tm"], perm=[1, 0, 2])]  # [T, B, d]
    attrs = {"hidden_size": H}
    if _lstm_family(cell):
        op = "LSTM"
    elif cell == "gru":
        op, attrs["linear_before_reset"] = "GRU", 1
    else:
        op = "RNN"
        attrs.update(rnn_activation_attrs(cell))
    nodes.append(helper.make_node(op, ["x_tm", "W", "R", "B"], ["Y", "Y_h"], **attrs))
    if per_step:  # Y is [T, num_directions=1, B, H] -> [T, B, H]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
        nodes.append(helper.make_node("Squeeze", ["Y", "axis1"], ["Y_tm"]))
        return nodes, "Y_tm", inits
    # Y_h is [num_directions=1, B, H] -> [B, H]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    nodes.append(helper.make_node("Squeeze", ["Y_h", "axis0"], ["Y_last"]))
    return nodes, "Y_last", inits


def _step_body(cell: str, H: int):
    """The Scan body's gate math: (nodes, state names, scan-input names, int64 split sizes).

    Every body starts from ``h`` (and LSTM's ``c``) and the step's input term(s); ``h_next``
    (and ``c_next``) is the new state. Outer-scope names: ``Wh``, ``bh``, ``b_mod`` and the
    split sizes ``split_*``.
    """
    from onnx import helper

    node = helper.make_node
    if cell == "ortho_rnn":
        return (
            [
                node("Gemm", ["h", "Wh", "xw_t"], ["z"]),
                node("Abs", ["z"], ["z_abs"]),
                node("Add", ["z_abs", "b_mod"], ["z_shift"]),
                node("Relu", ["z_shift"], ["z_mod"]),
                node("Sign", ["z"], ["z_sign"]),
                node("Mul", ["z_sign", "z_mod"], ["h_next"]),
            ],
            ["h"],
            ["xw_t"],
            {},
        )
    if _lstm_family(cell):  # gates [i, f, o, c]
        return (
            [
                node("Gemm", ["h", "Wh", "xw_t"], ["z"]),
                node("Split", ["z", "split_3h_h"], ["z_s", "z_c"], axis=1),
                node("Sigmoid", ["z_s"], ["s"]),
                node("Split", ["s", "split_h_h_h"], ["i", "f", "o"], axis=1),
                node("Tanh", ["z_c"], ["g"]),
                node("Mul", ["f", "c"], ["fc"]),
                node("Mul", ["i", "g"], ["ig"]),
                node("Add", ["fc", "ig"], ["c_next"]),
                node("Tanh", ["c_next"], ["c_act"]),
                node("Mul", ["o", "c_act"], ["h_next"]),
            ],
            ["h", "c"],
            ["xw_t"],
            {"split_3h_h": [3 * H, H], "split_h_h_h": [H, H, H]},
        )
    if cell == "gru":  # gates [z, r, h]; the input terms come split: xzr_t [B, 2H], xh_t [B, H]
        return (
            [
                node("Gemm", ["h", "Wh", "bh"], ["hu"]),
                node("Split", ["hu", "split_2h_h"], ["hu_zr", "hu_h"], axis=1),
                node("Add", ["xzr_t", "hu_zr"], ["a_zr"]),
                node("Sigmoid", ["a_zr"], ["zr"]),
                node("Split", ["zr", "split_h_h"], ["zg", "rg"], axis=1),
                node("Mul", ["rg", "hu_h"], ["r_hu"]),
                node("Add", ["xh_t", "r_hu"], ["a_h"]),
                node("Tanh", ["a_h"], ["hh"]),
                node("Sub", ["h", "hh"], ["h_minus"]),
                node("Mul", ["zg", "h_minus"], ["z_h"]),
                node("Add", ["hh", "z_h"], ["h_next"]),
            ],
            ["h"],
            ["xzr_t", "xh_t"],
            {"split_2h_h": [2 * H, H], "split_h_h": [H, H]},
        )
    attrs = rnn_activation_attrs(cell)
    act = attrs["activations"][0]
    alpha = {"alpha": attrs["activation_alpha"][0]} if "activation_alpha" in attrs else {}
    return (
        [
            node("Gemm", ["h", "Wh", "xw_t"], ["z"]),
            node(act, ["z"], ["h_next"], **alpha),
        ],
        ["h"],
        ["xw_t"],
        {},
    )


def _scan(cell: str, H: int, per_step: bool):
    """The scan form's nodes: ``x W + b`` for every step in one MatMul, then a ``Scan`` over
    time running :func:`_step_body`. Returns the time-major states ``Y_tm`` [T, B, H]
    (per-step outputs) or the last state ``h_last`` [B, H]."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    body_nodes, states, scan_in, splits = _step_body(cell, H)
    outs = [f"{s}_next" for s in states]
    if per_step:
        body_nodes.append(helper.make_node("Identity", ["h_next"], ["h_out"]))
        outs.append("h_out")
    width = {"xzr_t": 2 * H, "xh_t": H}
    body = helper.make_graph(
        body_nodes,
        f"{cell}_step",
        [helper.make_tensor_value_info(s, f, ["batch", H]) for s in states]
        + [helper.make_tensor_value_info(s, f, ["batch", width.get(s, None)]) for s in scan_in],
        [helper.make_tensor_value_info(o, f, ["batch", H]) for o in outs],
    )
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "zero_i"),
        numpy_helper.from_array(np.array([1], np.int64), "one_i"),
        numpy_helper.from_array(np.array([H], np.int64), "hidden_i"),
    ] + [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in splits.items()]
    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["x_tm"], perm=[1, 0, 2]),  # [T, B, d]
        helper.make_node("MatMul", ["x_tm", "Wx"], ["xw_nb"]),  # [T, B, gates*H]: every step
        helper.make_node("Add", ["xw_nb", "bx"], ["xw"]),
        # h0 (and c0): zeros [B, H], B read from the input
        helper.make_node("Shape", [INPUT_NAME], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "zero_i", "one_i"], ["batch_i"]),
        helper.make_node("Concat", ["batch_i", "hidden_i"], ["h0_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["h0_shape"],
            ["h0"],
            value=helper.make_tensor("zero_f", f, [1], [0.0]),
        ),
    ]
    if cell == "gru":  # the z, r input terms and the candidate's, split once for every step
        inits.append(numpy_helper.from_array(np.array([2 * H, H], np.int64), "split_xw"))
        nodes.append(helper.make_node("Split", ["xw", "split_xw"], ["xw_zr", "xw_h"], axis=2))
        xs = ["xw_zr", "xw_h"]
    else:
        xs = ["xw"]
    last = ["h_last"] + (["c_last"] if len(states) == 2 else [])
    nodes.append(
        helper.make_node(
            "Scan",
            ["h0"] * len(states) + xs,
            last + (["Y_tm"] if per_step else []),
            num_scan_inputs=len(xs),
            body=body,
        )
    )
    return nodes, "Y_tm" if per_step else "h_last", inits
