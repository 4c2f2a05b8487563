"""Every finding of the report, computed in one place: the verdict, the claims, and the
statistics they share (groups, solved sets, longest T solved, curve statistics, incomplete runs,
budget-limited failures, Wilson intervals, Fisher's exact test).

``suite.findings.report`` renders what this module computes (tables, figures, markdown) and decides
nothing; ``suite.findings.claims`` re-exports the claims API. Each rule is written once, here, in the
docstring of the function that applies it; :func:`rules_markdown` prints those docstrings (with
the margins filled in from the constants below) under "How each finding is decided".

Example:
    >>> data = load_sweep("sqlite:///mlflow.db", "rnnbench")          # doctest: +SKIP
    >>> for c in check_claims(data):                                  # doctest: +SKIP
    ...     print(c.number, c.finding, c.evidence)
"""

from __future__ import annotations

import inspect
import json
import math
import re
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from suite.errors import UserError

# ----- constants: every margin a finding uses ----------------------------------------------

FINISHED = ("solved", "unsolved", "diverged")
TIME_CAP = "max_seconds reached"  # rnnbench.stop_reason of a run ended by the training-time cap
SOLVED, FAILED, UNDECIDED = "solved", "failed", "undecided"  # a configuration's outcome
SUPPORTED, REFUTED, MIXED, UNTESTABLE = "SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"
CELL_ORDER = ("simple_rnn", "irnn", "ortho_rnn", "lstm", "chrono_lstm", "gru")
GATED = ("lstm", "chrono_lstm", "gru")

WILSON_Z = 1.96  # 95 % Wilson score interval
FISHER_P = 0.05  # one-sided Fisher exact test level
HELP_MARGIN = 0.10  # "helped": a share moves by at least 10 points (and Fisher p < FISHER_P)
RESCUE_SHARE = 0.75  # claim 1: a clip setting prevents divergence when it rescues >= 75 %
RESCUE_NONE = 0.25  # ... and does not when it rescues <= 25 %
RESCUE_MIN_PAIRS = 3  # ... judged only on at least 3 pairs (fewer decide nothing)
SPIKE_RATIO = 10.0  # a run "spikes": max window max >= 10x its median window mean
SLOPE_SAME = 0.25  # two decay slopes are "the same" when they differ by <= 25 % ...
SLOPE_ABS = 0.5  # ... or by <= 0.5 log10 per 100 steps (near-zero slopes)
ORDER_MARGIN = 0.20  # claim 6: a cell "beats" another on a task by >= 20 points of solve share
FALL_EVALS = 3  # budget-limited: the last 3 evaluations ...
FALL_MARGIN = 0.05  # ... improved the best val-loss ratio by >= 5 % (else plateaued)
PROFILE_FLOOR = 1e-30  # ‖∂L/∂x_t‖ at or below this (a floored exact zero) is left out of slopes

CLAIMS = {
    1: "Clipping bounds exploding gradients: runs that diverge without it train stably with it.",
    2: "Clipping does nothing for vanishing gradients: a tanh RNN that fails at some T "
    "without clipping still fails with it.",
    3: "Gating (LSTM, GRU) mitigates vanishing gradients: gated cells solve longer T, with "
    "flatter gradient profiles.",
    4: "Gating does not remove exploding gradients: gated cells still see gradient spikes, "
    "so clipping can still help them.",
    5: "IRNN (ReLU + identity) matches LSTM on the adding problem where tanh fails, but needs "
    "clipping to stay stable.",
    6: "None of this is universal: the outcome depends on the task.",
    7: "A vanilla RNN whose recurrent matrix stays orthogonal solves lengths that tanh RNN "
    "cannot, without gates.",
    8: "Chrono initialisation lets LSTM solve longer T than its default init.",
}


# ----- the data --------------------------------------------------------------------------


@dataclass
class RunInfo:
    run_id: str
    task: str
    seq_len: int
    cell: str
    clip: str
    seed: int
    status: str  # solved | unsolved | diverged | failed | killed | running
    metrics: dict
    curves: dict = field(default_factory=dict)  # metric -> [(step, value)]
    profiles: list = field(default_factory=list)  # ‖∂L/∂x_t‖ per evaluation (grad_profile.json)
    stop_reason: str = ""  # e.g. "max_steps reached", "max_seconds reached"
    input_length: int | None = None  # steps the model reads (copy: T + 2 * num_recall)
    max_steps: int | None = None
    task_options: dict = field(default_factory=dict)  # the logged task.<name> params

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
        its stop reason says). An incomplete run never counts as a failure: it is left out of
        every share and comparison, and each finding says how many runs it left out.
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

    @property
    def finished(self) -> list[RunInfo]:
        return [r for r in self.runs if r.finished]


CURVES = ("val_loss_ratio", "grad_norm", "grad_norm_max", "clip_fraction")


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


def run_info(run) -> RunInfo:
    """One MLflow training run as a :class:`RunInfo`: its params (read back from its name when
    it crashed before logging them), status (FAILED / KILLED runs: failed / killed) and final
    metrics; curves and gradient profiles are left to :func:`load_sweep`."""
    from tracking import STATUS_TAG, STOP_REASON_TAG

    p = _params_of(run)
    status = run.data.tags.get(STATUS_TAG, "running")
    if run.info.status in ("FAILED", "KILLED"):
        status = run.info.status.lower()
    return RunInfo(
        run_id=run.info.run_id,
        task=p.get("task", "?"),
        seq_len=int(p.get("seq_len", 0)),
        cell=p.get("cell", "?"),
        clip=p.get("clip", "?"),
        seed=int(p.get("seed", 0)),
        status=status,
        metrics=dict(run.data.metrics),
        stop_reason=run.data.tags.get(STOP_REASON_TAG, ""),
        input_length=_int(p.get("input_length")),
        max_steps=_int(p.get("max_steps")),
        task_options={k[len("task.") :]: _number(v) for k, v in p.items() if k.startswith("task.")},
    )


