"""Check the GPU kit's Python environment before any training: imports, then MLflow end to end.

Usage: KERAS_BACKEND=jax python3 tools/gpu/check_env.py [--work DIR] [--allow-tensorflow]

1. imports every module an rnnbench JAX run needs; a missing one fails at once with the list
   of all missing modules (exit 1). TensorFlow is made unimportable (as on the GPU image) unless
   --allow-tensorflow, and every attempt to import it is reported with its caller;
2. reports (as warnings) declared requirements of the kit's packages that are not met;
3. in DIR (default: a temporary folder) against sqlite:///DIR/check.db: a run with params,
   metrics, a dict artifact and system metrics; a tiny Keras model logged with
   mlflow.keras.log_model and loaded back (same outputs); a tiny ONNX model logged with
   mlflow.onnx.log_model and registered, an alias set and read back, the model run in
   onnxruntime; MlflowClient.search_runs with a filter. Prints where artifacts went.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.metadata as md
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network there
os.environ.setdefault("DO_NOT_TRACK", "1")

REQUIRED = [
    "numpy", "jax", "keras", "h5py", "optree", "mlflow", "mlflow.keras", "mlflow.onnx",
    "mlflow.models", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store", "sqlalchemy", "alembic", "pandas", "onnx", "onnxruntime", "typer",
    "rich", "matplotlib", "psutil", "yaml", "suite", "suite.cli", "tasks", "tracking", "suite.study.record",
]  # fmt: skip
# Kit packages whose declared requirements are checked (warnings only).
DISTS = ["keras", "mlflow-skinny", "sqlalchemy", "alembic", "pandas", "opentelemetry-sdk",
         "pydantic", "h5py", "optree", "requests", "fastapi", "starlette", "anyio",
         "databricks-sdk", "cryptography"]  # fmt: skip
# Requirements the kit leaves out on purpose (the tracking server; Databricks auth).
LEFT_OUT = {"uvicorn", "google-auth"}

tf_attempts: list[str] = []


class _NoTensorflow(importlib.abc.MetaPathFinder):
    """Behave as if TensorFlow were not installed, and remember who asked for it."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            frames = [f"{f.filename}:{f.lineno}" for f in reversed(traceback.extract_stack()[:-1])
                      if "importlib" not in f.filename and "<frozen" not in f.filename]  # fmt: skip
            tf_attempts.append(f"{name} <- " + " <- ".join(frames[:4]))
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not on the GPU image)")
        return None


def step(msg: str):
    print(f"check: {msg}", flush=True)


