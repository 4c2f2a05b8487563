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
- sweep parents (``rnnbench.kind = sweep``): ``rnnbench.spec_hash``, ``rnnbench.spec_name``;
  a critical-length sweep (``rnnbench sweep --critical``) also ``rnnbench.mode = critical``
  and the artifact ``critical.json`` (its spec hash tag gets the suffix ``-critical``).
- artifacts: ``grad_profile.json`` (‖∂L/∂x_t‖ per eval step) and the Keras model as an
  MLflow model named ``model`` (load with ``mlflow.keras.load_model("runs:/<id>/model")``).
"""

from __future__ import annotations

import re

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
MODE_TAG = "rnnbench.mode"  # on sweep parents: critical (bisects T; absent: the full grid)
CRITICAL_ARTIFACT = "critical.json"  # on a critical parent: the bisection's probes per bracket
SOURCE_RUN_TAG, WINNER_STATUS_TAG = "rnnbench.source_run", "rnnbench.winner_status"  # exports
PARENT_TAG = "mlflow.parentRunId"
TRAINING_RUNS = f"tags.`{HASH_TAG}` != ''"  # search filter: every training run
VERSION_TAG, COMMIT_TAG, DEVICE_TAG = "rnnbench.version", "rnnbench.git_commit", "rnnbench.device"


def run_name(task: str, seq_len: int, cell: str, clip, seed: int) -> str:
    """The name of a training run: ``{task}-T{seq_len}-{cell}-{clip}-s{seed}``.

    Example:
        >>> run_name("adding", 50, "irnn", "global_clipnorm=1", 0)
        'adding-T50-irnn-global_clipnorm=1-s0'
    """
    return f"{task}-T{seq_len}-{cell}-{clip}-s{seed}"


_RUN_NAME = re.compile(
    r"^(?P<task>.+?)-T(?P<seq_len>\d+)-(?P<cell>[a-z0-9_]+)-(?P<clip>.+)-s(?P<seed>\d+)$"
)


def parse_run_name(name: str | None) -> dict | None:
    """The fields of a :func:`run_name` (strings), or ``None`` for another name.

    Example:
        >>> parse_run_name("copy-T10-lstm-none-s2")["cell"]
        'lstm'
    """
    m = _RUN_NAME.match(name or "")
    return m.groupdict() if m else None


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