def load_sweep(tracking_uri: str, experiment: str, sweep: str | None = None) -> SweepData:
    """Read a sweep's child runs (latest FINISHED per config; gaps kept) from MLflow."""
    import mlflow

    from tasks import get_task
    from tracking import (
        KIND_TAG,
        PARENT_TAG,
        all_runs,
        latest_per_config,
    )

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(
            f"no experiment {experiment!r} at {tracking_uri}; run `rnnbench sweep quick` first."
        )
    if sweep:
        try:
            parent = client.get_run(sweep)
        except Exception:
            raise UserError(
                f"no sweep run {sweep!r} at {tracking_uri}; see the parent runs in the MLflow UI."
            ) from None
    else:
        parents = all_runs(client, exp.experiment_id, f"tags.`{KIND_TAG}` = 'sweep'")
        if not parents:
            raise UserError(
                f"no sweep in experiment {experiment!r} at {tracking_uri}; run `rnnbench sweep quick` first."
            )
        parent = max(parents, key=lambda r: r.info.start_time)
    pid = parent.info.run_id
    children = all_runs(client, exp.experiment_id, f"tags.`{PARENT_TAG}` = '{pid}'")
    if not children:
        raise UserError(f"sweep {pid} has no runs yet; run (or resume) the sweep first.")
    latest = latest_per_config(children, finished_only=False)
    runs, baselines = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in latest.values():
            p = _params_of(run)
            info = run_info(run)
            if info.finished:
                for m in CURVES:
                    info.curves[m] = [
                        (h.step, h.value) for h in client.get_metric_history(run.info.run_id, m)
                    ]
                try:
                    path = client.download_artifacts(run.info.run_id, "grad_profile.json", tmp)
                    prof = json.loads(Path(path).read_text())
                    info.profiles = list(prof.get("norms") or [])
                    info.input_length = _int(prof.get("input_length")) or info.input_length
                except Exception:  # a missing artifact is a gap, not an error
                    info.profiles = []
            key = (info.task, info.seq_len)
            if key not in baselines and "baseline_loss" in p:
                baselines[key] = float(p["baseline_loss"])  # as logged (task options included)
            elif key not in baselines and info.task != "?":
                try:
                    baselines[key] = get_task(info.task, seq_len=info.seq_len).baseline_loss
                except ValueError:
                    pass
            runs.append(info)
    name = parent.data.params.get("spec") or parent.info.run_name or pid
    return SweepData(pid, name, runs, baselines, tracking_uri, exp.experiment_id)


# ----- small statistics ------------------------------------------------------------------


def cell_key(cell: str) -> int:
    return CELL_ORDER.index(cell) if cell in CELL_ORDER else len(CELL_ORDER)


def clip_key(clip: str) -> tuple:
    return (clip != "none", clip)


def median(xs) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else math.nan


def wilson(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Solve rates ``k/n`` (solved / counted runs) carry 95 % Wilson score intervals
    (z = {WILSON_Z}); none when no run is counted."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def fisher_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided Fisher exact p that rate ``k1/n1`` exceeds ``k2/n2`` (hypergeometric tail)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan
    N, K = n1 + n2, k1 + k2
    total = math.comb(N, n1)
    tail = sum(math.comb(K, x) * math.comb(N - K, n1 - x) for x in range(k1, min(n1, K) + 1))
    return tail / total


def improved(k_better: int, n_better: int, k_worse: int, n_worse: int) -> tuple[bool, float]:
    """Clipping "helped" when a share of counted runs (solved, or not diverged) with it beats
    the share without it by at least {HELP_MARGIN:.0%} (percentage points) AND a one-sided
    Fisher exact test (hypergeometric tail) gives p < {FISHER_P}.

    Returns:
        ``(helped, p)``.
    """
    if not n_better or not n_worse:
        return False, math.nan
    p = fisher_greater(k_better, n_better, k_worse, n_worse)
    gain = k_better / n_better - k_worse / n_worse
    return gain >= HELP_MARGIN - 1e-12 and p < FISHER_P, p


def slopes_same(a: float, b: float) -> bool:
    """Two gradient-decay slopes agree when |a - b| <= max({SLOPE_SAME:.0%} of the larger
    magnitude, {SLOPE_ABS} log10 per 100 steps)."""
    return abs(a - b) <= max(SLOPE_SAME * max(abs(a), abs(b)), SLOPE_ABS)


def flatter(a: float, b: float) -> bool:
    """Slope ``a`` is flatter than ``b``: a > b and they are not the same (slopes_same)."""
    return a > b and not slopes_same(a, b)


def trimmed_profile(
    profile, task: str, seq_len: int, input_length: int | None = None, options: dict | None = None
):
    """The ‖∂L/∂x_t‖ profile used by slopes and figures: for copy, the recall positions (which the loss reads directly) are cut off, so distance
    0 is the last input step before them; norms at or below {PROFILE_FLOOR:g} (floored exact
    zeros) become NaN, to be left out rather than drawn or fitted as log10 = -30.
    """
    import numpy as np

    norms = np.asarray(profile, dtype=np.float64)
    if task == "copy":
        from tasks import get_task

        t = get_task("copy", seq_len=seq_len, **(options or {}))
        if len(norms) == (input_length or t.length) == t.length:
            norms = norms[: t.recall_slice.start]
    return np.where(norms > PROFILE_FLOOR, norms, np.nan)


def task_slope(
    profile, task: str, seq_len: int, input_length: int | None = None, options: dict | None = None
) -> float:
    """Gradient-decay slope: log10 ‖∂L/∂x_t‖ per 100 steps of distance, a least-squares fit
    over the profile as trimmed_profile leaves it (copy's recall positions and floored zeros
    left out); fewer than 2 finite positive norms: no slope."""
    import numpy as np

    norms = trimmed_profile(profile, task, seq_len, input_length, options)
    distance = np.arange(len(norms))[::-1].astype(np.float64)  # last kept step: distance 0
    keep = np.isfinite(norms)
    if keep.sum() < 2:
        return math.nan
    return float(100.0 * np.polyfit(distance[keep], np.log10(norms[keep]), 1)[0])


def run_slope(r: RunInfo) -> float:
    """The run's gradient-decay slope at its first evaluation (:func:`task_slope`)."""
    if not r.profile_first:
        return math.nan
    return task_slope(r.profile_first, r.task, r.seq_len, r.input_length, r.task_options)


def _values(r: RunInfo, metric: str) -> list[float]:
    return [v for _, v in sorted(r.curves.get(metric) or []) if math.isfinite(v)]


def run_max_grad(r: RunInfo) -> float:
    """The run's largest pre-clip gradient norm: the max of grad_norm_max over all windows."""
    vals = _values(r, "grad_norm_max")
    if vals:
        return max(vals)
    v = r.metrics.get("grad_norm_max", math.nan)
    return v if math.isfinite(v) else math.nan


def spike_ratio(r: RunInfo) -> float:
    """Per-run spike ratio: the largest window max over the median window mean of the same
    run, the first evaluation window excluded (it holds the untrained model's start); needs at
    least 2 windows. A run spikes when its ratio is >= {SPIKE_RATIO:g}."""
    maxima, means = _values(r, "grad_norm_max")[1:], _values(r, "grad_norm")[1:]
    means = [v for v in means if v > 0]
    if not maxima or not means:
        return math.nan
    return max(maxima) / statistics.median(means)


def mean_clip_fraction(r: RunInfo) -> float:
    """Share of steps where clipping fired, averaged over the run's windows (nan: none logged)."""
    vals = _values(r, "clip_fraction")
    return statistics.mean(vals) if vals else math.nan


def still_falling(r: RunInfo) -> bool | None:
    """A FAIL (unsolved, counted run) is *budget-limited* when its best val-loss ratio over the last {FALL_EVALS}
    evaluations is at least {FALL_MARGIN:.0%} below its best before them (still improving
    when the budget ran out), else *plateaued*; runs with fewer than {FALL_EVALS} + 1
    evaluations are neither.
    """
    vals = _values(r, "val_loss_ratio")
    if r.status != "unsolved" or len(vals) < FALL_EVALS + 1:
        return None
    return min(vals[-FALL_EVALS:]) <= (1 - FALL_MARGIN) * min(vals[:-FALL_EVALS])


# ----- groups, outcomes, solved sets ----------------------------------------------------


def groups(data: SweepData) -> dict[tuple, list[RunInfo]]:
    """(task, T, cell, clip) -> runs over seeds."""
    out: dict[tuple, list[RunInfo]] = defaultdict(list)
    for r in data.runs:
        out[(r.task, r.seq_len, r.cell, r.clip)].append(r)
    return out


@dataclass
class Outcome:
    """A configuration's result over its seeds."""

    state: str | None  # solved | failed | undecided | None (no finished run)
    solved: int  # seeds solved
    counted: int  # finished, complete runs
    incomplete: int  # finished runs cut by the time cap
    finished: int
    runs: int

    @property
    def rate(self) -> float:
        return self.solved / self.counted if self.counted else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.solved, self.counted)


