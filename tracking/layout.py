"""Every training run in MLflow, laid out so runs compare well in the MLflow UI.

The layout is a contract ([report], [onnx] and the README rely on it):

- tracking URI: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else
  ``sqlite:///mlflow.db`` in the working directory; experiment ``rnnbench`` by default;
  run name ``{task}-T{seq_len}-{cell}-{clip}[-{optimizer}]-s{seed}`` (the optimizer part
  only when it is not the default Adam at lr 1e-3; ``{clip}`` gains ``+omega=ALPHA`` when
  Pascanu's regulariser is on).
- params: every ``TrainConfig`` field (task, seq_len, cell, clip, hidden, batch_size,
  optimizer, lr, seed, max_steps, ...) plus ``baseline_loss`` and ``input_length``.
- stepped metrics (one point per evaluation): ``train_loss, val_loss, val_accuracy``
  (classification), ``grad_norm, grad_norm_max, clip_fraction, grad_decay, val_loss_ratio``,
  and ``omega`` (the mean of Pascanu et al.'s regulariser Ω since the last evaluation; only
  for runs with ``omega`` > 0). ``grad_norm`` is the pre-clip norm (of loss gradient + α ∂Ω/∂U
  with the regulariser on); ``clip_fraction``: steps on which clipping changed the gradient.
- final metrics: ``solved`` (0/1), ``steps_to_solve`` and ``seconds_to_solve`` (only when
  solved; training time only), ``val_loss_ratio``, ``steps``, ``train_seconds``,
  ``steps_per_second``.
- tags: ``rnnbench.status`` (solved | unsolved | diverged), ``rnnbench.stop_reason``,
  ``rnnbench.config_hash``, ``rnnbench.version``, ``rnnbench.git_commit``, ``rnnbench.device``,
  ``rnnbench.backend`` (tensorflow | jax; also the param ``backend``).
- sweep parents (``rnnbench.kind = sweep``): ``rnnbench.spec_hash``, ``rnnbench.spec_name``;
  a critical-length sweep (``rnnbench sweep --critical``) also ``rnnbench.mode = critical``
  and the artifact ``critical.json``; while a sweep runs, ``rnnbench.owner`` (host:pid)
  and ``rnnbench.heartbeat`` (unix time, renewed every 20 s) (its spec hash tag gets the suffix ``-critical``).
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
HEARTBEAT_TAG = "rnnbench.heartbeat"  # on a running sweep parent: unix time of its last beat
OWNER_TAG = "rnnbench.owner"  # on a sweep parent: host:pid of the process running it
MODE_TAG = "rnnbench.mode"  # on sweep parents: critical (bisects T; absent: the full grid)
CRITICAL_ARTIFACT = "critical.json"  # on a critical parent: the bisection's probes per bracket
PROFILE_ARTIFACT = "grad_profile.json"  # on a training run: ‖∂L/∂x_t‖ per evaluation
SOURCE_RUN_TAG, WINNER_STATUS_TAG = "rnnbench.source_run", "rnnbench.winner_status"  # exports
PARENT_TAG = "mlflow.parentRunId"
TRAINING_RUNS = f"tags.`{HASH_TAG}` != ''"  # search filter: every training run
VERSION_TAG, COMMIT_TAG, DEVICE_TAG = "rnnbench.version", "rnnbench.git_commit", "rnnbench.device"


DEFAULT_OPTIMIZER = ("adam", 1e-3, 0.0)  # (name, lr, momentum) that run names leave unsaid


def optimizer_label(name: str, lr: float | None = None, momentum: float | None = 0.0) -> str:
    """How runs name their optimizer: ``adam`` for Adam at lr 1e-3 (the suite's default),
    else ``NAME(lr=LR[,momentum=M])`` (the form ``rnnbench train --optimizer`` reads back).

    Example:
        >>> optimizer_label("sgd", 0.01, 0.9)
        'sgd(lr=0.01,momentum=0.9)'
        >>> optimizer_label("adam", 0.001)
        'adam'
    """
    lr = DEFAULT_OPTIMIZER[1] if lr is None else float(lr)
    momentum = float(momentum or 0.0)
    if (name, lr, momentum) == DEFAULT_OPTIMIZER:
        return name
    return f"{name}(lr={lr:g}" + (f",momentum={momentum:g}" if momentum else "") + ")"


def treatment_label(clip, omega: float | None = 0.0) -> str:
    """A run's gradient treatment: its clip spec, plus ``+omega=ALPHA`` when Pascanu's
    regulariser is on (``global_clipnorm=1+omega=2``).

    Example:
        >>> treatment_label("global_clipnorm=1", 2.0)
        'global_clipnorm=1+omega=2'
    """
    omega = float(omega or 0.0)
    return f"{clip}+omega={omega:g}" if omega else str(clip)


def parse_treatment(text: str) -> tuple[str, float]:
    """``(clip, omega)`` of a :func:`treatment_label` (``omega`` 0.0 when it has none).

    Example:
        >>> parse_treatment("global_clipnorm=1+omega=2")
        ('global_clipnorm=1', 2.0)
    """
    clip, sep, rest = str(text).partition("+")
    if not sep:
        return clip.strip(), 0.0
    key, eq, value = (s.strip() for s in rest.partition("="))
    if key != "omega" or not eq:
        raise ValueError(
            f"Invalid treatment {text!r}: after '+' only omega=ALPHA is allowed "
            "(e.g. global_clipnorm=1+omega=2)."
        )
    try:
        return clip.strip(), float(value)
    except ValueError:
        raise ValueError(f"Invalid treatment {text!r}: omega {value!r} is not a number.") from None


DEFAULT_HIDDEN = 128  # TrainConfig's default; names leave it out
# final metrics only JAX runs log: how JAX's compilation cache served the run
JAX_ONLY_METRICS = ("jax_cache_hits", "jax_cache_misses", "jax_compile_seconds_saved")


def run_name(
    task: str,
    seq_len: int,
    cell: str,
    clip,
    seed: int,
    optimizer: str | None = None,
    hidden: int | None = None,
) -> str:
    """The name of a training run:
    ``{task}-T{seq_len}-{cell}-{clip}[-{optimizer}][-h{hidden}]-s{seed}``.

    ``clip`` is the :func:`treatment_label`; ``optimizer`` (an :func:`optimizer_label`) is
    left out for the default ``adam`` and ``hidden`` for the default 128 units, so runs
    named before these were in the name keep their names, and two runs that differ in
    either never share one.

    Example:
        >>> run_name("adding", 50, "irnn", "global_clipnorm=1", 0)
        'adding-T50-irnn-global_clipnorm=1-s0'
        >>> run_name("adding", 50, "irnn", "none", 0, "sgd(lr=0.01,momentum=0.9)")
        'adding-T50-irnn-none-sgd(lr=0.01,momentum=0.9)-s0'
        >>> run_name("adding", 50, "lstm", "none", 1, hidden=64)
        'adding-T50-lstm-none-h64-s1'
    """
    opt = f"-{optimizer}" if optimizer and optimizer != DEFAULT_OPTIMIZER[0] else ""
    units = f"-h{hidden}" if hidden is not None and hidden != DEFAULT_HIDDEN else ""
    return f"{task}-T{seq_len}-{cell}-{clip}{opt}{units}-s{seed}"


_RUN_NAME = re.compile(
    r"^(?P<task>.+?)-T(?P<seq_len>\d+)-(?P<cell>[a-z0-9_]+)-(?P<clip>.+?)"
    r"(?:-(?P<optimizer>(?:adam|rmsprop|sgd)(?:\([^()]*\))?))?(?:-h(?P<hidden>\d+))?"
    r"-s(?P<seed>\d+)$"
)


def parse_run_name(name: str | None) -> dict | None:
    """The fields of a :func:`run_name` (strings; ``optimizer`` is ``adam`` when the name
    has none; ``hidden`` only when the name has it), or ``None`` for another name.

    Example:
        >>> parse_run_name("copy-T10-lstm-none-s2")["cell"]
        'lstm'
        >>> parse_run_name("adding-T50-irnn-normalize=1-sgd(lr=0.01)-s0")["optimizer"]
        'sgd(lr=0.01)'
    """
    m = _RUN_NAME.match(name or "")
    if not m:
        return None
    fields = m.groupdict()
    fields["optimizer"] = fields["optimizer"] or DEFAULT_OPTIMIZER[0]
    if fields["hidden"] is None:
        del fields["hidden"]
    return fields


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
