"""Reading a critical-length sweep back: outcomes at the probes, the bracket per cell x clip,
and the report's "Critical length" section (table per task + figure).

A critical sweep (``rnnbench sweep SPEC --critical``, :mod:`suite.study.critical`) marks its
parent run ``rnnbench.mode = critical`` and records its probes (T and config hashes per
(task, cell, clip)) in the parent's ``critical.json``. Everything this module states is read
back from the store: each probe's runs (latest FINISHED run per config hash, wherever it was
trained: resume may reuse runs of another sweep) judged by
:func:`suite.findings.analysis.outcome`, the one solved rule; the bracket is then the longest
probed T solved and the shortest probed T above it failed (under the bisection's assumption
that solving is monotone in T).

Example:
    >>> rows = critical_rows("sqlite:///mlflow.db", parent_run_id)    # doctest: +SKIP
    >>> [(r.cell, r.clip, r.longest_solved, r.shortest_failed) for r in rows]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

from suite.findings.analysis import (
    FAILED,
    SOLVED,
    UNDECIDED,
    Outcome,
    RunInfo,
    SweepData,
    cell_key,
    clip_key,
    outcome,
    run_info,
)

FIGURE = "critical_length.png"


# ----- outcomes at the probes ----------------------------------------------------------------


def _missing(config_hash: str) -> RunInfo:
    """A probe's config with no FINISHED run (never trained, crashed, killed)."""
    return RunInfo(config_hash, "?", 0, "?", "?", 0, "missing", {})


def outcomes_by_hash(client, experiment_id: str, hashes_by_probe: dict) -> dict:
    """``{probe: [config hash, ...]}`` -> ``{probe: Outcome}`` over the latest FINISHED run of
    each hash in the experiment (a hash without one counts as a run that did not finish)."""
    from tracking import HASH_TAG, TRAINING_RUNS, all_runs, latest_per_config

    wanted = {h for hs in hashes_by_probe.values() for h in hs}
    runs = [
        r
        for r in all_runs(client, experiment_id, TRAINING_RUNS)
        if r.data.tags.get(HASH_TAG) in wanted
    ]
    latest = latest_per_config(runs)
    return {
        probe: outcome([run_info(latest[h]) if h in latest else _missing(h) for h in hs])
        for probe, hs in hashes_by_probe.items()
    }


