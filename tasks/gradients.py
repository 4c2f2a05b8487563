"""What a task's gradient profile ‖∂L/∂x_t‖ says about reach: the one slope rule.

Training logs the ``grad_decay`` metric with :func:`decay_slope` and the report fits its
slopes with the same function, so the MLflow UI and the report show one number under one
name. It lives with the tasks because only the task knows which input steps its loss reads
directly (copy's recall positions), and both ``suite.core`` and ``suite.findings`` may import
``tasks``.

Example:
    >>> from tasks import get_task
    >>> task = get_task("adding", seq_len=3)
    >>> round(decay_slope([1e-2, 1e-1, 1.0], task), 6)
    -100.0
"""

from __future__ import annotations

import math

import numpy as np

PROFILE_FLOOR = 1e-30  # ‖∂L/∂x_t‖ at or below this (a floored exact zero) is left out of slopes


def trimmed_profile(profile, task) -> np.ndarray:
    """The ‖∂L/∂x_t‖ profile used by slopes and figures: for copy, the recall positions
    (which the loss reads directly) are cut off, so distance 0 is the last input step before
    them; norms at or below {PROFILE_FLOOR:g} (floored exact zeros) become NaN, to be left
    out rather than drawn or fitted as log10 = -30.
    """
    norms = np.asarray(profile, dtype=np.float64)
    recall = getattr(task, "recall_slice", None)
    if recall is not None and len(norms) == task.length:
        norms = norms[: recall.start]
    with np.errstate(invalid="ignore"):
        return np.where(norms > PROFILE_FLOOR, norms, np.nan)


def decay_slope(profile, task) -> float:
    """Gradient-decay slope: log10 ‖∂L/∂x_t‖ per 100 steps of distance, a least-squares fit
    over the profile as trimmed_profile leaves it (copy's recall positions and floored zeros
    left out); a profile with a non-finite norm (a run blowing up) or fewer than 2 finite
    positive norms: no slope."""
    raw = np.asarray(profile, dtype=np.float64)
    if raw.size and not np.all(np.isfinite(raw)):
        return math.nan
    norms = trimmed_profile(raw, task)
    distance = np.arange(len(norms))[::-1].astype(np.float64)  # last kept step: distance 0
    keep = np.isfinite(norms)
    if keep.sum() < 2:
        return math.nan
    return float(100.0 * np.polyfit(distance[keep], np.log10(norms[keep]), 1)[0])
