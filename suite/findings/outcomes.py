"""The outcome of each configuration (task, T, cell, treatment, optimizer) over its seeds:
solved, failed, "cannot", undecided; and what the outcomes say about lengths: the longest T
solved (a critical length, with its bracket), a setting's state at a T it did not run (by
monotonicity in T), and configurations whose outcomes are not monotone in T.

Example:
    >>> o = outcome([RunInfo("a", "adding", 10, "lstm", "none", 0, "solved", {}),
    ...              RunInfo("b", "adding", 10, "lstm", "none", 1, "failed", {}),
    ...              RunInfo("c", "adding", 10, "lstm", "none", 2, "killed", {})])
    >>> o.state, o.solved, o.missing
    ('undecided', 1, 2)
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from suite.findings.data import DEFAULT_OPTIMIZER, RunInfo, SweepData, cell_key, clip_key
from suite.findings.runs import conclusive_failure
from suite.findings.stats import wilson

SOLVED, FAILED, UNDECIDED = "solved", "failed", "undecided"  # a configuration's state


def groups(data: SweepData) -> dict[tuple, list[RunInfo]]:
    """(task, T, cell, treatment, optimizer) -> runs over seeds (computed once per runs list)."""
    stamp = (id(data.runs), len(data.runs))
    cache = data.__dict__.get("_groups")
    if cache is None or cache[0] != stamp:
        out: dict[tuple, list[RunInfo]] = defaultdict(list)
        for r in data.runs:
            out[r.key].append(r)
        cache = (stamp, dict(out))
        data.__dict__["_groups"] = cache
    return cache[1]


@dataclass(frozen=True)
class Outcome:
    """A configuration's result over the seeds it should have."""

    state: str | None  # solved | failed | undecided | None (no finished run)
    solved: int  # seeds solved
    counted: int  # finished, complete runs
    incomplete: int  # finished runs cut by the time cap
    missing: int  # seeds without a finished run (crashed, killed, running, never run)
    expected: int  # the seeds the configuration should have
    conclusive: int = 0  # counted failures that diverged or plateaued (runs.conclusive_failure)

    @property
    def failed(self) -> int:
        return self.counted - self.solved

    @property
    def lacking(self) -> int:
        """Seeds without a counted run (time-capped or missing)."""
        return self.incomplete + self.missing

    @property
    def finished(self) -> int:
        return self.counted + self.incomplete

    @property
    def rate(self) -> float:
        return self.solved / self.counted if self.counted else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.solved, self.counted)

    @property
    def cannot(self) -> bool:
        """Failed, and would still fail if every inconclusive failure had solved too."""
        open_ = self.lacking + (self.failed - self.conclusive)
        return self.state == FAILED and 2 * (self.solved + open_) < self.expected

    @property
    def budget_limited(self) -> int:
        """Counted failures that are not conclusive (still improving, or too short to tell)."""
        return self.failed - self.conclusive


def outcome(runs: list[RunInfo], expected: int | None = None) -> Outcome:
    """A configuration (task, T, cell, treatment, optimizer) solves task@T when at least half
    the seeds it should have (the spec's seeds) solve it.

    Over n expected seeds with s solved and u lacking (time-capped, crashed, killed, never
    run): *solved* when 2s >= n (even if every lacking seed had failed), *failed* when
    2(s + u) < n (even if every lacking seed had solved), otherwise *undecided* (the lacking
    seeds decide it, so no comparison uses it). A failed configuration *cannot* solve task@T
    when it would still fail if every failure that is not conclusive (budget-limited, or too
    short to tell: rule "Conclusive failures") had solved as well.
    """
    seeds = {r.seed for r in runs}
    n = max(expected or 0, len(seeds))
    counted = [r for r in runs if r.counted]
    s = sum(r.status == "solved" for r in counted)
    i = sum(r.finished and r.incomplete for r in runs)
    missing = max(0, n - len(counted) - i)
    u = i + missing
    state = None
    if counted or i:
        state = SOLVED if 2 * s >= n else FAILED if 2 * (s + u) < n else UNDECIDED
    conclusive = sum(conclusive_failure(r) for r in counted)
    return Outcome(state, s, len(counted), i, missing, n, conclusive)


def outcomes(data: SweepData) -> dict[tuple, Outcome]:
    """Every configuration's :func:`outcome` (computed once per sweep and runs list)."""
    stamp = (id(data.runs), len(data.runs))
    cache = data.__dict__.get("_outcomes")
    if cache is None or cache[0] != stamp:
        n = data.expected_seeds()
        cache = (stamp, {k: outcome(v, n) for k, v in groups(data).items()})
        data.__dict__["_outcomes"] = cache
    return cache[1]


def lacking_runs(data: SweepData, keep=lambda key: True) -> tuple[int, int]:
    """(time-capped, missing) seeds over the configurations ``keep(key)`` accepts."""
    outs = [o for k, o in outcomes(data).items() if keep(k)]
    return sum(o.incomplete for o in outs), sum(o.missing for o in outs)


def lacks_text(capped: int, missing: int) -> str:
    if not capped and not missing:
        return "lacks no run"
    parts = [f"{capped} time-capped"] * bool(capped) + [f"{missing} missing"] * bool(missing)
    return f"lacks {capped + missing} run(s): {', '.join(parts)}"


# ----- lengths ---------------------------------------------------------------------------


