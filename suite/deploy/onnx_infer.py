"""Run an exported rnnbench ONNX model with onnxruntime: numpy + onnxruntime only.

This module never imports TensorFlow or Keras (``rnnbench infer`` relies on that). A model
is a ``.onnx`` path, or a registry URI such as ``models:/rnnbench-adding-T50@champion``
(resolved through MLflow's artifact download, which does not import TensorFlow either).

Example:
    >>> result = run_inference("reports/onnx/adding-T50-irnn.onnx")   # doctest: +SKIP
    >>> result["solved"], result["predictions"].shape                  # doctest: +SKIP
    (True, (512, 1))
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from suite.errors import UserError

REQUIRED_META = ("task", "seq_len", "cell")
PREVIEW_ROWS = 5  # predictions shown on the console (the full array: --out or --json)
PREVIEW_VALUES = 16  # values shown per row before eliding the middle with '…'


def _percentiles(times: list[float]) -> tuple[float, float]:
    a = np.asarray(times) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def time_call(fn, repeats: int = 50, warmup: int = 5) -> tuple[float, float]:
    """p50/p95 latency in milliseconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _percentiles(times)


def resolve_model(model: str, tracking_uri: str | None = None) -> Path:
    """A local ``.onnx`` file for ``model`` (a path or a ``models:/`` / ``runs:/`` URI)."""
    if model.startswith(("models:/", "runs:/")):
        import mlflow

        from tracking import resolve_tracking_uri, sqlite_path

        uri = resolve_tracking_uri(tracking_uri)
        store = sqlite_path(uri)
        if store is not None and not store.exists():  # a lookup must not create an empty store
            raise UserError(
                f"cannot resolve {model}: no tracking store at {uri}; pass --tracking-uri of the "
                "store you exported to (or export one with `rnnbench export`)"
            )
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)  # models:/ URIs resolve through the registry URI
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model, tracking_uri=uri))
        except Exception as e:
            msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            raise UserError(
                f"cannot resolve {model} at {uri} ({msg}); list models in the MLflow UI or export one "
                "with `rnnbench export`"
            ) from None
        found = [local] if local.is_file() else sorted(local.rglob("*.onnx"))
        if not found:
            raise UserError(f"{model} has no .onnx file; is it an rnnbench export?")
        return found[0]
    path = Path(model)
    if not path.is_file():
        raise UserError(f"model file {model!r} not found; pass a .onnx path or models:/NAME@ALIAS.")
    return path


def load_session(path: Path):
    """An onnxruntime session and the model's rnnbench metadata."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is not a valid ONNX model ({first}).") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise UserError(
            f"{path} lacks rnnbench metadata {missing}; export it with `rnnbench export` (metadata: task, seq_len, cell, ...)."
        )
    return session, meta


def check_out_path(out: str) -> Path:
    """``--out``: a ``.npy`` file in a folder that exists and is writable (checked before any work)."""
    path = Path(out)
    if path.suffix != ".npy":
        raise UserError(f"--out {out!r} must name a .npy file (e.g. predictions.npy).")
    if path.is_dir():
        raise UserError(f"--out {out!r} is a folder; name a file in it, e.g. {path / 'y.npy'}.")
    parent = path.parent
    if not parent.is_dir():
        raise UserError(
            f"--out {out!r}: folder {str(parent)!r} does not exist; create it or pick another path."
        )
    if not os.access(parent, os.W_OK):
        raise UserError(f"--out {out!r}: folder {str(parent)!r} is not writable.")
    return path


def save_predictions(pred: np.ndarray, path: Path) -> None:
    """Write ``pred`` with ``np.save``, atomically (never a half-written file at ``path``)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, pred)
    os.replace(tmp, path)


