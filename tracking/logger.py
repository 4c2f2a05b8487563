"""Writing a training run in the layout of :mod:`tracking.layout`: params, stepped metrics,
final metrics, tags, the gradient profile and the Keras model.

Everything here is duck-typed on what a run is (a config with ``to_dict()``, ``config_hash()``,
``clip_spec``, ``backend``; a result with ``status``, ``steps``, ...); it imports nothing
from ``suite``.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from tracking.layout import (
    BACKEND_TAG,
    CELL_TAG,
    CLIP_TAG,
    COMMIT_TAG,
    DEVICE_TAG,
    HASH_TAG,
    PROFILE_ARTIFACT,
    STATUS_TAG,
    STOP_REASON_TAG,
    TASK_TAG,
    VERSION_TAG,
)

SOLVED = "solved"  # the status of a solved run (the metric ``solved`` is 1 for it)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the rnnbench source tree, or ``unknown`` when not in a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version() -> str:
    """The installed rnnbench version (``0.0.0+unknown`` in a source tree never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnnbench")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def system_metrics_available() -> bool:
    """Whether MLflow can log system metrics here (psutil installed, not switched off)."""
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() in ("false", "0"):
        return False
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


class MlflowLogger:
    """``TrainCallbacks`` that write the layout above into the active MLflow run."""

    def __init__(self, client, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.profiles: dict = {"steps": [], "norms": []}

    def on_start(self, config, task, model) -> None:
        from mlflow.entities import Param

        params = {k: v for k, v in config.to_dict().items() if k != "task_options"}
        params.update({f"task.{k}": v for k, v in task.options.items()})
        params["baseline_loss"] = f"{task.baseline_loss:.6g}"
        params["input_length"] = task.length
        params["n_params"] = model.count_params()
        self.client.log_batch(
            self.run_id, params=[Param(k, str(v)) for k, v in params.items()], synchronous=True
        )
        self.profiles.update(seq_len=task.seq_len, input_length=task.length)

    def on_steps(self, step: int) -> None:
        pass

    def on_eval(self, record) -> None:
        import math
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), ts, record.step)
            for k, v in record.metrics.items()
            if v is not None and not (isinstance(v, float) and math.isnan(v) and k == "grad_decay")
        ]
        metrics.append(Metric("train_seconds", record.train_seconds, ts, record.step))
        self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
        self.profiles["steps"].append(record.step)
        self.profiles["norms"].append(record.profile)


def run_tags(config, device: dict, extra_tags: dict | None = None) -> dict:
    """The tags a training run starts with (the layout above)."""
    return {
        HASH_TAG: config.config_hash(),
        STATUS_TAG: "running",
        VERSION_TAG: package_version(),
        COMMIT_TAG: git_commit(),
        DEVICE_TAG: device["device_name"],
        BACKEND_TAG: config.backend,
        TASK_TAG: config.task,
        CELL_TAG: config.cell,
        CLIP_TAG: str(config.clip_spec),
        **(extra_tags or {}),
    }


def close_run(result, logger: MlflowLogger, pip_requirements: list[str] | None = None) -> None:
    """Final metrics, status tags, the gradient profile and the model, into the active run.

    Args:
        result: the run's ``TrainResult``.
        logger: the :class:`MlflowLogger` that recorded its evaluations.
        pip_requirements: log ``result.model`` as the MLflow model ``model`` with these
            requirements (``None``: log no model).
    """
    import mlflow

    final = {
        "solved": float(result.status == SOLVED),
        "val_loss_ratio": result.val_loss_ratio,
        "steps": float(result.steps),
        "train_seconds": result.train_seconds,
        "steps_per_second": result.steps / max(result.train_seconds, 1e-9),
    }
    if result.status == SOLVED:
        final["steps_to_solve"] = float(result.steps_to_solve)
        final["seconds_to_solve"] = float(result.seconds_to_solve)
    mlflow.log_metrics(final, step=result.steps)
    mlflow.set_tags({STATUS_TAG: result.status, STOP_REASON_TAG: result.stop_reason})
    mlflow.log_dict(logger.profiles, PROFILE_ARTIFACT)
    if pip_requirements is not None:
        log_keras_model(result.model, pip_requirements)


def log_keras_model(model, pip_requirements: list[str]) -> None:
    """Log a Keras model as the MLflow model ``model``, with a signature of dynamic batch and
    time: ``x`` (batch, time, features) -> ``y``."""
    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    # Batch and time stay dynamic (-1), as in the model itself.
    in_shape = (-1, -1, int(model.input_shape[-1]))
    out_shape = tuple(-1 if d is None else int(d) for d in model.output_shape)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), in_shape, "x")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), out_shape, "y")]),
    )
    # Pinned requirements: MLflow's own inference of them imports half the world (slow).
    mlflow.keras.log_model(
        model, name="model", pip_requirements=pip_requirements, signature=signature
    )
