"""The data every finding reads: a sweep's runs, read back from MLflow once.

A :class:`RunInfo` is one training run (its configuration, status, final metrics, curves and
gradient profiles); a :class:`SweepData` is the runs of one sweep plus what the sweep meant to
run (the seeds its spec lists, and for a critical-length sweep its ``critical.json``).

Which runs a sweep holds:

- a grid sweep: the latest run per config hash among the parent's child runs;
- a critical-length sweep: exactly the runs its ``critical.json`` names by config hash (the
  latest FINISHED run of each hash wherever it was trained, since resume may reuse runs of
  another sweep), so the claims and the critical table read the same runs; a hash with no
  run at all is kept as a *missing* run.

Example:
    >>> data = load_sweep("sqlite:///mlflow.db", "rnnbench")          # doctest: +SKIP
    >>> {r.optimizer for r in data.runs}                              # doctest: +SKIP
    {'adam'}
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from suite.errors import UserError

FINISHED = ("solved", "unsolved", "diverged")
TIME_CAP = "max_seconds reached"  # rnnbench.stop_reason of a run ended by the training-time cap
CURVES = ("val_loss_ratio", "grad_norm", "grad_norm_max", "clip_fraction")
CELL_ORDER = ("simple_rnn", "irnn", "relu_rnn", "leaky_rnn", "sigmoid_rnn", "ortho_rnn", "lstm",
              "chrono_lstm", "gru", "transformer")  # fmt: skip
GATED = ("lstm", "chrono_lstm", "gru")
CLIP_KINDS = ("clipnorm", "global_clipnorm", "clipvalue")  # suite.core.clipping's clip settings
DEFAULT_OPTIMIZER = "adam"


def cell_key(cell: str) -> int:
    return CELL_ORDER.index(cell) if cell in CELL_ORDER else len(CELL_ORDER)


def clip_key(clip: str) -> tuple:
    """Treatments in report order: none, the clip settings, then every other treatment."""
    return (clip != "none", not is_clip_setting(clip), clip)


def is_clip_setting(clip: str) -> bool:
    """A plain clip setting (clipnorm / global_clipnorm / clipvalue, no omega): what claims 1,
    2, 4 and 5 compare with "none"; ``normalize=TAU`` and ``+omega`` treatments are not."""
    kind, sep, _ = clip.partition("=")
    return bool(sep) and kind in CLIP_KINDS and "+" not in clip


@dataclass
class RunInfo:
    run_id: str
    task: str
    seq_len: int
    cell: str
    clip: str  # the gradient treatment label: the clip spec, "+omega=ALPHA" with the regulariser
    seed: int
    status: str  # solved | unsolved | diverged | failed | killed | running | missing
    metrics: dict
    optimizer: str = DEFAULT_OPTIMIZER  # tracking.layout.optimizer_label: "adam", "sgd(lr=0.01)"
    config_hash: str = ""
    curves: dict = field(default_factory=dict)  # metric -> [(step, value)]
    profiles: list = field(default_factory=list)  # ‖∂L/∂x_t‖ per evaluation (grad_profile.json)
    stop_reason: str = ""  # e.g. "max_steps reached", "max_seconds reached"
    input_length: int | None = None  # steps the model reads (copy: T + 2 * num_recall)
    max_steps: int | None = None
    task_options: dict = field(default_factory=dict)  # the logged task.<name> params
    artifact_uri: str = ""  # where the run's artifacts live (read without asking for the run)

    @property
    def key(self) -> tuple:
        """The configuration: (task, T, cell, treatment, optimizer)."""
        return (self.task, self.seq_len, self.cell, self.clip, self.optimizer)

    @property
    def setting(self) -> tuple[str, str]:
        """What a cell is run with: (treatment, optimizer)."""
        return (self.clip, self.optimizer)

    @property
    def profile_first(self) -> list | None:
        """‖∂L/∂x_t‖ at the first evaluation."""
        return self.profiles[0] if self.profiles else None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def incomplete(self) -> bool:
        """A finished run the training-time cap ended before its step budget.

        A run is *incomplete* when its stop reason is "max_seconds reached" and it got fewer
        steps than ``max_steps`` (a run that used its whole step budget is complete whatever
        its stop reason says). An incomplete run never counts as a failure: like a seed that
        crashed, was killed or never ran (a *missing* run), it is left out of every share and
        comparison, it leaves a configuration undecided when it could flip it, and each finding
        says how many runs it lacks.
        """
        if self.status != "unsolved" or self.stop_reason != TIME_CAP:
            return False
        steps = self.metrics.get("steps")
        return not (steps is not None and self.max_steps and steps >= self.max_steps)

    @property
    def counted(self) -> bool:
        """Finished and complete: the runs every share is computed over."""
        return self.finished and not self.incomplete


@dataclass
class SweepData:
    parent_run_id: str
    name: str
    runs: list[RunInfo]
    baselines: dict  # (task, T) -> baseline loss
    tracking_uri: str
    experiment_id: str = ""  # the MLflow experiment holding the sweep (for UI links)
    seeds: tuple = ()  # the seeds the sweep's spec lists (() when the parent does not say)
    critical: dict | None = None  # a critical-length sweep's critical.json

    @property
    def finished(self) -> list[RunInfo]:
        return [r for r in self.runs if r.finished]

    @property
    def is_critical(self) -> bool:
        return self.critical is not None

    @property
    def optimizers(self) -> list[str]:
        """The optimizer labels of the sweep (Adam first)."""
        return sorted({r.optimizer for r in self.runs}, key=lambda o: (o != DEFAULT_OPTIMIZER, o))

    def expected_seeds(self) -> int:
        """How many seeds each configuration should have: the seeds the spec lists, else the
        most seeds any configuration of the sweep has."""
        if self.seeds:
            return len(self.seeds)
        per: dict[tuple, set] = {}
        for r in self.runs:
            per.setdefault(r.key, set()).add(r.seed)
        return max((len(s) for s in per.values()), default=0)

    def where(self, keep) -> SweepData:
        """The same sweep with only the runs ``keep(run)`` accepts (e.g. one optimizer)."""
        return replace(self, runs=[r for r in self.runs if keep(r)])


# ----- reading a sweep back --------------------------------------------------------------


def _params_of(run) -> dict:
    """A run's params; for a run that crashed before logging them, parsed from its name."""
    p = dict(run.data.params)
    if "task" not in p:
        from tracking.layout import parse_run_name

        p.update(parse_run_name(run.info.run_name) or {})
    return p


