"""The transformer cell as an ONNX graph built with ``onnx.helper`` from the trained weights.

Same conventions as the RNN exports (``suite.deploy.onnx_build``): opset ``OPSET`` (17), input
``x`` [batch, time, features] with both axes dynamic, output ``y`` (logits [batch, time,
classes] for copy, [batch, classes] or [batch, 1] at the last position otherwise), the
metadata props ``rnnbench infer`` reads, ``onnx.checker`` run with ``full_check``.

Graph (``suite.core.transformer.CausalTransformer``, written out):

    T       = Gather(Shape(x), 1); t = Cast(Range(0, T, 1))                 positions 0..T-1
    pos     = Sin(t[:, None] * w + phase)                                   [T, d], in-graph
    future  = Greater(t[None, :], t[:, None])                               [T, T] causal mask
    h       = x @ embed_W + embed_b + pos
    block i: a = LayerNormalization(h); q, k, v = a @ W + b, Reshape [B, T, heads, key_dim],
             Transpose to [B, heads, T, key_dim]; s = (q * key_dim^-1/2) @ k^T;
             s = Where(future, -1e9, s); p = Softmax(s, axis=-1); h += (p @ v merged) @ Wo + bo
             f = LayerNormalization(h); h += Relu(f @ W1 + b1) @ W2 + b2
    h       = LayerNormalization(h); Gather(h, -1, axis=1) unless per-step; y = h @ head_W + head_b

``w`` and ``phase`` are the Keras layer's own float32 constants
(``suite.core.transformer.position_constants``); no maximum length is baked in. Masked
scores get ``-1e9`` (their softmax weight underflows to exactly 0, as Keras's mask gives).
Ops: Shape, Gather, Range, Cast, Unsqueeze, Mul, Add, Sin, Greater, Where, MatMul, Reshape,
Transpose, Softmax, LayerNormalization, Relu: all in ``onnx.reference.ReferenceEvaluator`` too.
"""

from __future__ import annotations

import numpy as np

from suite.deploy.onnx_build import INPUT_NAME, OUTPUT_NAME, finish_model

MASKED_SCORE = -1e9  # a future position's attention score before the softmax


def _f32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)


def transformer_weights(layer) -> dict[str, np.ndarray]:
    """The encoder's weights as the graph's initializers (attention kernels as matrices:
    query/key/value ``[d, heads * key_dim]``, output ``[heads * key_dim, d]``)."""
    from suite.core.transformer import position_constants

    d = layer.d_model
    freq, phase = position_constants(d)
    w = {
        "pos_freq": freq[None, :],
        "pos_phase": phase[None, :],
        "embed_W": _f32(layer.embed.kernel),
        "embed_b": _f32(layer.embed.bias),
    }
    for i in range(layer.num_layers):
        attn = layer.attentions[i]
        parts = {"q": attn.query_dense, "k": attn.key_dense, "v": attn.value_dense}
        for part, dense in parts.items():
            w[f"b{i}_{part}_W"] = _f32(dense.kernel).reshape(d, -1)
            w[f"b{i}_{part}_b"] = _f32(dense.bias).reshape(-1)
        w[f"b{i}_o_W"] = _f32(attn.output_dense.kernel).reshape(-1, d)
        w[f"b{i}_o_b"] = _f32(attn.output_dense.bias)
        for name, norm in (("ln1", layer.attn_norms[i]), ("ln2", layer.ffn_norms[i])):
            w[f"b{i}_{name}_g"], w[f"b{i}_{name}_b"] = _f32(norm.gamma), _f32(norm.beta)
        for name, dense in (("f1", layer.ffn_ins[i]), ("f2", layer.ffn_outs[i])):
            w[f"b{i}_{name}_W"], w[f"b{i}_{name}_b"] = _f32(dense.kernel), _f32(dense.bias)
    w["final_g"], w["final_b"] = _f32(layer.final_norm.gamma), _f32(layer.final_norm.beta)
    return w


def _layer_norm(helper, x: str, prefix: str, out: str, epsilon: float):
    return helper.make_node(
        "LayerNormalization", [x, f"{prefix}_g", f"{prefix}_b"], [out], axis=-1, epsilon=epsilon
    )


def _dense(helper, x: str, prefix: str, out: str) -> list:
    return [
        helper.make_node("MatMul", [x, f"{prefix}_W"], [f"{out}_nb"]),
        helper.make_node("Add", [f"{out}_nb", f"{prefix}_b"], [out]),
    ]