def settings(data: SweepData, task: str, cells) -> list[tuple[str, str, str]]:
    """(cell, treatment, optimizer) that ran on ``task``, for the given cells."""
    found = {(c, k, o) for (t, _, c, k, o) in groups(data) if t == task and c in cells}
    return sorted(
        found, key=lambda s: (cell_key(s[0]), clip_key(s[1]), s[2] != DEFAULT_OPTIMIZER, s[2])
    )


@dataclass(frozen=True)
class AtLength:
    """What a setting says about one T: its own outcome there, or one inferred by
    monotonicity from another T (``source``)."""

    state: str | None  # solved | cannot | failed (not conclusively) | undecided | None (no result)
    outcome: Outcome | None = None  # the outcome read (at ``source``)
    source: int | None = None  # the T it was read at


def at_length(outs: dict, task: str, cell: str, clip: str, opt: str, T: int) -> AtLength:
    """A setting's state at T. Its own outcome there when solved or failed; else, assuming
    solving is monotone in T (what a critical sweep bisects on), *solved* when it solved a
    longer T and *cannot* when it cannot solve a shorter one; otherwise its undecided or
    inconclusive outcome there, or no result."""
    own = outs.get((task, T, cell, clip, opt))
    if own is not None and own.state == SOLVED:
        return AtLength(SOLVED, own, T)
    if own is not None and own.cannot:
        return AtLength("cannot", own, T)
    mine = {
        T2: o for (t, T2, c, k, p), o in outs.items() if (t, c, k, p) == (task, cell, clip, opt)
    }
    longer = [T2 for T2, o in mine.items() if T2 > T and o.state == SOLVED]
    if longer:
        T2 = min(longer)
        return AtLength(SOLVED, mine[T2], T2)
    shorter = [T2 for T2, o in mine.items() if T2 < T and o.cannot]
    if shorter:
        T2 = max(shorter)
        return AtLength("cannot", mine[T2], T2)
    if own is not None and own.state == FAILED:
        return AtLength(FAILED, own, T)
    if own is not None:
        return AtLength(UNDECIDED if own.state else None, own, T)
    return AtLength(None)


def longest_solved(data: SweepData) -> dict[tuple, int | None]:
    """(task, cell, treatment, optimizer) -> longest T the configuration solved (None: none)."""
    out: dict[tuple, int | None] = {}
    for (task, T, cell, clip, opt), o in outcomes(data).items():
        key = (task, cell, clip, opt)
        out.setdefault(key, None)
        if o.state == SOLVED:
            out[key] = max(out[key] or 0, T)
    return out


def bracket(data: SweepData, task: str, cell: str, clip: str, opt: str) -> tuple:
    """The critical length of a setting: (longest T solved, shortest longer T failed);
    ``None`` for a bound it does not have."""
    outs = outcomes(data)
    mine = {T: o for (t, T, c, k, p), o in outs.items() if (t, c, k, p) == (task, cell, clip, opt)}
    lo = max((T for T, o in mine.items() if o.state == SOLVED), default=None)
    hi = min(
        (T for T, o in mine.items() if o.state == FAILED and (lo is None or T > lo)), default=None
    )
    return lo, hi


def longest(data: SweepData, task: str, cells) -> int:
    """Longest T of ``task`` solved by any of ``cells`` with its best setting; 0: none."""
    return max(
        (
            T or 0
            for (t, cell, _, _), T in longest_solved(data).items()
            if t == task and cell in cells
        ),
        default=0,
    )


def solved_set(data: SweepData, cell: str, clip: str, opt: str | None = None) -> set[tuple]:
    """task@T (as tuples) that ``cell``/``clip`` (any optimizer unless given) solved."""
    return {
        (t, T)
        for (t, T, c, k, p), o in outcomes(data).items()
        if (c, k) == (cell, clip) and (opt is None or p == opt) and o.state == SOLVED
    }


def failed_set(data: SweepData, cell: str, clip: str, opt: str | None = None) -> set[tuple]:
    """task@T that ``cell``/``clip`` failed whatever its lacking seeds would have done."""
    return {
        (t, T)
        for (t, T, c, k, p), o in outcomes(data).items()
        if (c, k) == (cell, clip) and (opt is None or p == opt) and o.state == FAILED
    }


def solvable(data: SweepData) -> set[tuple]:
    """task@T that at least one configuration solved."""
    return {(t, T) for (t, T, _, _, _), o in outcomes(data).items() if o.state == SOLVED}


def non_monotone(data: SweepData) -> list[tuple]:
    """Solving is assumed monotone in T (solved at T: solved at every shorter T); a setting
    breaks it when it solved some T and failed a shorter one; the verdict names each break
    (task, cell, treatment, optimizer, the shortest T failed below the T solved)."""
    out = []
    outs = outcomes(data)
    for task, cell, clip, opt in sorted({(t, c, k, p) for (t, _, c, k, p) in outs}):
        mine = {
            T: o.state
            for (t, T, c, k, p), o in outs.items()
            if (t, c, k, p) == (task, cell, clip, opt)
        }
        for T_s in sorted(T for T, s in mine.items() if s == SOLVED):
            below = [T for T, s in mine.items() if T < T_s and s == FAILED]
            if below:
                out.append((task, cell, clip, opt, min(below), T_s))
                break
    return out


def fmt_T(T: int | None) -> str:
    return f"T = {T}" if T else "no length"


def at_text(keys) -> str:
    return ", ".join(f"{t}@{T}" for t, T in sorted(keys))


def setting_text(clip: str, opt: str, optimizers: int) -> str:
    """A setting as the evidence names it: the optimizer only when the sweep has several."""
    return f"{clip} · {opt}" if optimizers > 1 else clip
