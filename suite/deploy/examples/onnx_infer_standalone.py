"""Run an rnnbench ONNX export with numpy + onnxruntime only (copy this file anywhere).

    pip install numpy onnxruntime
    python onnx_infer_standalone.py reports/onnx/adding-T50-irnn.onnx            # adding: fresh data, MSE
    python onnx_infer_standalone.py model.onnx --input x.npy                       # any task: your [batch, time, features] array
    python onnx_infer_standalone.py model.onnx --input x.npy --out y.npy           # ... and save every prediction

The model's input is ``x`` float32 [batch, time, features] (batch and time dynamic); its output ``y``
is logits [batch, time, classes] (copy), logits [batch, classes] (delayed_recall) or [batch, 1]
(adding). Metadata (task, seq_len, cell, clip, run_id, output_kind, ...) is in the model's
metadata props. It prints the first predictions (the predicted class of classification outputs:
the argmax of the logits); ``--out`` writes all of them with ``numpy.save``.
"""

import argparse
import time

import numpy as np
import onnxruntime as ort


def adding_data(n, T, rng):
    """The adding problem: values in [0, 1), one marker in each half; target = sum of marked values."""
    values = rng.random((n, T), dtype=np.float32)
    first, second = rng.integers(0, T // 2, n), rng.integers(T // 2, T, n)
    markers = np.zeros((n, T), np.float32)
    markers[np.arange(n), first] = markers[np.arange(n), second] = 1.0
    y = values[np.arange(n), first] + values[np.arange(n), second]
    return np.stack([values, markers], -1), y


def show(values, fmt, limit=16):
    """``values`` formatted, the middle elided when there are more than ``limit``."""
    values = [fmt.format(v) for v in values]
    return " ".join(values if len(values) <= limit else values[:4] + ["…"] + values[4 - limit :])


def print_predictions(out, kind, rows=5):
    """The first ``rows`` predictions, rounded; classes for classification outputs."""
    print(f"predictions {list(out.shape)} ({kind or 'raw outputs'}), first {min(rows, len(out))}:")
    for i, row in enumerate(out[:rows]):
        if kind == "final_scalar":  # adding: one value per sequence
            text = f"{float(row.reshape(-1)[0]):.4f}"
        elif kind == "final_class":  # logits [classes]: the class is their argmax
            text = f"class {int(row.argmax())}  logits [{show(row, '{:.2f}')}]"
        elif kind == "per_step_class":  # logits [time, classes]: one class per step
            text = f"classes {show(row.argmax(-1), '{}')}"
        else:
            text = show(row.reshape(-1), "{:.4f}")
        print(f"  #{i:<3d} {text}")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model")
    ap.add_argument("--input", help=".npy array [batch, time, features]")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--out", help="write every prediction to this .npy file (numpy.save)")
    args = ap.parse_args()
    if args.out and not args.out.endswith(".npy"):
        ap.error(f"--out {args.out!r} must name a .npy file")

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    print(
        "model:", {k: meta[k] for k in ("task", "seq_len", "cell", "clip", "status") if k in meta}
    )
    T = int(meta.get("seq_len", 50))
    y = None
    if args.input:
        x = np.load(args.input).astype(np.float32)
    elif meta.get("task") == "adding":
        x, y = adding_data(args.n, T, np.random.default_rng(0))
    else:
        width = session.get_inputs()[0].shape[-1]
        x = np.random.default_rng(0).random((args.n, T, width), dtype=np.float32)
        print("no --input given: running on random inputs (shape check only)")
    out = session.run(None, {"x": x})[0]
    print("output shape:", out.shape)
    print_predictions(out, meta.get("output_kind"))
    if args.out:
        np.save(args.out, out)
        print(f"all predictions written to {args.out}")
    if y is not None:
        print(
            f"adding MSE: {float(np.mean((out[:, 0] - y) ** 2)):.5f} (baseline 0.1667, solved <= 0.01)"
        )
    t0 = time.perf_counter()
    for _ in range(100):
        session.run(None, {"x": x[:1]})
    print(f"latency batch 1: {(time.perf_counter() - t0) * 10:.3f} ms per call")


if __name__ == "__main__":
    main()