def _block(helper, i: int, h: str, epsilon: float) -> tuple[list, str]:
    """Block ``i``'s nodes from the stream ``h``; returns them and the new stream's name."""
    p = f"b{i}"
    nodes = [_layer_norm(helper, h, f"{p}_ln1", f"{p}_a", epsilon)]
    for part in ("q", "k", "v"):
        nodes += _dense(helper, f"{p}_a", f"{p}_{part}", f"{p}_{part}")
        nodes.append(helper.make_node("Reshape", [f"{p}_{part}", "heads_shape"], [f"{p}_{part}4"]))
    nodes += [
        # [B, T, N, k] -> q, v: [B, N, T, k], k: [B, N, k, T]
        helper.make_node("Transpose", [f"{p}_q4"], [f"{p}_qh"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", [f"{p}_k4"], [f"{p}_kt"], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", [f"{p}_v4"], [f"{p}_vh"], perm=[0, 2, 1, 3]),
        helper.make_node("Mul", [f"{p}_qh", "attn_scale"], [f"{p}_qs"]),
        helper.make_node("MatMul", [f"{p}_qs", f"{p}_kt"], [f"{p}_s"]),  # [B, N, T, T]
        helper.make_node("Where", ["future", "masked_score", f"{p}_s"], [f"{p}_sm"]),
        helper.make_node("Softmax", [f"{p}_sm"], [f"{p}_p"], axis=-1),
        helper.make_node("MatMul", [f"{p}_p", f"{p}_vh"], [f"{p}_c"]),  # [B, N, T, k]
        helper.make_node("Transpose", [f"{p}_c"], [f"{p}_ct"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", [f"{p}_ct", "model_shape"], [f"{p}_cm"]),  # [B, T, d]
    ]
    nodes += _dense(helper, f"{p}_cm", f"{p}_o", f"{p}_att")
    nodes.append(helper.make_node("Add", [h, f"{p}_att"], [f"{p}_h1"]))
    nodes.append(_layer_norm(helper, f"{p}_h1", f"{p}_ln2", f"{p}_f", epsilon))
    nodes += _dense(helper, f"{p}_f", f"{p}_f1", f"{p}_f1")
    nodes.append(helper.make_node("Relu", [f"{p}_f1"], [f"{p}_f1r"]))
    nodes += _dense(helper, f"{p}_f1r", f"{p}_f2", f"{p}_f2")
    nodes.append(helper.make_node("Add", [f"{p}_h1", f"{p}_f2"], [f"{p}_h2"]))
    return nodes, f"{p}_h2"


def build_transformer_onnx(model, task, metadata: dict | None = None):
    """An ``onnx.ModelProto`` equivalent to a transformer-cell ``model`` (built by
    ``suite.core.transformer.build_transformer``); ``build_onnx`` calls it for that cell.

    Args:
        model: the trained Keras model.
        task: the task it was trained on (output kind, widths).
        metadata: string key/values stored as the model's metadata props.
    """
    from onnx import TensorProto, helper, numpy_helper

    from tasks import PER_STEP_CLASS

    layer = model.get_layer("transformer")
    head = model.get_layer("head")
    d, heads = layer.d_model, layer.num_heads
    key_dim = d // heads
    weights = transformer_weights(layer)
    weights["head_W"], weights["head_b"] = (_f32(v) for v in head.get_weights())
    consts = {
        "zero_i": np.array(0, np.int64),
        "one_i": np.array(1, np.int64),
        "axes0": np.array([0], np.int64),
        "axes1": np.array([1], np.int64),
        "heads_shape": np.array([0, 0, heads, key_dim], np.int64),
        "model_shape": np.array([0, 0, d], np.int64),
        "attn_scale": np.array(1.0 / np.sqrt(float(key_dim)), np.float32),
        "masked_score": np.array(MASKED_SCORE, np.float32),
    }
    per_step = task.output_kind == PER_STEP_CLASS
    if not per_step:
        consts["last_i"] = np.array(-1, np.int64)  # Gather's index of the last position
    inits = [numpy_helper.from_array(v, k) for k, v in {**weights, **consts}.items()]
    nodes = [
        # positions 0..T-1 for the input's own T, their sinusoids, and the causal mask
        helper.make_node("Shape", [INPUT_NAME], ["x_shape"]),
        helper.make_node("Gather", ["x_shape", "one_i"], ["time"], axis=0),  # scalar T
        helper.make_node("Range", ["zero_i", "time", "one_i"], ["t_i"]),
        helper.make_node("Cast", ["t_i"], ["t"], to=TensorProto.FLOAT),  # [T]
        helper.make_node("Unsqueeze", ["t", "axes1"], ["t_col"]),  # [T, 1]
        helper.make_node("Unsqueeze", ["t", "axes0"], ["t_row"]),  # [1, T]
        helper.make_node("Mul", ["t_col", "pos_freq"], ["pos_angle_nb"]),
        helper.make_node("Add", ["pos_angle_nb", "pos_phase"], ["pos_angle"]),
        helper.make_node("Sin", ["pos_angle"], ["pos"]),  # [T, d]
        helper.make_node("Greater", ["t_row", "t_col"], ["future"]),  # key after query
        *_dense(helper, INPUT_NAME, "embed", "emb"),
        helper.make_node("Add", ["emb", "pos"], ["h0"]),
    ]
    h = "h0"
    for i in range(layer.num_layers):
        more, h = _block(helper, i, h, layer.epsilon)
        nodes += more
    nodes.append(_layer_norm(helper, h, "final", "enc", layer.epsilon))
    if not per_step:  # the last position: [B, d]
        nodes.append(helper.make_node("Gather", ["enc", "last_i"], ["enc_last"], axis=1))
    nodes += [
        helper.make_node("MatMul", ["enc" if per_step else "enc_last", "head_W"], ["logits_nb"]),
        helper.make_node("Add", ["logits_nb", "head_b"], [OUTPUT_NAME]),
    ]
    return finish_model(nodes, inits, "transformer", task, weights["head_W"].shape[1], per_step,
                        metadata)  # fmt: skip
