"""Every training run in MLflow, laid out so runs compare well in the MLflow UI.

The layout is a contract ([report], [onnx] and the README rely on it):

- tracking URI: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else
  ``sqlite:///mlflow.db`` in the working directory; experiment ``rnnbench`` by default;
  run name ``{task}-T{seq_len}-{cell}-{clip}-s{seed}``.
- params: every ``TrainConfig`` field (task, seq_len, cell, clip, hidden, batch_size,
  optimizer, lr, seed, max_steps, ...) plus ``baseline_loss`` and ``input_length``.
- stepped metrics (one point per evaluation): ``train_loss, val_loss, val_accuracy``
  (classification), ``grad_norm, grad_norm_max, clip_fraction, grad_decay, val_loss_ratio``.
- final metrics: ``solved`` (0/1), ``steps_to_solve`` and ``seconds_to_solve`` (only when
  solved; training time only), ``val_loss_ratio``, ``steps``, ``train_seconds``,
  ``steps_per_second``.
- tags: ``rnnbench.status`` (solved | unsolved | diverged), ``rnnbench.stop_reason``,
  ``rnnbench.config_hash``, ``rnnbench.version``, ``rnnbench.git_commit``, ``rnnbench.device``,
  ``rnnbench.backend`` (tensorflow | jax; also the param ``backend``).
- artifacts: ``grad_profile.json`` (‖∂L/∂x_t‖ per eval step) and the Keras model as an
  MLflow model named ``model`` (load with ``mlflow.keras.load_model("runs:/<id>/model")``).
"""

from __future__ import annotations

import functools
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default store, in the working dir
DEFAULT_EXPERIMENT = "rnnbench"
# The tag names (one owner: everyone else imports them from here).
STATUS_TAG = "rnnbench.status"  # solved | unsolved | diverged | running | failed | killed
HASH_TAG = "rnnbench.config_hash"  # the resume key
STOP_REASON_TAG = "rnnbench.stop_reason"
ERROR_TAG = "rnnbench.error"  # on FAILED runs
BACKEND_TAG = "rnnbench.backend"
POPULATION_TAG = "rnnbench.population"  # size of the population a run trained in (absent: alone)
TASK_TAG, CELL_TAG, CLIP_TAG = "rnnbench.task", "rnnbench.cell", "rnnbench.clip"
KIND_TAG = "rnnbench.kind"  # sweep | export (training runs have none)
SPEC_HASH_TAG, SPEC_NAME_TAG = "rnnbench.spec_hash", "rnnbench.spec_name"  # on sweep parents
SOURCE_RUN_TAG, WINNER_STATUS_TAG = "rnnbench.source_run", "rnnbench.winner_status"  # exports
PARENT_TAG = "mlflow.parentRunId"
TRAINING_RUNS = f"tags.`{HASH_TAG}` != ''"  # search filter: every training run