def check_imports() -> bool:
    missing, versions = [], {}
    for mod in REQUIRED:
        try:
            m = importlib.import_module(mod)
            versions[mod] = getattr(m, "__version__", "")
        except Exception as e:  # noqa: BLE001  (ImportError or anything an import raises)
            missing.append(f"{mod} ({type(e).__name__}: {e})")
    if missing:
        print("check: FAILED: these modules cannot be imported:", file=sys.stderr)
        for m in missing:
            print(f"  - {m}", file=sys.stderr)
        print("  (is tools/gpu/wheelhouse/ complete? rebuild it with tools/gpu/build_wheelhouse.sh)",
              file=sys.stderr)  # fmt: skip
        return False
    import keras

    if keras.backend.backend() != "jax":
        print(f"check: FAILED: Keras backend is {keras.backend.backend()!r}, not 'jax' "
              "(set KERAS_BACKEND=jax)", file=sys.stderr)  # fmt: skip
        return False
    import jax

    step("imports ok: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v and "." not in k))
    step(f"jax devices: {jax.devices()}")
    return True


def check_requirements() -> None:
    from packaging.requirements import Requirement

    for dist in DISTS:
        try:
            reqs = md.requires(dist) or []
        except md.PackageNotFoundError:
            continue
        for line in reqs:
            r = Requirement(line)
            if r.marker is not None and not r.marker.evaluate({"extra": ""}):
                continue
            try:
                have = md.version(r.name)
            except md.PackageNotFoundError:
                why = "left out on purpose" if r.name.lower() in LEFT_OUT else "NOT INSTALLED"
                step(f"note: {dist} declares {r} -> {why}")
                continue
            if r.specifier and not r.specifier.contains(have, prereleases=True):
                step(f"warning: {dist} declares {r}, installed {r.name} {have}")


def check_mlflow(work: Path) -> None:
    import keras
    import mlflow
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    uri = f"sqlite:///{work / 'check.db'}"
    t0 = time.perf_counter()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.set_experiment("kit-check")
    step(f"sqlite store {uri} created ({time.perf_counter() - t0:.1f} s); "
         f"artifact location {exp.artifact_location}")  # fmt: skip

    # a run as rnnbench logs it
    with mlflow.start_run(run_name="kit-check", tags={"rnnbench.config_hash": "kit"},
                          log_system_metrics=True) as run:  # fmt: skip
        mlflow.log_params({"task": "adding", "seq_len": 10, "cell": "lstm"})
        for s in range(3):
            mlflow.log_metrics({"train_loss": 1.0 / (s + 1), "val_loss": 1.0 / (s + 2)}, step=s)
        mlflow.log_dict({"steps": [0, 1, 2], "norms": [[1.0], [0.5], [0.25]]}, "grad_profile.json")

        model = keras.Sequential(
            [keras.Input((None, 2)), keras.layers.LSTM(4), keras.layers.Dense(1)]
        )
        x = np.random.default_rng(0).normal(size=(3, 5, 2)).astype("float32")
        y = np.asarray(model(x))
        t0 = time.perf_counter()
        mlflow.keras.log_model(model, name="model", pip_requirements=["keras"])
        step(f"mlflow.keras.log_model ok ({time.perf_counter() - t0:.1f} s)")
    run_id = run.info.run_id
    loaded = mlflow.keras.load_model(f"runs:/{run_id}/model")
    diff = float(np.abs(np.asarray(loaded(x)) - y).max())
    assert diff < 1e-6, f"reloaded Keras model differs by {diff}"
    step(f"mlflow.keras.load_model ok (max diff {diff:.1e}, backend {keras.backend.backend()})")

    # an ONNX model, logged and registered as `rnnbench export` does
    node = helper.make_node("Add", ["x", "x"], ["y"])
    graph = helper.make_graph(
        [node], "kit", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto)
    with mlflow.start_run(run_name="kit-export", tags={"rnnbench.kind": "export"}):
        info = mlflow.onnx.log_model(proto, name="model", registered_model_name="kit-check")
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    client.set_registered_model_alias("kit-check", "champion", info.registered_model_version)
    mv = client.get_model_version_by_alias("kit-check", "champion")
    path = mlflow.artifacts.download_artifacts(
        "models:/kit-check@champion", dst_path=str(work / "dl")
    )
    onnx_file = next(Path(path).rglob("*.onnx"))
    out = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones((1, 2), np.float32)}
    )[0]
    assert float(out.sum()) == 4.0, out
    step(
        f"mlflow.onnx.log_model + registry ok (kit-check v{mv.version} @champion, ran in onnxruntime)"
    )

    runs = client.search_runs([exp.experiment_id], "tags.`rnnbench.config_hash` = 'kit'",
                              max_results=10)  # fmt: skip
    assert [r.info.run_id for r in runs] == [run_id], runs
    r = runs[0]
    assert r.data.params["cell"] == "lstm" and "val_loss" in r.data.metrics, r.data
    hist = client.get_metric_history(run_id, "train_loss")
    assert len(hist) == 3, hist
    arts = [a.path for a in client.list_artifacts(run_id)]
    step(f"search_runs ok; run artifacts {arts}; "
         f"system metrics: {sorted(k for k in r.data.metrics if k.startswith('system/'))[:4]}")  # fmt: skip
    step(f"artifacts live under {Path(r.info.artifact_uri.replace('file://', '')).parents[2]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", help="folder for the check's sqlite store (default: a temp folder)")
    ap.add_argument("--allow-tensorflow", action="store_true", help="do not block TensorFlow")
    ap.add_argument("--imports-only", action="store_true", help="stop after the import check")
    args = ap.parse_args()
    if not args.allow_tensorflow:
        sys.meta_path.insert(0, _NoTensorflow())
    t0 = time.perf_counter()
    if not check_imports():
        return 1
    check_requirements()
    if not args.imports_only:
        with tempfile.TemporaryDirectory(prefix="kit-check-") as tmp:
            work = Path(args.work) if args.work else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            old = os.getcwd()
            os.chdir(work)  # MLflow resolves a relative default artifact root against the cwd
            try:
                check_mlflow(work)
            finally:
                os.chdir(old)
    for a in tf_attempts:
        step(f"note: something tried to import TensorFlow: {a}")
    step(f"all ok ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