def _number(x: str):
    """A logged param back as int, else float, else the string."""
    for kind in (int, float):
        try:
            return kind(x)
        except (TypeError, ValueError):
            pass
    return x


def _int(x) -> int | None:
    try:
        return int(float(x))
    except (TypeError, ValueError):
        return None


def _float(x, default: float = 0.0) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def _optimizer(p: dict) -> str:
    """The optimizer label from the params (``adam`` when the run predates the axis)."""
    from tracking.layout import optimizer_label

    name = p.get("optimizer") or DEFAULT_OPTIMIZER
    if "(" in name:  # read back from a run name: already a label
        return name
    return optimizer_label(name, _float(p.get("lr"), None), _float(p.get("momentum"), 0.0))


def _treatment(p: dict) -> str:
    from tracking.layout import treatment_label

    clip = p.get("clip", "?")
    return clip if "+" in clip else treatment_label(clip, _float(p.get("omega"), 0.0))


def run_info(run) -> RunInfo:
    """One MLflow training run as a :class:`RunInfo`: its params (read back from its name when
    it crashed before logging them), status (FAILED / KILLED runs: failed / killed) and final
    metrics; curves and gradient profiles are left to :func:`load_sweep`."""
    from tracking import HASH_TAG, STATUS_TAG, STOP_REASON_TAG

    p = _params_of(run)
    status = run.data.tags.get(STATUS_TAG, "running")
    if run.info.status in ("FAILED", "KILLED"):
        status = run.info.status.lower()
    return RunInfo(
        run_id=run.info.run_id,
        task=p.get("task", "?"),
        seq_len=int(p.get("seq_len", 0)),
        cell=p.get("cell", "?"),
        clip=_treatment(p),
        seed=int(p.get("seed", 0)),
        status=status,
        metrics=dict(run.data.metrics),
        optimizer=_optimizer(p),
        config_hash=run.data.tags.get(HASH_TAG, ""),
        stop_reason=run.data.tags.get(STOP_REASON_TAG, ""),
        input_length=_int(p.get("input_length")),
        max_steps=_int(p.get("max_steps")),
        task_options={k[len("task.") :]: _number(v) for k, v in p.items() if k.startswith("task.")},
        artifact_uri=run.info.artifact_uri or "",
    )