def outcome(runs: list[RunInfo]) -> Outcome:
    """A configuration (task, T, cell, clip) solves task@T when at least half its seeds do.

    Over its n finished seeds with s solved and i incomplete: *solved* when 2s >= n (even if
    every incomplete run had failed), *failed* when 2(s + i) < n (even if every incomplete run
    had solved), otherwise *undecided* (the time cap decides it, so no comparison uses it).
    """
    fin = [r for r in runs if r.finished]
    s = sum(r.status == "solved" for r in fin)
    i = sum(r.incomplete for r in fin)
    n = len(fin)
    state = None
    if n:
        state = SOLVED if 2 * s >= n else FAILED if 2 * (s + i) < n else UNDECIDED
    return Outcome(state, s, n - i, i, n, len(runs))


def outcomes(data: SweepData) -> dict[tuple, Outcome]:
    return {k: outcome(v) for k, v in groups(data).items()}


def _set(data: SweepData, cell: str, clip: str, state: str) -> set[tuple]:
    return {
        (t, T)
        for (t, T, c, k), o in outcomes(data).items()
        if (c, k) == (cell, clip) and o.state == state
    }


def solved_set(data: SweepData, cell: str, clip: str) -> set[tuple]:
    """task@T (as tuples) that ``cell``/``clip`` solved (see :func:`outcome`)."""
    return _set(data, cell, clip, SOLVED)


def failed_set(data: SweepData, cell: str, clip: str) -> set[tuple]:
    """task@T that ``cell``/``clip`` failed whatever its incomplete runs would have done."""
    return _set(data, cell, clip, FAILED)


def solvable(data: SweepData) -> set[tuple]:
    """task@T that at least one configuration (any cell, any clip) solved."""
    return {(t, T) for (t, T, _, _), o in outcomes(data).items() if o.state == SOLVED}


def longest_solved(data: SweepData) -> dict[tuple, int | None]:
    """(task, cell, clip) -> longest T the configuration solved (None: none)."""
    out: dict[tuple, int | None] = {}
    for (task, T, cell, clip), o in outcomes(data).items():
        key = (task, cell, clip)
        out.setdefault(key, None)
        if o.state == SOLVED:
            out[key] = max(out[key] or 0, T)
    return out


def longest(data: SweepData, task: str, cells) -> int:
    """Longest T of ``task`` solved by any of ``cells`` with its best clip setting; 0: none."""
    return max(
        (T or 0 for (t, cell, _), T in longest_solved(data).items() if t == task and cell in cells),
        default=0,
    )


def counted(runs) -> list[RunInfo]:
    return [r for r in runs if r.counted]


def n_incomplete(runs) -> int:
    return sum(r.finished and r.incomplete for r in runs)


def share(runs, status: str) -> tuple[int, int]:
    """(runs with ``status``, counted runs): shares leave incomplete runs out."""
    c = counted(runs)
    return sum(r.status == status for r in c), len(c)


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else "0/0"


def _fmt_T(T: int) -> str:
    return f"T = {T}" if T else "no length"


def _at(keys) -> str:
    return ", ".join(f"{t}@{T}" for t, T in sorted(keys))


# ----- claims -----------------------------------------------------------------------------


@dataclass
class Claim:
    number: int
    text: str
    finding: str  # SUPPORTED | REFUTED | MIXED | NOT TESTABLE
    evidence: str
    excluded: int = 0  # incomplete (time-capped) runs the finding left out


