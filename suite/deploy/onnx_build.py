"""Build an ONNX graph with native recurrent ops straight from a trained Keras model's weights.

tf2onnx (and so Keras' own ``model.export(format="onnx")``) emits ONNX's native ``LSTM`` op
for LSTM but a ``Loop`` for GRU and SimpleRNN, which runs 2-3x slower in onnxruntime at
batch 1. Here every cell with a native op maps to it:

    simple_rnn -> RNN (Tanh)    irnn, relu_rnn -> RNN (Relu)    sigmoid_rnn -> RNN (Sigmoid)
    leaky_rnn -> RNN (LeakyRelu, activation_alpha = suite.core.models.LEAKY_SLOPE)
    lstm, chrono_lstm -> LSTM    gru -> GRU (linear_before_reset=1)
    ortho_rnn -> Scan (no native op has modReLU)

Graph: ``x`` [batch, time, features] (both dynamic) -> Transpose to time-major -> recurrent
op -> the Dense head -> ``y``: logits [batch, time, classes] (copy), logits [batch, classes]
(delayed_recall) or [batch, 1] (adding). Metadata props carry task, seq_len, cell, clip, run
id and package version, so ``rnnbench infer`` can rebuild task data without TensorFlow.

ortho_rnn: its recurrent matrix ``W`` is materialised at export (the Cayley transform of the
trained skew matrix, in float64 numpy), the input term ``x K + b_in`` is one MatMul over the
whole sequence, and a ``Scan`` over time runs the body ``z = xk_t + h W``,
``h' = Sign(z) * Relu(Abs(z) + b)`` (modReLU).

Gate orders: Keras LSTM packs [i, f, c, o], ONNX wants [i, o, f, c]; Keras GRU packs
[z, r, h] as ONNX does; Keras GRU's bias is [input bias; recurrent bias] like ONNX's Wb/Rb.
"""

from __future__ import annotations

import numpy as np

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "x", "y"


def _lstm_reorder(m: np.ndarray, H: int) -> np.ndarray:
    """Reorder the gate axis (last) from Keras [i, f, c, o] to ONNX [i, o, f, c]."""
    i, f, c, o = (m[..., k * H : (k + 1) * H] for k in range(4))
    return np.concatenate([i, o, f, c], axis=-1)


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


def recurrent_weights(cell: str, layer) -> dict[str, np.ndarray]:
    """The recurrent layer's weights as the graph's initializers.

    Native ops: ONNX ``W``, ``R``, ``B`` ([1, gates*H, d], [1, gates*H, H], [1, 2*gates*H]).
    ortho_rnn: ``Wx`` [d, H] (input kernel), ``Wh`` [H, H] (the materialised orthogonal
    matrix, ``h`` multiplies it from the left), ``b_in`` [H] and ``b_mod`` [H] (modReLU bias).
    """
    weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    kernel, recurrent = weights[0], weights[1]
    H = recurrent.shape[0]
    if cell == "ortho_rnn":
        from suite.core.ortho import cayley_numpy

        return {
            "Wx": kernel,
            "Wh": cayley_numpy(recurrent).astype(np.float32),
            "b_in": weights[2],
            "b_mod": weights[3],
        }
    if _lstm_family(cell):
        bias = weights[2] if len(weights) > 2 else np.zeros(4 * H, np.float32)
        W, R = _lstm_reorder(kernel, H).T, _lstm_reorder(recurrent, H).T
        B = np.concatenate([_lstm_reorder(bias, H), np.zeros(4 * H, np.float32)])
    elif cell == "gru":
        bias = weights[2] if len(weights) > 2 else np.zeros((2, 3 * H), np.float32)
        W, R = kernel.T, recurrent.T  # both [z, r, h] in Keras and ONNX
        B = (
            np.concatenate([bias[0], bias[1]])
            if bias.ndim == 2
            else np.concatenate([bias, np.zeros_like(bias)])
        )
    else:
        bias = weights[2] if len(weights) > 2 else np.zeros(H, np.float32)
        W, R = kernel.T, recurrent.T
        B = np.concatenate([bias, np.zeros(H, np.float32)])
    return {
        "W": W[None].astype(np.float32),
        "R": R[None].astype(np.float32),
        "B": B[None].astype(np.float32),
    }