def missing_run(config_hash: str, task="?", seq_len=0, cell="?", clip="?", seed=0,
                optimizer=DEFAULT_OPTIMIZER) -> RunInfo:  # fmt: skip
    """A config a sweep meant to run that has no run at all (never started)."""
    return RunInfo(config_hash, task, seq_len, cell, clip, seed, "missing", {}, optimizer,
                   config_hash)  # fmt: skip


def read_critical(client, parent) -> dict | None:
    """A critical parent's ``critical.json`` (``None``: not a critical sweep, or killed before
    its first round ended)."""
    from tracking import CRITICAL_ARTIFACT, MODE_TAG

    if parent.data.tags.get(MODE_TAG) != "critical":
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(parent.info.run_id, CRITICAL_ARTIFACT, tmp)
            return json.loads(Path(path).read_text())
    except Exception:
        return None


def critical_members(record: dict) -> dict[str, dict]:
    """Config hash -> what the record says it is (task, T, cell, clip, seed, optimizer), over
    every probe and every end-check probe of every bracket."""
    seeds = list(record.get("seeds") or [])
    out = {}
    for b in record.get("brackets", []):
        for p in [*b.get("probes", []), *b.get("checks", [])]:
            hashes = p.get("hashes", [])
            for i, h in enumerate(hashes):
                out[h] = dict(
                    task=b["task"], seq_len=p["seq_len"], cell=b["cell"], clip=b["clip"],
                    seed=seeds[i] if len(seeds) == len(hashes) else i,
                    optimizer=b.get("optimizer", DEFAULT_OPTIMIZER),
                )  # fmt: skip
    return out


def runs_by_hash(client, experiment_id: str, hashes) -> dict[str, RunInfo]:
    """Config hash -> its run: the latest FINISHED run with the hash in the experiment, else
    its latest run of any status, else a missing run."""
    from tracking import HASH_TAG, TRAINING_RUNS, all_runs, latest_per_config

    wanted = set(hashes)
    runs = [r for r in all_runs(client, experiment_id, TRAINING_RUNS)
            if r.data.tags.get(HASH_TAG) in wanted]  # fmt: skip
    latest = latest_per_config(runs, finished_only=False)
    return {h: run_info(latest[h]) if h in latest else missing_run(h) for h in wanted}


def _find_parent(client, tracking_uri: str, experiment: str, sweep: str | None):
    from tracking import KIND_TAG, all_runs

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(
            f"no experiment {experiment!r} at {tracking_uri}; run `rnnbench sweep quick` first."
        )
    if sweep:
        try:
            return exp, client.get_run(sweep)
        except Exception:
            raise UserError(
                f"no sweep run {sweep!r} at {tracking_uri}; see the parent runs in the MLflow UI."
            ) from None
    parents = all_runs(client, exp.experiment_id, f"tags.`{KIND_TAG}` = 'sweep'")
    if not parents:
        raise UserError(
            f"no sweep in experiment {experiment!r} at {tracking_uri}; run `rnnbench sweep quick` first."
        )
    return exp, max(parents, key=lambda r: r.info.start_time)