def to_json(result: dict) -> dict:
    """``result`` with its arrays as nested lists (``rnnbench infer --json``)."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in result.items()}


def _elide(values, fmt: str, limit: int = PREVIEW_VALUES) -> str:
    """``values`` formatted, the middle elided when there are more than ``limit``."""
    values = list(values)
    if len(values) > limit:
        head, tail = 4, limit - 4
        return " ".join([*(fmt.format(v) for v in values[:head]), "…",
                         *(fmt.format(v) for v in values[-tail:])])  # fmt: skip
    return " ".join(fmt.format(v) for v in values)


def preview_lines(result: dict, rows: int = PREVIEW_ROWS) -> list[str]:
    """A readable preview of ``result["predictions"]``: the first ``rows`` sequences, values
    rounded, the predicted class for classification outputs, the target for generated data."""
    from tasks.base import FINAL_CLASS, FINAL_SCALAR, PER_STEP_CLASS

    pred = np.asarray(result["predictions"])
    kind, targets = result.get("output_kind"), result.get("targets")
    k = min(rows, len(pred))
    what = {
        FINAL_SCALAR: "one value per sequence",
        FINAL_CLASS: "logits per sequence; class = argmax",
        PER_STEP_CLASS: "logits per step; class = argmax per step",
    }.get(kind, "raw outputs")
    lines = [f"predictions {list(pred.shape)} ({what}), first {k} of {len(pred)}:"]
    for i in range(k):
        t, below = (None if targets is None else targets[i]), None
        if kind == FINAL_SCALAR:
            row = f"{float(pred[i].reshape(-1)[0]):.4f}"
            row += "" if t is None else f"  (target {float(t):.4f})"
        elif kind == FINAL_CLASS:
            row = f"class {int(pred[i].argmax())}  logits [{_elide(pred[i], '{:.2f}')}]"
            row += "" if t is None else f"  (target {int(t)})"
        elif kind == PER_STEP_CLASS:
            row = f"classes {_elide(pred[i].argmax(-1), '{}')}"
            below = None if t is None else f"{'target':>14} {_elide(t, '{}')}"  # aligned
        else:
            row = _elide(pred[i].reshape(-1), "{:.4f}")
        lines.append(f"  #{i:<3d} {row}")
        if below is not None:
            lines.append(below)
    return lines


def task_from_meta(meta: dict, seq_len: int | None = None):
    from tasks import get_task

    options = json.loads(meta.get("task_options", "{}") or "{}")
    try:
        return get_task(meta["task"], seq_len=seq_len or int(meta["seq_len"]), **options)
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None


def run_inference(
    model: str,
    input_path: str | None = None,
    n: int = 512,
    seq_len: int | None = None,
    seed: int = 0,
    tracking_uri: str | None = None,
) -> dict:
    """Run ``model`` on task data generated from its metadata (or on ``input_path``).

    Returns a dict: the model's metadata, ``output_shape``, ``output_kind``, ``predictions``
    (the outputs, a numpy array: values, or logits for classification), ``predicted_class``
    (their argmax, classification only), on generated data ``targets`` and the task metrics,
    and the batch-1 latency.
    """
    path = resolve_model(model, tracking_uri)
    session, meta = load_session(path)
    task = task_from_meta(meta, seq_len)
    inp = session.get_inputs()[0]
    width = inp.shape[-1]
    y = None
    if input_path:
        try:
            x = np.load(input_path).astype(np.float32)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read --input {input_path!r}: {e}") from None
        if x.ndim != 3:
            raise UserError(f"--input must be [batch, time, {width}], got shape {list(x.shape)}.")
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise UserError(
                f"--input {input_path!r} holds {bad} non-finite value(s) (NaN or Inf) of "
                f"{np.size(x)}; the model needs finite inputs."
            )
    else:
        x, y = task.generate(n, np.random.default_rng(seed))
    if isinstance(width, int) and x.shape[-1] != width:
        raise UserError(
            f"input width {x.shape[-1]} does not match the model's {width} (shape {list(x.shape)})."
        )
    pred = session.run(None, {inp.name: x})[0]
    out = {
        "model": str(path),
        "task": task.name,
        "seq_len": task.seq_len,
        "cell": meta.get("cell"),
        "clip": meta.get("clip"),
        "trained_status": meta.get("status", "?"),
        "batch": int(x.shape[0]),
        "output_shape": list(pred.shape),
        "output_kind": task.output_kind,
        "predictions": pred,  # the model's outputs: values, or logits for classification
    }
    if task.num_classes:
        out["predicted_class"] = pred.argmax(-1)
    if y is not None:
        out["targets"] = y
        metrics = task.evaluate(y, pred)
        out.update(metrics)
        out["solved"] = bool(task.solved(metrics))
        out["solved_when"] = task.solved_when
        out["baseline_loss"] = task.baseline_loss
    one = x[:1]
    out["latency_ms_b1_p50"], out["latency_ms_b1_p95"] = time_call(
        lambda: session.run(None, {inp.name: one})
    )
    return out