def build_onnx(model, cell: str, task, metadata: dict | None = None):
    """An ``onnx.ModelProto`` equivalent to ``model`` (built by ``suite.core.models.build_model``).

    Args:
        model: the trained Keras model.
        cell: its cell name (one of ``suite.core.models.CELLS``).
        task: the task it was trained on (output kind, widths).
        metadata: string key/values stored as the model's metadata props.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tasks import PER_STEP_CLASS

    rnn = model.get_layer(cell)
    head = model.get_layer("head")
    H = rnn.units
    w = recurrent_weights(cell, rnn)
    kernel, bias = (np.asarray(v, np.float32) for v in head.get_weights())
    inits = [numpy_helper.from_array(v, name) for name, v in w.items()]
    inits += [numpy_helper.from_array(kernel, "head_W"), numpy_helper.from_array(bias, "head_b")]
    per_step = task.output_kind == PER_STEP_CLASS
    recurrence = _ortho_scan if cell == "ortho_rnn" else lambda H, p: _native_rnn(cell, H, p)
    nodes, last, more = recurrence(H, per_step)
    inits += more
    nodes += [
        helper.make_node("MatMul", [last, "head_W"], ["logits_nb"]),
        helper.make_node("Add", ["logits_nb", "head_b"], [OUTPUT_NAME]),
    ]
    out_dim = kernel.shape[1]
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
    helper.set_model_props(proto, {k: str(v) for k, v in (metadata or {}).items()})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _native_rnn(cell: str, H: int, per_step: bool):
    """Nodes from ``x`` to the hidden states (``[B, T, H]`` or ``[B, H]``) with a native op."""
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
    if per_step:  # Y is [T, num_directions=1, B, H] -> [B, T, H]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
        nodes += [
            helper.make_node("Squeeze", ["Y", "axis1"], ["Y_s"]),
            helper.make_node("Transpose", ["Y_s"], ["Y_bm"], perm=[1, 0, 2]),
        ]
        return nodes, "Y_bm", inits
    # Y_h is [num_directions=1, B, H] -> [B, H]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    nodes.append(helper.make_node("Squeeze", ["Y_h", "axis0"], ["Y_last"]))
    return nodes, "Y_last", inits


def _ortho_scan(H: int, per_step: bool):
    """ortho_rnn's nodes: ``x K + b_in`` for every step, then a ``Scan`` over time whose body
    is ``h' = modReLU(xk_t + h Wh)``; reads the initializers ``Wx``, ``Wh``, ``b_in``,
    ``b_mod`` (the body reads ``Wh`` and ``b_mod`` from the outer graph)."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["h_prev", "Wh"], ["hw"]),
            helper.make_node("Add", ["hw", "xk_t"], ["z"]),
            helper.make_node("Abs", ["z"], ["z_abs"]),
            helper.make_node("Add", ["z_abs", "b_mod"], ["z_shift"]),
            helper.make_node("Relu", ["z_shift"], ["z_mod"]),
            helper.make_node("Sign", ["z"], ["z_sign"]),
            helper.make_node("Mul", ["z_sign", "z_mod"], ["h_next"]),
            helper.make_node("Identity", ["h_next"], ["h_out"]),
        ],
        "ortho_rnn_step",
        [
            helper.make_tensor_value_info("h_prev", f, ["batch", H]),
            helper.make_tensor_value_info("xk_t", f, ["batch", H]),
        ],
        [
            helper.make_tensor_value_info("h_next", f, ["batch", H]),
            helper.make_tensor_value_info("h_out", f, ["batch", H]),
        ],
    )
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "zero_i"),
        numpy_helper.from_array(np.array([1], np.int64), "one_i"),
        numpy_helper.from_array(np.array([H], np.int64), "hidden_i"),
    ]
    nodes = [
        helper.make_node("MatMul", [INPUT_NAME, "Wx"], ["xk_nb"]),  # [B, T, H]
        helper.make_node("Add", ["xk_nb", "b_in"], ["xk"]),
        helper.make_node("Transpose", ["xk"], ["xk_tm"], perm=[1, 0, 2]),  # [T, B, H]
        # h0: zeros [B, H], B read from the input
        helper.make_node("Shape", [INPUT_NAME], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "zero_i", "one_i"], ["batch_i"]),
        helper.make_node("Concat", ["batch_i", "hidden_i"], ["h0_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["h0_shape"],
            ["h0"],
            value=helper.make_tensor("zero_f", f, [1], [0.0]),
        ),
        helper.make_node("Scan", ["h0", "xk_tm"], ["h_last", "Y"], num_scan_inputs=1, body=body),
    ]
    if per_step:
        nodes.append(helper.make_node("Transpose", ["Y"], ["Y_bm"], perm=[1, 0, 2]))
        return nodes, "Y_bm", inits
    return nodes, "h_last", inits