def _seeds(parent, record: dict | None) -> tuple:
    raw = (record or {}).get("seeds") or parent.data.params.get("seeds", "")
    if isinstance(raw, str):
        raw = [s for s in raw.split(",") if s.strip()]
    try:
        return tuple(int(s) for s in raw)
    except (TypeError, ValueError):
        return ()


def _download_profile(tracking_uri: str, info: RunInfo, dst: str) -> str:
    """The gradient profile of a run, downloaded into ``dst`` straight from the artifact URI the
    search that found the run gave (``client.download_artifacts(run_id, ...)`` asks the store
    for the run first: one query more per run, most of a report's reading time on a big
    sweep)."""
    from mlflow.artifacts import download_artifacts

    from tracking import PROFILE_ARTIFACT

    uri = f"{info.artifact_uri.rstrip('/')}/{PROFILE_ARTIFACT}"
    return download_artifacts(artifact_uri=uri, dst_path=dst, tracking_uri=tracking_uri)


def load_sweep(tracking_uri: str, experiment: str, sweep: str | None = None) -> SweepData:
    """Read a sweep (the parent run ``sweep``, else the experiment's latest) and its runs (see
    the module docstring for which) from MLflow, with their curves and gradient profiles."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    exp, parent = _find_parent(client, tracking_uri, experiment, sweep)
    return _load(client, tracking_uri, exp.experiment_id, parent)


def load_parent(tracking_uri: str, parent_run_id: str) -> SweepData:
    """:func:`load_sweep` of a parent run given by id, whatever its experiment."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    return _load(client, tracking_uri, parent.info.experiment_id, parent, allow_empty=True)


def _load(client, tracking_uri: str, exp_id: str, parent, allow_empty: bool = False) -> SweepData:
    from tasks import get_task
    from tracking import PARENT_TAG, all_runs, latest_per_config

    pid = parent.info.run_id
    record = read_critical(client, parent)
    if record is not None:
        members = critical_members(record)
        got = runs_by_hash(client, exp_id, members)
        infos = [
            got[h] if got[h].status != "missing" else missing_run(h, **members[h])
            for h in sorted(members)
        ]
        raw = {}
    else:
        children = all_runs(client, exp_id, f"tags.`{PARENT_TAG}` = '{pid}'")
        if not children and not allow_empty:
            raise UserError(f"sweep {pid} has no runs yet; run (or resume) the sweep first.")
        raw = {r.info.run_id: r for r in latest_per_config(children, finished_only=False).values()}
        infos = [run_info(r) for r in raw.values()]
    baselines: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for info in infos:
            if info.finished:
                for m in CURVES:
                    info.curves[m] = [
                        (h.step, h.value) for h in client.get_metric_history(info.run_id, m)
                    ]
                try:
                    path = _download_profile(tracking_uri, info, tmp)
                    prof = json.loads(Path(path).read_text())
                    info.profiles = list(prof.get("norms") or [])
                    info.input_length = _int(prof.get("input_length")) or info.input_length
                except Exception:  # a missing artifact is a gap, not an error
                    info.profiles = []
            key = (info.task, info.seq_len)
            if key in baselines or info.task == "?" or info.status == "missing":
                continue
            logged = raw[info.run_id].data.params if info.run_id in raw else None
            if logged is None and info.finished:
                logged = client.get_run(info.run_id).data.params
            if logged and "baseline_loss" in logged:
                baselines[key] = float(logged["baseline_loss"])  # as logged (task options included)
            else:
                try:
                    baselines[key] = get_task(info.task, seq_len=info.seq_len).baseline_loss
                except ValueError:
                    pass
    name = parent.data.params.get("spec") or parent.info.run_name or pid
    return SweepData(pid, name, infos, baselines, tracking_uri, exp_id,
                     _seeds(parent, record), record)  # fmt: skip