def _combine(clauses: list[tuple[str, bool | None, str]]) -> tuple[str, str]:
    """Finding from clause results: all tested clauses hold: SUPPORTED; none holds: REFUTED;
    they disagree: MIXED; none could be tested: NOT TESTABLE. Evidence: every clause, labelled."""
    tested = [ok for _, ok, _ in clauses if ok is not None]
    label = {True: "holds", False: "fails", None: "not testable"}
    evidence = " ".join(f"[{name}: {label[ok]}] {txt}" for name, ok, txt in clauses)
    if not tested:
        return UNTESTABLE, evidence
    if all(tested):
        return SUPPORTED, evidence
    if not any(tested):
        return REFUTED, evidence
    return MIXED, evidence


def _claim(n: int, finding: str, evidence: str, runs) -> Claim:
    x = n_incomplete(runs)
    return Claim(n, CLAIMS[n], finding, evidence + f" ({x} time-capped run(s) excluded.)", x)


def claim1(data: SweepData) -> Claim:
    """Claim 1 (clipping prevents divergence). Pairs: each run that diverged without clipping
    with the run of the same task, T, cell and seed under each clip setting (incomplete
    partners left out). A clip setting rescues a pair when its run did not diverge; a setting
    with fewer than {RESCUE_MIN_PAIRS} pairs decides nothing. SUPPORTED when every deciding clip
    setting rescues >= {RESCUE_SHARE:.0%} of its pairs, REFUTED when every one rescues
    <= {RESCUE_NONE:.0%}, otherwise MIXED; NOT TESTABLE when no run diverged without clipping or
    no clip setting has {RESCUE_MIN_PAIRS} pairs."""
    fin = data.finished
    none = [r for r in fin if r.clip == "none"]
    clipped = [r for r in fin if r.clip != "none"]
    if not none or not clipped:
        return _claim(1, UNTESTABLE, "needs runs both with and without clipping.", fin)
    div_none = {(r.task, r.seq_len, r.cell, r.seed) for r in none if r.status == "diverged"}
    if not div_none:
        d, n = share(clipped, "diverged")
        return _claim(
            1,
            UNTESTABLE,
            f"no run diverged without clipping (0/{len(counted(none))}), so there was nothing "
            f"for clipping to prevent; {d}/{n} clipped runs diverged.",
            fin,
        )
    shares, parts, used = {}, [], list(none)
    for clip in sorted({r.clip for r in clipped}):
        pair = [
            r for r in clipped if r.clip == clip and (r.task, r.seq_len, r.cell, r.seed) in div_none
        ]
        used += pair
        pair = counted(pair)
        if not pair:
            continue
        rescued = sum(r.status != "diverged" for r in pair)
        if len(pair) >= RESCUE_MIN_PAIRS:
            shares[clip] = rescued / len(pair)
            parts.append(f"{clip} rescued {_pct(rescued, len(pair))}")
        else:
            parts.append(
                f"{clip} rescued {_pct(rescued, len(pair))} (too few pairs to decide, "
                f"< {RESCUE_MIN_PAIRS})"
            )
    cells = sorted({c for _, _, c, _ in div_none}, key=cell_key)
    evidence = (
        f"{len(div_none)}/{len(counted(none))} runs diverged without clipping ({', '.join(cells)})"
    )
    if parts:
        evidence += "; of the same task, T, cell and seed, " + ", ".join(parts) + "."
    if not shares:
        why = f" No clip setting has {RESCUE_MIN_PAIRS} pairs to decide on."
        return _claim(
            1, UNTESTABLE, evidence + (why if parts else "; no clipped run pairs with them."), used
        )
    if all(s >= RESCUE_SHARE for s in shares.values()):
        finding = SUPPORTED
    elif all(s <= RESCUE_NONE for s in shares.values()):
        finding = REFUTED
    else:
        finding = MIXED
        evidence += f" Not every clip setting rescued >= {RESCUE_SHARE:.0%}, nor every one <= {RESCUE_NONE:.0%}."
    return _claim(1, finding, evidence, used)


def tanh_rescue(data: SweepData) -> dict:
    """Clause "still fails with clipping" of claim 2 (the verdict uses it too): the task@T
    tanh SimpleRNN failed without clipping and that some configuration solved (a task@T no
    cell solved says nothing about vanishing gradients); the clause fails when any clip
    setting solved one of them, holds when every clip setting failed or left them undecided,
    and is NOT TESTABLE when there is no such task@T."""
    fin = [r for r in data.finished if r.cell == "simple_rnn"]
    clips = sorted({r.clip for r in fin if r.clip != "none"})
    out = {"clips": clips, "tested": [], "unsolvable": [], "wins": {}, "undecided": []}
    if not any(r.clip == "none" for r in fin) or not clips:
        out["reason"] = "needs simple_rnn runs with and without clipping."
        return out
    failed = failed_set(data, "simple_rnn", "none")
    out["undecided"] = sorted(
        {(r.task, r.seq_len) for r in fin if r.clip == "none"}
        - failed
        - solved_set(data, "simple_rnn", "none")
    )
    ok = solvable(data)
    out["tested"] = sorted(failed & ok)
    out["unsolvable"] = sorted(failed - ok)
    out["wins"] = {
        c: sorted(solved_set(data, "simple_rnn", c) & set(out["tested"]))
        for c in clips
        if solved_set(data, "simple_rnn", c) & set(out["tested"])
    }
    if not failed:
        out["reason"] = "tanh SimpleRNN failed no task@T without clipping: nothing to rescue."
    elif not out["tested"]:
        out["reason"] = (
            f"no cell solved the task@T tanh SimpleRNN failed without clipping ({_at(failed)})."
        )
    return out