def probe_outcomes(
    tracking_uri: str, experiment: str, hashes_by_probe: dict[Hashable, list[str]]
) -> dict[Hashable, Outcome]:
    """The judge of a critical sweep's rounds: each probe's :func:`outcome` from the store."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {p: outcome([_missing(h) for h in hs]) for p, hs in hashes_by_probe.items()}
    return outcomes_by_hash(client, exp.experiment_id, hashes_by_probe)


# ----- brackets read back ----------------------------------------------------------------


@dataclass
class CriticalRow:
    """One (task, cell, clip) of a critical sweep, as the store has it now."""

    task: str
    cell: str
    clip: str
    lens: list[int]
    probes: dict[int, Outcome] = field(default_factory=dict)  # probed T -> outcome

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
        """Probed T whose outcome is undecided (time cap) or has no finished run."""
        return sorted(T for T, o in self.probes.items() if o.state not in (SOLVED, FAILED))

    @property
    def closed(self) -> bool:
        """The bracket's bounds are adjacent in the spec's lengths (nothing left to probe)."""
        lo, hi = self.longest_solved, self.shortest_failed
        i = self.lens.index(lo) if lo is not None else -1
        j = self.lens.index(hi) if hi is not None else len(self.lens)
        return j - i <= 1


def critical_rows(tracking_uri: str, parent_run_id: str) -> list[CriticalRow] | None:
    """The brackets of a critical parent run (``None``: not a critical sweep, or no round
    recorded yet), ordered by task, cell, clip."""
    import mlflow

    from tracking import CRITICAL_ARTIFACT, MODE_TAG

    client = mlflow.MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    if parent.data.tags.get(MODE_TAG) != "critical":
        return None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(parent_run_id, CRITICAL_ARTIFACT, tmp)
            record = json.loads(Path(path).read_text())
    except Exception:  # killed before its first round ended: nothing to show yet
        return None
    keyed = {
        (b["task"], b["cell"], b["clip"], p["seq_len"]): p["hashes"]
        for b in record["brackets"]
        for p in b["probes"]
    }
    got = outcomes_by_hash(client, parent.info.experiment_id, keyed)
    rows = []
    for b in record["brackets"]:
        row = CriticalRow(b["task"], b["cell"], b["clip"], list(b["lens"]))
        for p in sorted(b["probes"], key=lambda p: p["seq_len"]):
            row.probes[p["seq_len"]] = got[(b["task"], b["cell"], b["clip"], p["seq_len"])]
        rows.append(row)
    return sorted(rows, key=lambda r: (r.task, cell_key(r.cell), clip_key(r.clip)))


def row_texts(row: CriticalRow) -> dict[str, str]:
    """The table cells of a row: ``longest`` T solved, ``bracket``, ``probes``."""
    from suite.findings.analysis import wilson

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
    probes = []
    for T, o in sorted(row.probes.items()):
        if o.counted:
            a, b = wilson(o.solved, o.counted)
            text = f"T = {T}: {o.solved}/{o.counted} (CI {a:.2g}–{b:.2g})"
        else:
            text = f"T = {T}: no complete run"
        if o.incomplete:
            text += f" · {o.incomplete} time-capped"
        if o.finished < o.runs:
            text += f" · {o.runs - o.finished} missing"
        probes.append(text)
    return {"longest": longest, "bracket": bracket, "probes": "; ".join(probes)}


# ----- the report section ---------------------------------------------------------------


def critical_markdown(rows: list[CriticalRow], figure: str | None = FIGURE) -> str:
    lines = [
        "## Critical length",
        "",
        "How long a T can each cell x clip solve? This sweep bisected T over the spec's lengths "
        "per task x cell x clip (assuming solving is monotone in T), probing each T with every "
        "seed. Longest T solved: the longest probed T the configuration solves (at least half "
        "its seeds; runs cut by the training-time cap are not counted); bracket [longest solved, "
        "shortest failed): the critical length lies in it (– : none solved below the smallest "
        "length, or none failed up to the largest); open: an undecided probe (the time cap "
        "decides it) or a probe with no finished run ended the bisection there. Probes: solved "
        "seeds / counted runs at each probed T (95 % Wilson interval of the solve rate).",
        "",
    ]
    for task in sorted({r.task for r in rows}):
        at = [r for r in rows if r.task == task]
        lens = at[0].lens
        lines += [
            f"### {task} (T in {', '.join(map(str, lens))})",
            "",
            "| cell | clip | longest T solved | bracket | probes: solved / n (95 % CI) |",
            "|---|---|---|---|---|",
        ]
        for r in at:
            t = row_texts(r)
            lines.append(
                f"| {r.cell} | {r.clip} | {t['longest']} | {t['bracket']} | {t['probes']} |"
            )
        lines.append("")
    if figure:
        lines += [f"![{figure}]({figure})", ""]
    return "\n".join(lines).rstrip()


def fig_critical(rows: list[CriticalRow], path: Path) -> None:
    """Per task: the longest T solved per cell x clip (marker), the bracket up to the
    shortest T failed as an error bar; log-T axis."""
    from suite.findings.report import CELL_COLORS, LINESTYLES, _plt, _save

    plt = _plt()
    tasks = sorted({r.task for r in rows})
    width = max(len([r for r in rows if r.task == t]) for t in tasks)
    fig, axes = plt.subplots(
        1, len(tasks), figsize=(max(4.5, 0.7 * width + 1.5) * len(tasks), 4.2), squeeze=False
    )
    for ax, task in zip(axes[0], tasks, strict=True):
        at = [r for r in rows if r.task == task]
        lens = at[0].lens
        clips = sorted({r.clip for r in at}, key=clip_key)
        for x, r in enumerate(at):
            color = CELL_COLORS.get(r.cell, f"C{cell_key(r.cell) % 10}")
            style = LINESTYLES[clips.index(r.clip) % len(LINESTYLES)]
            lo, hi = r.longest_solved, r.shortest_failed
            bottom = lo if lo is not None else lens[0] / 1.6
            top = hi if hi is not None else lens[-1] * 1.6
            ax.plot([x, x], [bottom, top], style, color=color, lw=2, alpha=0.7)
            if hi is not None:  # the cap: the shortest T failed (no cap: none failed)
                ax.plot([x - 0.15, x + 0.15], [hi, hi], "-", color=color, lw=1.5)
            if lo is not None:
                marker = "^" if hi is None and not r.unresolved else "o"
                ax.plot(x, lo, marker, color=color, ms=8)
            else:
                ax.plot(x, lens[0], "v", color=color, ms=8, mfc="white")
            for T in r.unresolved:
                ax.plot(x, T, "x", color="black", ms=8, mew=2)
        ax.set_yscale("log")
        ax.set_yticks(lens, [str(T) for T in lens])
        ax.minorticks_off()
        ax.set_ylim(lens[0] / 2, lens[-1] * 2)
        ax.set_xticks(range(len(at)), [f"{r.cell}\n{r.clip}" for r in at], fontsize=7)
        ax.set_xlim(-0.6, len(at) - 0.4)
        ax.set_title(task)
        ax.set_ylabel("sequence length T")
        ax.grid(alpha=0.3, axis="y")
    _save(
        fig,
        path,
        "Critical length: longest T solved (o; ^: every length solved; open v: none solved),\n"
        "bar up to the shortest T failed (cap; none: open-ended); x: undecided probe; "
        "line style: clip",
        fontsize=9,
    )


def critical_section(data: SweepData, out_dir: Path) -> str | None:
    """The report's "Critical length" section (and its figure in ``out_dir``) when ``data``
    is a critical sweep; ``None`` otherwise."""
    rows = critical_rows(data.tracking_uri, data.parent_run_id)
    if not rows:
        return None
    fig_critical(rows, Path(out_dir) / FIGURE)
    return critical_markdown(rows, FIGURE)
