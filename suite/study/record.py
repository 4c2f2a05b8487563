"""One training run, or one population of runs, recorded in MLflow in the layout of
:mod:`tracking.layout` (what ``rnnbench train`` and every sweep worker call).

Example:
    >>> from suite.core.train import TrainConfig
    >>> from suite.study.record import run_and_log
    >>> run_id, result = run_and_log(TrainConfig(task="adding", seq_len=10, max_steps=50))  # doctest: +SKIP
"""

from __future__ import annotations

from tracking.layout import DEFAULT_EXPERIMENT, ERROR_TAG, PARENT_TAG, POPULATION_TAG, STATUS_TAG
from tracking.logger import MlflowLogger, close_run, run_tags, system_metrics_available
from tracking.store import init_store, resolve_tracking_uri


def _requirements(config, log_model: bool) -> list[str] | None:
    """The pip requirements of the logged model (``None``: log no model)."""
    from suite.core.backend import backend_requirements

    return backend_requirements(config.backend) if log_model else None


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
        config: a ``suite.core.train.TrainConfig``.
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

    from suite.core import jax_cache
    from suite.core.backend import configure
    from suite.core.train import CallbackList, train

    uri = resolve_tracking_uri(tracking_uri)
    device = configure(backend=config.backend)
    init_store(uri)  # a new sqlite store: its first open serialised across processes
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
    cache_before = jax_cache.counts()
    try:
        result = train(config, callbacks=CallbackList([logger, *(callbacks or [])]))
        close_run(result, logger, _requirements(config, log_model))
        if config.backend == "jax":  # how JAX's compilation cache served this run
            mlflow.log_metrics(jax_cache.since(cache_before))
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
    """Train configs that differ only in seed as one population (``suite.core.population``), each
    member in its own MLflow run with exactly the layout of :func:`run_and_log`.

    Extra tag on each member: ``rnnbench.population`` = the population's size. The member
    runs start together and each is closed (FINISHED) when the population ends; on an
    exception every member ends FAILED, on Ctrl-C KILLED.

    Returns:
        ``[(run_id, TrainResult), ...]`` in the order of ``configs``.
    """
    import mlflow

    from suite.core.backend import configure
    from suite.core.population import check_population, train_population

    check_population(configs)
    uri = resolve_tracking_uri(tracking_uri)
    device = configure(backend="jax")
    init_store(uri)  # a new sqlite store: its first open serialised across processes
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

    from suite.core import jax_cache

    cache_before = jax_cache.counts()
    try:
        results = train_population(configs, callbacks=loggers)
        cache = jax_cache.since(cache_before)  # the population's one compilation, on each member
        for c, rid, logger, r in zip(configs, run_ids, loggers, results, strict=True):
            with mlflow.start_run(run_id=rid):  # ends FINISHED
                close_run(r, logger, _requirements(c, log_model))
                mlflow.log_metrics(cache)
        return list(zip(run_ids, results, strict=True))
    except KeyboardInterrupt:
        end_all("KILLED", "killed")
        raise
    except BaseException as e:
        end_all("FAILED", "failed", f"{type(e).__name__}: {e}")
        raise