def claim2(data: SweepData) -> Claim:
    """Claim 2 (clipping does nothing for vanishing gradients), two clauses on the task@T tanh
    SimpleRNN failed without clipping and some configuration solved. Solving: no clip setting
    made tanh SimpleRNN solve one of them (rule of the tanh-rescue clause). Profile: for each
    such task@T and clip setting, the median decay slope of tanh SimpleRNN with the setting
    and without clipping are the same (slopes_same); the clause holds when they are the same
    in more than half of the compared pairs. Clauses combined as in _combine."""
    rows = [r for r in data.finished if r.cell == "simple_rnn"]
    res = tanh_rescue(data)
    if "reason" in res:
        return _claim(2, UNTESTABLE, res["reason"], rows)
    tested = res["tested"]
    if res["wins"]:
        got = "; ".join(f"{c}: {_at(g)}" for c, g in res["wins"].items())
        solve = (False, f"clipping made tanh SimpleRNN solve what it failed without ({got}).")
    else:
        solve = (
            True,
            f"tanh SimpleRNN failed {_at(tested)} without clipping (solved by another cell) and "
            f"did not solve them with {', '.join(res['clips'])}.",
        )
    if res["unsolvable"]:
        solve = (
            solve[0],
            solve[1] + f" Not counted: {_at(res['unsolvable'])} (no cell solved them).",
        )
    same, pairs = 0, []
    for task, T in tested:
        at = [r for r in rows if (r.task, r.seq_len) == (task, T)]
        s0 = median(run_slope(r) for r in at if r.clip == "none")
        for c in res["clips"]:
            s1 = median(run_slope(r) for r in at if r.clip == c)
            if math.isfinite(s0) and math.isfinite(s1):
                ok = slopes_same(s0, s1)
                same += ok
                pairs.append(
                    f"{task}@{T} {s0:.2g} without vs {s1:.2g} with {c} ({'same' if ok else 'differ'})"
                )
    if pairs:
        prof = (
            2 * same > len(pairs),
            f"decay slopes (log10 per 100 steps, first evaluation) the same in {same}/{len(pairs)} "
            f"pairs: {'; '.join(pairs)}.",
        )
    else:
        prof = (None, "no gradient profile logged for those task@T.")
    finding, ev = _combine([("solving", *solve), ("profile", *prof)])
    return _claim(2, finding, ev, rows)


def gating_by_task(data: SweepData) -> dict[str, dict]:
    """Per task, the two clauses of claim 3. Length: the longest T solved by a gated cell
    (best clip setting) exceeds tanh SimpleRNN's; it fails when tanh went as far or further
    and something was solved; NOT TESTABLE when neither solved any length. Profile: at the
    task's longest T, the median decay slope of the gated runs is flatter than tanh
    SimpleRNN's (flatter: higher and not slopes_same); it fails otherwise."""
    fin = data.finished
    cells = {r.cell for r in fin}
    out = {}
    for task in sorted({r.task for r in fin}):
        L_tanh = longest(data, task, ["simple_rnn"])
        L_gate = longest(data, task, [c for c in GATED if c in cells])
        if L_gate or L_tanh:
            length = (L_gate > L_tanh, f"gated {_fmt_T(L_gate)}, tanh {_fmt_T(L_tanh)}")
        else:
            length = (None, "neither gated nor tanh solved any length")
        T = max(r.seq_len for r in fin if r.task == task)
        at = [r for r in fin if (r.task, r.seq_len) == (task, T)]
        s_gate = median(run_slope(r) for r in at if r.cell in GATED)
        s_tanh = median(run_slope(r) for r in at if r.cell == "simple_rnn")
        if math.isfinite(s_gate) and math.isfinite(s_tanh):
            prof = (
                flatter(s_gate, s_tanh),
                f"decay at {task}@{T} {s_gate:.2g} (gated) vs {s_tanh:.2g} (tanh)",
            )
        else:
            prof = (None, f"no gradient profiles of both at {task}@{T}")
        out[task] = {"length": length, "profile": prof}
    return out


def claim3(data: SweepData) -> Claim:
    """Claim 3 (gated cells solve longer T, with flatter profiles): the length and profile
    clauses of gating_by_task on every task, combined as in _combine (MIXED when they
    disagree on a task or between tasks)."""
    fin = data.finished
    rows = [r for r in fin if r.cell in GATED or r.cell == "simple_rnn"]
    cells = {r.cell for r in fin}
    if "simple_rnn" not in cells or not cells & set(GATED):
        return _claim(3, UNTESTABLE, "needs simple_rnn and at least one gated cell.", rows)
    clauses = []
    for task, c in gating_by_task(data).items():
        clauses.append((f"{task} length", *c["length"]))
        clauses.append((f"{task} profile", *c["profile"]))
    finding, ev = _combine(clauses)
    return _claim(3, finding, ev, rows)


def claim4(data: SweepData) -> Claim:
    """Claim 4 (gated cells still see spikes; clipping can still help them). Spikes: more
    than half of the unclipped LSTM/GRU runs spike (spike_ratio). Helped: for at least one
    clip setting, the gated runs' share not diverged or share solved beats the unclipped
    runs' by the "helped" rule. Clauses combined as in _combine."""
    fin = [r for r in data.finished if r.cell in GATED]
    none = [r for r in fin if r.clip == "none"]
    clipped = [r for r in fin if r.clip != "none"]
    if not none or not clipped:
        return _claim(4, UNTESTABLE, "needs gated runs with and without clipping.", fin)
    ratios = [x for x in (spike_ratio(r) for r in none) if math.isfinite(x)]
    if ratios:
        k = sum(x >= SPIKE_RATIO for x in ratios)
        spikes = (
            2 * k > len(ratios),
            f"{k}/{len(ratios)} unclipped LSTM/GRU runs spiked (max/median window ratio >= "
            f"{SPIKE_RATIO:g}, first window excluded; median ratio {statistics.median(ratios):.3g}, "
            f"largest {max(ratios):.3g}).",
        )
    else:
        spikes = (None, "no unclipped gated run logged 2 or more gradient windows.")
    s0, n0 = share(none, "solved")
    d0, _ = share(none, "diverged")
    helped, compared, parts = False, False, []
    for c in sorted({r.clip for r in clipped}, key=clip_key):
        rc = [r for r in clipped if r.clip == c]
        s1, n1 = share(rc, "solved")
        d1, _ = share(rc, "diverged")
        h_solve, p_s = improved(s1, n1, s0, n0)
        h_stable, p_d = improved(n1 - d1, n1, n0 - d0, n0)
        helped |= h_solve or h_stable
        compared = compared or bool(n0 and n1)
        frac = median(mean_clip_fraction(r) for r in rc)
        parts.append(
            f"{c}: solved {s1}/{n1} (p = {p_s:.2g}), diverged {d1}/{n1} (p = {p_d:.2g})"
            + (f", fired on {frac:.0%} of steps (median run)" if math.isfinite(frac) else "")
        )
    help_ = (
        helped if compared else None,
        f"without clipping solved {s0}/{n0}, diverged {d0}/{n0}; " + "; ".join(parts) + ".",
    )
    finding, ev = _combine([("spikes", *spikes), ("clipping helped", *help_)])
    return _claim(4, finding, ev, fin)


