"""Reading a critical-length sweep back: the outcome at each probe, the bracket per
(task, cell, clip), and the monotonicity the bisection assumed, checked.

A critical sweep (``rnnbench sweep SPEC --critical``, :mod:`suite.study.critical`) marks its
parent run ``rnnbench.mode = critical`` and records its probes (T and config hashes per
bracket, and any end-check probes of the bracket's neighbours) in the parent's
``critical.json``. :func:`suite.findings.data.load_sweep` reads exactly those runs, so the
table here and the claims read the same runs; each probe is judged by
:func:`suite.findings.outcomes.outcome` over the seeds its hashes name (a hash without a
finished run is a missing seed). The bracket is the longest probed T solved and the shortest
probed T above it failed.

Example:
    >>> rows = critical_rows("sqlite:///mlflow.db", parent_run_id)    # doctest: +SKIP
    >>> [(r.cell, r.clip, r.longest_solved, r.shortest_failed) for r in rows]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from suite.findings.data import (
    DEFAULT_OPTIMIZER,
    SweepData,
    cell_key,
    clip_key,
    load_parent,
    missing_run,
    runs_by_hash,
)
from suite.findings.outcomes import FAILED, SOLVED, UNDECIDED, Outcome, outcome
from suite.findings.stats import wilson


def probe_outcomes(
    tracking_uri: str, experiment: str, hashes_by_probe: dict[Hashable, list[str]]
) -> dict[Hashable, Outcome]:
    """The judge of a critical sweep's rounds: each probe's :func:`outcome` over the seeds
    its config hashes name, read from the store (the latest FINISHED run of each hash)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    wanted = {h for hs in hashes_by_probe.values() for h in hs}
    got = runs_by_hash(client, exp.experiment_id, wanted) if exp is not None else {}
    return {
        p: outcome([got.get(h) or missing_run(h, seed=i) for i, h in enumerate(hs)], len(hs))
        for p, hs in hashes_by_probe.items()
    }


@dataclass
class CriticalRow:
    """One bracket (task, cell, clip, optimizer) of a critical sweep, as the store has it."""

    task: str
    cell: str
    clip: str
    lens: list[int]
    optimizer: str = DEFAULT_OPTIMIZER
    probes: dict[int, Outcome] = field(default_factory=dict)  # probed T -> outcome
    checks: dict[int, Outcome] = field(default_factory=dict)  # end-check T -> outcome

    @property
    def longest_solved(self) -> int | None:
        """The longest probed T solved (None: none)."""
        return max((T for T, o in self.probes.items() if o.state == SOLVED), default=None)

    @property
    def shortest_failed(self) -> int | None:
        """The shortest probed T above the longest solved that failed (None: none)."""
        lo = self.longest_solved
        return min(
            (T for T, o in self.probes.items() if o.state == FAILED and (lo is None or T > lo)),
            default=None,
        )

    @property
    def unresolved(self) -> list[int]:
        """Probed T whose outcome is undecided (lacking seeds could flip it) or has no
        finished run."""
        return sorted(T for T, o in self.probes.items() if o.state not in (SOLVED, FAILED))

    @property
    def closed(self) -> bool:
        """The bracket's bounds are adjacent in the spec's lengths (nothing left to probe)."""
        lo, hi = self.longest_solved, self.shortest_failed
        i = self.lens.index(lo) if lo is not None else -1
        j = self.lens.index(hi) if hi is not None else len(self.lens)
        return j - i <= 1

    @property
    def non_monotone(self) -> list[tuple[int, int]]:
        """Monotone in T: solved at T means solved at every shorter T. (T failed, T solved)
        for every failed length, probed or end-checked, shorter than a solved one."""
        every = {**self.probes, **self.checks}
        solved = [T for T, o in every.items() if o.state == SOLVED]
        return sorted(
            (Tf, Ts) for Tf, o in every.items() if o.state == FAILED for Ts in solved if Tf < Ts
        )


def rows_of(data: SweepData) -> list[CriticalRow] | None:
    """The brackets of a critical sweep (``None``: not one, or no round recorded yet), ordered
    by task, cell, clip, optimizer; each probe's outcome over the runs ``data`` holds."""
    if data.critical is None:
        return None
    by_hash = {r.config_hash: r for r in data.runs}
    rows = []
    for b in data.critical.get("brackets", []):
        row = CriticalRow(b["task"], b["cell"], b["clip"], list(b["lens"]),
                          b.get("optimizer", DEFAULT_OPTIMIZER))  # fmt: skip
        for kind, into in (("probes", row.probes), ("checks", row.checks)):
            for p in sorted(b.get(kind, []), key=lambda p: p["seq_len"]):
                hs = p["hashes"]
                runs = [by_hash.get(h) or missing_run(h, seed=i) for i, h in enumerate(hs)]
                into[p["seq_len"]] = outcome(runs, len(hs))
        rows.append(row)
    return sorted(
        rows,
        key=lambda r: (
            r.task,
            cell_key(r.cell),
            clip_key(r.clip),
            r.optimizer != DEFAULT_OPTIMIZER,
            r.optimizer,
        ),
    )


def critical_rows(tracking_uri: str, parent_run_id: str) -> list[CriticalRow] | None:
    """:func:`rows_of` the critical parent run ``parent_run_id``, read from the store."""
    return rows_of(load_parent(tracking_uri, parent_run_id))


def _probe_text(T: int, o: Outcome) -> str:
    if o.counted:
        a, b = wilson(o.solved, o.counted)
        text = f"T = {T}: {o.solved}/{o.counted} (CI {a:.2g}–{b:.2g})"
    else:
        text = f"T = {T}: no complete run"
    if o.incomplete:
        text += f" · {o.incomplete} time-capped"
    if o.missing:
        text += f" · {o.missing} missing"
    return text


def row_texts(row: CriticalRow) -> dict[str, str]:
    """The table cells of a row: ``longest`` T solved, ``bracket``, ``probes`` (and the
    end-check, ``checks``, with any non-monotone outcome flagged)."""
    lo, hi = row.longest_solved, row.shortest_failed
    longest = str(lo) if lo is not None else f"none (< {row.lens[0]})"
    if lo is not None and hi is None and lo == row.lens[-1]:
        longest += " (all solved)"
    bracket = f"[{lo if lo is not None else '–'}, {hi if hi is not None else '–'})"
    if row.unresolved:
        why = ", ".join(
            f"T = {T} {'undecided' if row.probes[T].state == UNDECIDED else 'no finished run'}"
            for T in row.unresolved
        )
        bracket += f" open: {why}"
    elif not row.closed:
        bracket += " open: not bisected to the end yet"
    probes = "; ".join(_probe_text(T, o) for T, o in sorted(row.probes.items()))
    checks = "; ".join(
        _probe_text(T, o) + f" ({o.state or 'no finished run'})"
        for T, o in sorted(row.checks.items())
    )
    bad = row.non_monotone
    if bad:
        checks += (
            ("; " if checks else "")
            + "NOT MONOTONE: "
            + ", ".join(f"failed T = {a} but solved T = {b}" for a, b in bad)
        )
    return {"longest": longest, "bracket": bracket, "probes": probes, "checks": checks}
