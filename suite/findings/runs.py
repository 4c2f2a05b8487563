"""What one run's curves and gradient profiles say: its decay slope, its largest gradient,
whether it spiked, how often clipping fired, and whether a failure was still improving.

Example:
    >>> r = RunInfo("r", "adding", 10, "lstm", "none", 0, "unsolved", {},
    ...             curves={"val_loss_ratio": [(100, 0.9), (200, 0.9), (300, 0.9), (400, 0.9)]})
    >>> still_falling(r), conclusive_failure(r)
    (False, True)
"""

from __future__ import annotations

import math
import statistics

from suite.findings.data import RunInfo

SPIKE_RATIO = 10.0  # a run "spikes": max window max >= 10x its median window mean
FALL_EVALS = 3  # budget-limited: the last 3 evaluations ...
FALL_MARGIN = 0.05  # ... improved the best val-loss ratio by >= 5 % (else plateaued)


def _task(task: str, seq_len: int, options: dict | None):
    from tasks import get_task

    try:
        return get_task(task, seq_len=seq_len, **(options or {}))
    except (ValueError, TypeError):
        return None


def trimmed_profile(
    profile, task: str, seq_len: int, input_length: int | None = None, options: dict | None = None
):
    """A logged profile as the slope rule trims it (``tasks.gradients.trimmed_profile``), for a
    task named by its name, T and logged options; a profile of another length than the task
    reads (``input_length``) is left untrimmed."""
    import numpy as np

    from tasks.gradients import trimmed_profile as trim

    t = _task(task, seq_len, options)
    if t is None or (input_length and input_length != t.length):
        return trim(profile, None)
    return trim(profile, t) if len(np.asarray(profile)) == t.length else trim(profile, None)


def task_slope(
    profile, task: str, seq_len: int, input_length: int | None = None, options: dict | None = None
) -> float:
    """``tasks.gradients.decay_slope`` of a logged profile (the rule training logs as
    ``grad_decay``), for a task named by its name, T and logged options."""
    from tasks.gradients import decay_slope

    t = _task(task, seq_len, options)
    if t is not None and input_length and input_length != t.length:
        t = None
    return decay_slope(profile, t)


def run_slope(r: RunInfo) -> float:
    """The run's gradient-decay slope at its first evaluation (:func:`task_slope`)."""
    if not r.profile_first:
        return math.nan
    return task_slope(r.profile_first, r.task, r.seq_len, r.input_length, r.task_options)


def values(r: RunInfo, metric: str) -> list[float]:
    return [v for _, v in sorted(r.curves.get(metric) or []) if math.isfinite(v)]


def run_max_grad(r: RunInfo) -> float:
    """The run's largest pre-clip gradient norm: the max of grad_norm_max over all windows."""
    vals = values(r, "grad_norm_max")
    if vals:
        return max(vals)
    v = r.metrics.get("grad_norm_max", math.nan)
    return v if math.isfinite(v) else math.nan


def spike_ratio(r: RunInfo) -> float:
    """Per-run spike ratio: the largest window max over the median window mean of the same
    run, the first evaluation window excluded (it holds the untrained model's start); needs at
    least 2 windows. A run spikes when its ratio is >= {SPIKE_RATIO:g}."""
    maxima, means = values(r, "grad_norm_max")[1:], values(r, "grad_norm")[1:]
    means = [v for v in means if v > 0]
    if not maxima or not means:
        return math.nan
    return max(maxima) / statistics.median(means)


def mean_clip_fraction(r: RunInfo) -> float:
    """Share of steps where clipping fired, averaged over the run's windows (nan: none logged)."""
    vals = values(r, "clip_fraction")
    return statistics.mean(vals) if vals else math.nan


def still_falling(r: RunInfo) -> bool | None:
    """A FAIL (unsolved, counted run) is *budget-limited* when its best val-loss ratio over the
    last {FALL_EVALS} evaluations is at least {FALL_MARGIN:.0%} below its best before them
    (still improving when the budget ran out), else *plateaued*; runs with fewer than
    {FALL_EVALS} + 1 evaluations are neither.
    """
    vals = values(r, "val_loss_ratio")
    if r.status != "unsolved" or len(vals) < FALL_EVALS + 1:
        return None
    return min(vals[-FALL_EVALS:]) <= (1 - FALL_MARGIN) * min(vals[:-FALL_EVALS])


def conclusive_failure(r: RunInfo) -> bool:
    """A counted failure says the configuration *cannot* solve its task@T (rather than that
    it ran out of budget) when it diverged, or when it plateaued (still_falling says False);
    a budget-limited failure, or one with too few evaluations to tell, is not conclusive."""
    if not r.counted or r.status == "solved":
        return False
    return r.status == "diverged" or still_falling(r) is False