def claim5(data: SweepData) -> Claim:
    """Claim 5 (IRNN matches LSTM on adding where tanh fails; needs clipping). Matches: on
    adding, IRNN's longest T solved (best clip setting) is >= LSTM's and > tanh SimpleRNN's;
    NOT TESTABLE when neither IRNN nor LSTM solved any length. Needs clipping: for at least
    one clip setting, IRNN's share of adding runs not diverged beats the unclipped runs' by the
    "helped" rule. Clauses combined as in _combine."""
    fin = [r for r in data.finished if r.task == "adding"]
    rows = [r for r in fin if r.cell in ("irnn", "lstm", "simple_rnn")]
    cells = {r.cell for r in fin}
    if not {"irnn", "lstm"} <= cells:
        return _claim(5, UNTESTABLE, "needs irnn and lstm runs on the adding task.", rows)
    L_irnn, L_lstm = longest(data, "adding", ["irnn"]), longest(data, "adding", ["lstm"])
    L_tanh = longest(data, "adding", ["simple_rnn"])
    txt = f"adding, longest T solved: irnn {_fmt_T(L_irnn)}, lstm {_fmt_T(L_lstm)}, tanh {_fmt_T(L_tanh)}."
    match = (None if not (L_irnn or L_lstm) else L_irnn >= L_lstm and L_irnn > L_tanh, txt)
    irnn = [r for r in fin if r.cell == "irnn"]
    none = [r for r in irnn if r.clip == "none"]
    d0, n0 = share(none, "diverged")
    needs, parts = None, []
    for c in sorted({r.clip for r in irnn if r.clip != "none"}, key=clip_key):
        d1, n1 = share([r for r in irnn if r.clip == c], "diverged")
        if not n0 or not n1:
            continue
        ok, p = improved(n1 - d1, n1, n0 - d0, n0)
        needs = bool(needs) or ok
        parts.append(f"{c} {d1}/{n1} (p = {p:.2g})")
    if needs is None:
        stab = (None, "needs irnn runs on adding with and without clipping.")
    else:
        stab = (needs, f"irnn diverged {d0}/{n0} without clipping vs " + ", ".join(parts) + ".")
    finding, ev = _combine([("matches LSTM", *match), ("needs clipping", *stab)])
    return _claim(5, finding, ev, rows)


def task_shares(data: SweepData) -> dict[str, dict[str, tuple[int, int]]]:
    """task -> cell -> (runs solved, counted runs), over every T and clip setting."""
    out: dict[str, dict] = defaultdict(dict)
    fin = data.finished
    for task in sorted({r.task for r in fin}):
        for cell in sorted({r.cell for r in fin if r.task == task}, key=cell_key):
            out[task][cell] = share([r for r in fin if (r.task, r.cell) == (task, cell)], "solved")
    return dict(out)


def best_cells(data: SweepData) -> dict[str, list[str]]:
    """task -> the cell(s) with the highest share of runs solved ([] when none solved)."""
    out = {}
    for task, sh in task_shares(data).items():
        rates = {c: k / n for c, (k, n) in sh.items() if n}
        top = max(rates.values(), default=0)
        out[task] = (
            sorted((c for c, s in rates.items() if s == top), key=cell_key) if top > 0 else []
        )
    return out


def claim6(data: SweepData) -> Claim:
    """Claim 6 (the outcome depends on the task), on the tasks where some run solved.
    Ranking: the order of two cells reverses between two tasks, each time by >= {ORDER_MARGIN:.0%}
    points of solve share; it fails when no pair reverses by that margin. Claims: the length
    clause of claim 3 holds on some task and fails on another; it fails when it comes out the
    same on every task where it is testable. Each clause needs two such tasks (else NOT
    TESTABLE); combined as in _combine."""
    fin = data.finished
    sh = {t: s for t, s in task_shares(data).items() if any(k for k, _ in s.values())}
    rates = {t: {c: k / n for c, (k, n) in s.items() if n} for t, s in sh.items()}
    named = "; ".join(f"{t}: {' = '.join(c) or 'none solved'}" for t, c in best_cells(data).items())
    if len(rates) < 2:
        rank = (None, f"needs runs solved on two tasks (best cell by share solved — {named}).")
    else:
        rev = []
        tasks = sorted(rates)
        for i, a in enumerate(tasks):
            for b in tasks[i + 1 :]:
                common = sorted(set(rates[a]) & set(rates[b]), key=cell_key)
                for x in common:
                    for y in common:
                        if (
                            rates[a][x] - rates[a][y] >= ORDER_MARGIN - 1e-12
                            and rates[b][y] - rates[b][x] >= ORDER_MARGIN - 1e-12
                        ):
                            rev.append(f"{x} > {y} on {a} ({rates[a][x]:.0%} vs {rates[a][y]:.0%}) but "
                                       f"{y} > {x} on {b} ({rates[b][y]:.0%} vs {rates[b][x]:.0%})")  # fmt: skip
        rank = (
            bool(rev),
            f"best cell by share solved — {named}; "
            + (rev[0] if rev else f"no two cells swap order by >= {ORDER_MARGIN:.0%} points")
            + ".",
        )
    g = {t: c["length"] for t, c in gating_by_task(data).items()}
    tested = {t: ok for t, (ok, _) in g.items() if ok is not None}
    if len(tested) < 2:
        per = (None, "claim 3's length clause is testable on fewer than two tasks.")
    else:
        hold = sorted(t for t, ok in tested.items() if ok)
        fail = sorted(t for t, ok in tested.items() if not ok)
        per = (
            bool(hold and fail),
            f"claim 3's length clause holds on {', '.join(hold) or 'no task'}, fails on "
            f"{', '.join(fail) or 'no task'}.",
        )
    finding, ev = _combine([("ranking", *rank), ("claims", *per)])
    return _claim(6, finding, ev, fin)