def all_runs(client, experiment_id: str, filter_string: str = "") -> list:
    """Every run of an experiment matching ``filter_string`` (all result pages)."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def latest_per_config(runs, finished_only: bool = True) -> dict:
    """``{config hash: run}``: per config the latest FINISHED run (by start time).

    With ``finished_only=False`` a config that has no FINISHED run keeps its latest run of
    any status (a report shows such gaps as failed/killed/running).
    """
    latest: dict = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        h = run.data.tags.get(HASH_TAG, run.info.run_id)
        finished = run.info.status == "FINISHED"
        if finished or (
            not finished_only and (h not in latest or latest[h].info.status != "FINISHED")
        ):
            latest[h] = run
    return latest


REACH_TIMEOUT_S = 5.0  # an unreachable server is reported well within 10 s


class TrackingError(Exception):
    """The tracking store cannot be used (one-line message for the user)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking_uri(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Fail fast (before any training) when the tracking store cannot be reached.

    Raises:
        TrackingError: naming the URI, the reason and how to fix it.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise TrackingError(
                        f"tracking server {uri} answered HTTP {resp.status} on /health"
                    )
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise TrackingError(
                f"cannot reach the MLflow tracking server at {uri} ({reason}); start one with "
                "`mlflow server --host 127.0.0.1 --port 5000` or drop --tracking-uri to use "
                f"{DEFAULT_TRACKING_URI}"
            ) from None
    elif parsed.scheme == "sqlite":
        path = sqlite_path(uri)
        if path and str(path) != ":memory:":
            parent = path.expanduser().resolve().parent
            if not parent.is_dir():
                raise TrackingError(
                    f"the folder of the sqlite store {uri} does not exist ({parent}); create it "
                    "or use another --tracking-uri"
                )
    elif parsed.scheme in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            raise TrackingError(
                f"the tracking URI {uri!r} is a file store, which MLflow 3 keeps in maintenance "
                "mode (it refuses it); use --tracking-uri sqlite:///mlflow.db (the default), or "
                "set MLFLOW_ALLOW_FILE_STORE=true to use the folder anyway"
            )
    elif parsed.scheme not in ("databricks", "postgresql", "mysql", "mssql"):
        raise TrackingError(
            f"unsupported tracking URI {uri!r}; use sqlite:///PATH.db, http://HOST:PORT or a folder"
        )


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` tracking URI; ``None`` for any other URI."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


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


def system_metrics_available() -> bool:
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
    from suite import __version__

    return {
        HASH_TAG: config.config_hash(),
        STATUS_TAG: "running",
        "rnnbench.version": __version__,
        "rnnbench.git_commit": git_commit(),
        "rnnbench.device": device["device_name"],
        BACKEND_TAG: config.backend,
        TASK_TAG: config.task,
        CELL_TAG: config.cell,
        CLIP_TAG: str(config.clip_spec),
        **(extra_tags or {}),
    }


def _close_run(config, result, logger: MlflowLogger, log_model: bool) -> None:
    """Final metrics, status tags, the gradient profile and the model, into the active run."""
    import mlflow

    from suite.train import SOLVED

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
    mlflow.log_dict(logger.profiles, "grad_profile.json")
    if log_model:
        _log_keras_model(result.model, config)


def run_and_log(
    config,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    parent_run_id: str | None = None,
    callbacks: list | None = None,
    extra_tags: dict | None = None,
    log_model: bool = True,
):
    """Train ``config`` inside an MLflow run laid out as documented above.

    Args:
        config: a ``suite.train.TrainConfig``.
        tracking_uri: MLflow tracking URI (resolved with :func:`resolve_tracking_uri`).
        experiment: experiment name (created if missing).
        parent_run_id: make this a nested child run (sweeps).
        callbacks: more ``TrainCallbacks`` (e.g. a progress display).
        extra_tags: more tags on the run.
        log_model: log the trained Keras model as an MLflow model.

    Returns:
        ``(run_id, TrainResult)``. The run ends FINISHED for any result (diverged
        included), FAILED on an exception, KILLED on Ctrl-C.
    """
    import mlflow

    from suite.backend import configure
    from suite.train import train

    uri = resolve_tracking_uri(tracking_uri)
    device = configure(backend=config.backend)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp = mlflow.set_experiment(experiment)
    run = mlflow.start_run(
        experiment_id=exp.experiment_id,
        run_name=config.run_name,
        tags=run_tags(config, device, extra_tags),
        parent_run_id=parent_run_id,
        nested=parent_run_id is not None,
        log_system_metrics=system_metrics_available(),
    )
    run_id = run.info.run_id
    logger = MlflowLogger(client, run_id)
    try:
        result = train(config, callbacks=_Fanout([logger, *(callbacks or [])]))
        _close_run(config, result, logger, log_model)
        mlflow.end_run("FINISHED")
        return run_id, result
    except KeyboardInterrupt:
        mlflow.set_tag(STATUS_TAG, "killed")
        mlflow.end_run("KILLED")
        raise
    except BaseException as e:
        mlflow.set_tags({STATUS_TAG: "failed", ERROR_TAG: f"{type(e).__name__}: {e}"[:5000]})
        mlflow.end_run("FAILED")
        raise


def run_population_and_log(
    configs: list,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    parent_run_id: str | None = None,
    extra_tags: dict | None = None,
    log_model: bool = True,
) -> list[tuple[str, object]]:
    """Train configs that differ only in seed as one population (``suite.population``), each
    member in its own MLflow run with exactly the layout of :func:`run_and_log`.

    Extra tag on each member: ``rnnbench.population`` = the population's size. The member
    runs start together and each is closed (FINISHED) when the population ends; on an
    exception every member ends FAILED, on Ctrl-C KILLED.

    Returns:
        ``[(run_id, TrainResult), ...]`` in the order of ``configs``.
    """
    import mlflow

    from suite.backend import configure
    from suite.population import check_population, train_population

    check_population(configs)
    uri = resolve_tracking_uri(tracking_uri)
    device = configure(backend="jax")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp = mlflow.set_experiment(experiment)
    tags = {**(extra_tags or {}), POPULATION_TAG: str(len(configs))}
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
    # resolve_tags adds the context tags (user, source, git) that mlflow.start_run adds
    from mlflow.tracking.context.registry import resolve_tags

    run_ids = [
        client.create_run(
            exp.experiment_id, run_name=c.run_name, tags=resolve_tags(run_tags(c, device, tags))
        ).info.run_id
        for c in configs
    ]
    loggers = [MlflowLogger(client, rid) for rid in run_ids]

    def end_all(status: str, tag: str, error: str | None = None) -> None:
        for rid in run_ids:
            if client.get_run(rid).info.status == "RUNNING":
                client.set_tag(rid, STATUS_TAG, tag)
                if error:
                    client.set_tag(rid, ERROR_TAG, error[:5000])
                client.set_terminated(rid, status)

    try:
        results = train_population(configs, callbacks=loggers)
        for c, rid, logger, r in zip(configs, run_ids, loggers, results, strict=True):
            with mlflow.start_run(run_id=rid):  # ends FINISHED
                _close_run(c, r, logger, log_model)
        return list(zip(run_ids, results, strict=True))
    except KeyboardInterrupt:
        end_all("KILLED", "killed")
        raise
    except BaseException as e:
        end_all("FAILED", "failed", f"{type(e).__name__}: {e}")
        raise


def _log_keras_model(model, config) -> None:
    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from suite.backend import backend_requirements

    # Batch and time stay dynamic (-1), as in the model itself.
    in_shape = (-1, -1, int(model.input_shape[-1]))
    out_shape = tuple(-1 if d is None else int(d) for d in model.output_shape)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), in_shape, "x")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), out_shape, "y")]),
    )
    # Pinned requirements: MLflow's own inference of them imports half the world (slow).
    reqs = backend_requirements(config.backend)
    mlflow.keras.log_model(model, name="model", pip_requirements=reqs, signature=signature)


class _Fanout:
    """Call several ``TrainCallbacks`` in order."""

    def __init__(self, callbacks) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_start(self, *a) -> None:
        for c in self.callbacks:
            c.on_start(*a)

    def on_steps(self, step: int) -> None:
        for c in self.callbacks:
            c.on_steps(step)

    def on_eval(self, record) -> None:
        for c in self.callbacks:
            c.on_eval(record)
