"""Build an ONNX graph with native recurrent ops straight from a trained Keras model's weights.

tf2onnx (and so Keras' own ``model.export(format="onnx")``) emits ONNX's native ``LSTM`` op
for LSTM but a ``Loop`` for GRU and SimpleRNN, which runs 2-3x slower in onnxruntime at
batch 1. Here every cell maps to its native op:

    simple_rnn -> RNN (Tanh)    irnn -> RNN (Relu)    lstm -> LSTM    gru -> GRU (linear_before_reset=1)

Graph: ``x`` [batch, time, features] (both dynamic) -> Transpose to time-major -> recurrent
op -> the Dense head -> ``y``: logits [batch, time, classes] (copy), logits [batch, classes]
(delayed_recall) or [batch, 1] (adding). Metadata props carry task, seq_len, cell, clip, run
id and package version, so ``rnnbench infer`` can rebuild task data without TensorFlow.

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


def recurrent_weights(cell: str, layer) -> dict[str, np.ndarray]:
    """ONNX ``W``, ``R``, ``B`` ([1, gates*H, d], [1, gates*H, H], [1, 2*gates*H]) for a Keras layer."""
    weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    kernel, recurrent = weights[0], weights[1]
    H = recurrent.shape[0]
    if cell == "lstm":
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
        cell: its cell name (``simple_rnn``, ``irnn``, ``lstm``, ``gru``).
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
    nodes = [helper.make_node("Transpose", [INPUT_NAME], ["x_tm"], perm=[1, 0, 2])]  # [T, B, d]
    attrs = {"hidden_size": H}
    if cell == "lstm":
        op = "LSTM"
    elif cell == "gru":
        op, attrs["linear_before_reset"] = "GRU", 1
    else:
        op, attrs["activations"] = "RNN", ["Relu" if cell == "irnn" else "Tanh"]
    nodes.append(helper.make_node(op, ["x_tm", "W", "R", "B"], ["Y", "Y_h"], **attrs))
    per_step = task.output_kind == PER_STEP_CLASS
    if per_step:  # Y is [T, num_directions=1, B, H] -> [B, T, H]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
        nodes += [
            helper.make_node("Squeeze", ["Y", "axis1"], ["Y_s"]),
            helper.make_node("Transpose", ["Y_s"], ["Y_bm"], perm=[1, 0, 2]),
        ]
        last = "Y_bm"
    else:  # Y_h is [num_directions=1, B, H] -> [B, H]
        inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
        nodes.append(helper.make_node("Squeeze", ["Y_h", "axis0"], ["Y_last"]))
        last = "Y_last"
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