def beyond(data: SweepData, task: str, cell: str, rival: str) -> tuple[bool | None, str]:
    """Whether ``cell`` goes further than ``rival`` on ``task``: the lengths ``cell`` solved
    (best clip setting) that ``rival`` failed under every clip setting it ran. The clause holds
    when there is such a length; it fails when ``cell`` solved no length beyond ``rival``'s
    longest (or solved none while ``rival`` solved some); it is NOT TESTABLE when neither
    solved any length of the task, or when ``rival``'s outcome at each length ``cell`` solved
    beyond it is undecided (time-capped runs) or was not run."""
    outs = outcomes(data)
    Ls = sorted({T for (t, T, c, _) in outs if t == task and c in (cell, rival)})
    won = {T for (t, T, c, _), o in outs.items() if (t, c) == (task, cell) and o.state == SOLVED}
    L_cell, L_rival = longest(data, task, [cell]), longest(data, task, [rival])
    head = f"{task}: {cell} {_fmt_T(L_cell)}, {rival} {_fmt_T(L_rival)}"
    if not Ls or not (L_cell or L_rival):
        return None, f"{head} (neither solved any length)"
    rival_at = {
        T: [o.state for (t, T2, c, _), o in outs.items() if (t, T2, c) == (task, T, rival)]
        for T in Ls
    }
    beaten = sorted(T for T in won if rival_at[T] and all(s == FAILED for s in rival_at[T]))
    if beaten:
        return (
            True,
            f"{head}; {cell} solved T = {', '.join(map(str, beaten))} that {rival} failed with every clip setting",
        )
    open_ = sorted(T for T in won if T > L_rival and (not rival_at[T] or UNDECIDED in rival_at[T]))
    if open_:
        return None, f"{head}; {rival} undecided or not run at T = {', '.join(map(str, open_))}"
    return False, f"{head}; {cell} solved no length that {rival} failed"


def _beyond_claim(n: int, data: SweepData, cell: str, rival: str) -> Claim:
    fin = data.finished
    have = {r.cell for r in fin}
    rows = [r for r in fin if r.cell in (cell, rival)]
    if not {cell, rival} <= have:
        return _claim(n, UNTESTABLE, f"needs {cell} and {rival} runs.", rows)
    tasks = sorted(
        {r.task for r in fin if r.cell == cell} & {r.task for r in fin if r.cell == rival}
    )
    finding, ev = _combine([(t, *beyond(data, t, cell, rival)) for t in tasks])
    return _claim(n, finding, ev, rows)


def claim7(data: SweepData) -> Claim:
    """Claim 7 (an orthogonal vanilla RNN goes further than tanh SimpleRNN, without gates): on
    every task both ran, ortho_rnn solves a length tanh SimpleRNN failed under every clip
    setting (rule "Beyond", per task); combined over tasks as in _combine."""
    return _beyond_claim(7, data, "ortho_rnn", "simple_rnn")


def claim8(data: SweepData) -> Claim:
    """Claim 8 (chrono initialisation lets LSTM go further): on every task both ran,
    chrono_lstm solves a length the default-init LSTM failed under every clip setting (rule
    "beyond", per task); combined over tasks as in _combine."""
    return _beyond_claim(8, data, "chrono_lstm", "lstm")


CLAIM_RULES = {
    1: claim1, 2: claim2, 3: claim3, 4: claim4, 5: claim5, 6: claim6, 7: claim7, 8: claim8,
}  # fmt: skip


def check_claims(data: SweepData) -> list[Claim]:
    """Each claim of ``CLAIMS`` with a finding and its evidence, from ``data``."""
    if not data.finished:
        return [Claim(n, t, UNTESTABLE, "no run finished.") for n, t in CLAIMS.items()]
    return [fn(data) for fn in CLAIM_RULES.values()]


# ----- verdict ----------------------------------------------------------------------------


def verdict(data: SweepData) -> list[str]:
    """Sentences derived from the numbers, each naming its evidence, by the same rules as the
    claims ("Solved, failed, undecided", tanh_rescue, run_max_grad; a cell's longest T solved
    takes its best clip setting); cells are ranked by share of counted runs solved, and not
    at all when no run solved; IRNN is compared per clip setting."""
    out: list[str] = []
    fin = data.finished
    if not fin:
        return ["No run finished, so the data supports no statement yet."]
    cells = sorted({r.cell for r in fin}, key=cell_key)
    clips = sorted({r.clip for r in fin}, key=clip_key)
    tasks = sorted({r.task for r in fin})
    seeds = {r.seed for r in fin}
    solved_any = any(r.status == "solved" for r in fin)
    if len(seeds) < 3:
        out.append(
            f"Only {len(seeds)} seed(s) per configuration: read every statement below as an indication, "
            "not a conclusion (3 or more seeds are needed)."
        )
    x = n_incomplete(fin)
    if x:
        undecided = sum(o.state == UNDECIDED for o in outcomes(data).values())
        out.append(
            f"{x} run(s) were cut by the training-time cap before their step budget: they count "
            f"neither as solved nor as failed ({undecided} configuration(s) left undecided)."
        )
    if not solved_any:
        out.append(
            "No run solved its task, so no cell can be ranked and no clipping effect on solving can be shown."
        )

    ls = longest_solved(data)
    for task in tasks:
        parts = []
        for cell in cells:
            got = [(ls.get((task, cell, c)), c) for c in clips if ls.get((task, cell, c))]
            if got:
                T, c = max(got, key=lambda tc: (tc[0], -clips.index(tc[1])))
                parts.append(f"{cell} T = {T} ({c})")
            else:
                parts.append(f"{cell} none")
        lengths = sorted({r.seq_len for r in fin if r.task == task})
        out.append(
            f"Longest length solved on {task} (lengths {', '.join(map(str, lengths))}): "
            + "; ".join(parts)
            + "."
        )

    if "simple_rnn" in cells and "none" in clips and solved_any:
        res = tanh_rescue(data)
        if res["wins"]:
            for c, g in res["wins"].items():
                out.append(
                    f"Clipping helped tanh SimpleRNN: with {c} it solved {_at(g)}, which it "
                    "failed without clipping."
                )
        elif res["tested"]:
            out.append(
                "No clipping setting made tanh SimpleRNN solve a length it failed without clipping "
                f"({len(res['tested'])} task@T failed without and solved by another cell; clip "
                f"settings tried: {', '.join(res['clips'])})."
            )
        elif res["clips"]:
            out.append(f"Clipping and tanh SimpleRNN: not testable here: {res.get('reason', '')}")

    if solved_any:
        score = {}
        for cell in cells:
            k, n = share([r for r in fin if r.cell == cell], "solved")
            steps = median(
                r.metrics.get("steps_to_solve")
                for r in fin
                if r.cell == cell and r.status == "solved"
            )
            score[cell] = (k, n, steps if math.isfinite(steps) else math.inf)
        ranking = sorted(cells, key=lambda c: (-score[c][0] / max(score[c][1], 1), score[c][2]))

        def _ci(c):
            lo, hi = wilson(score[c][0], score[c][1])
            return f"{c} ({score[c][0]}/{score[c][1]}, 95% CI {lo:.2f}-{hi:.2f})"

        out.append(
            "Ranking of cells by share of runs solved: " + " > ".join(map(_ci, ranking)) + "."
        )
        best = best_cells(data)
        if len(tasks) > 1 and len({tuple(v) for v in best.values() if v}) > 1:
            out.append(
                "The best cell depends on the task: "
                + ", ".join(f"{t}: {' = '.join(c) or 'none solved'}" for t, c in best.items())
                + "."
            )

    none = [r for r in fin if r.clip == "none"]
    clipped = [r for r in fin if r.clip != "none"]
    d0 = [r for r in none if r.status == "diverged"]
    d1 = [r for r in clipped if r.status == "diverged"]
    if not d0 and not d1:
        out.append("No run diverged, so this data cannot show clipping preventing divergence.")
    else:
        out.append(
            f"Divergence: {len(d0)}/{len(counted(none))} runs without clipping diverged"
            + (f" ({', '.join(sorted({r.cell for r in d0}, key=cell_key))})" if d0 else "")
            + f", {len(d1)}/{len(counted(clipped))} with clipping"
            + (f" ({', '.join(sorted({r.cell for r in d1}, key=cell_key))})" if d1 else "")
            + "."
        )

    if "irnn" in cells and "none" in clips and len(clips) > 1:
        per = [f"{len(solved_set(data, 'irnn', c))} with {c}" for c in clips if c != "none"]
        irnn_all = set().union(*(solved_set(data, "irnn", c) for c in clips))
        tanh_clips = {r.clip for r in fin if r.cell == "simple_rnn"}
        tanh_failed = (
            set.intersection(*(failed_set(data, "simple_rnn", c) for c in tanh_clips))
            if tanh_clips
            else set()
        )
        beyond = sorted(irnn_all & tanh_failed)
        out.append(
            f"IRNN solved {len(solved_set(data, 'irnn', 'none'))} task@T without clipping, "
            + ", ".join(per)
            + (
                f"; it solved {_at(beyond)} where tanh SimpleRNN failed under every clip setting"
                if beyond
                else ""
            )
            + "."
        )

    for cell in GATED:
        rs = [r for r in fin if r.cell == cell]
        if not rs:
            continue
        gmax = max((run_max_grad(r) for r in rs), key=lambda v: v if math.isfinite(v) else -1)
        fr = [mean_clip_fraction(r) for r in rs if r.clip != "none"]
        fr = [f for f in fr if math.isfinite(f)]
        out.append(
            f"{cell}: largest pre-clip gradient norm {gmax:.3g} (max over every window of every run)"
            + (
                f"; clipping fired on {statistics.mean(fr):.0%} of steps on average when enabled"
                if fr
                else ""
            )
            + "."
        )
    return out


# ----- rules, as printed in report.md ------------------------------------------------------


def _doc(fn) -> str:
    """A function's docstring up to its Args/Returns sections, on one line, margins filled in."""
    text = re.split(r"\n\s*(?:Args|Returns|Raises|Example):", inspect.getdoc(fn))[0]
    text = " ".join(text.replace("``", "`").split())
    return text.format(**{k: v for k, v in globals().items() if k.isupper()})


RULE_FUNCTIONS = {
    "Solved, failed, undecided": outcome,
    "Incomplete runs": RunInfo.incomplete.fget,
    "Budget-limited vs plateaued": still_falling,
    "Solve-rate intervals": wilson,
    "Helped": improved,
    "Same slope": slopes_same,
    "Gradient profile": trimmed_profile,
    "Gradient-decay slope": task_slope,
    "Spikes": spike_ratio,
    "Largest pre-clip norm": run_max_grad,
    "Combining clauses": _combine,
    "Clipping and tanh SimpleRNN": tanh_rescue,
    "Gating per task": gating_by_task,
    "Beyond": beyond,
    **{f"Claim {n}": fn for n, fn in CLAIM_RULES.items()},
    "Verdict": verdict,
}


def rules() -> dict[str, str]:
    """Name -> the rule, as written in its function's docstring (margins filled in; a rule
    that cites another rule's function names that rule's title instead)."""
    titles = {fn.__name__: t for t, fn in RULE_FUNCTIONS.items() if "_" in fn.__name__}
    names = "|".join(map(re.escape, titles))
    cited = re.compile(rf"\(({names})\)|\b({names})\b")

    def by_title(m: re.Match) -> str:
        return f'(rule "{titles[m[1]]}")' if m[1] else f'"{titles[m[2]]}"'

    return {name: cited.sub(by_title, _doc(fn)) for name, fn in RULE_FUNCTIONS.items()}
