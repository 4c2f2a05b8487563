"""The report: render a sweep's findings as ``report.md`` + PNG figures.

This module draws and formats only: every number and sentence it prints comes from the
modules that decide them: the solve table's outcomes (:mod:`suite.findings.outcomes`), the
verdict (:mod:`suite.findings.verdict`), the claims (:mod:`suite.findings.claims`), the
critical-length brackets (:mod:`suite.findings.critical`) and the rules behind them
(:mod:`suite.findings.rules`).

Example:
    >>> from suite.findings.data import load_sweep                   # doctest: +SKIP
    >>> write_report(load_sweep("sqlite:///mlflow.db", "rnnbench"), "reports/quick")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from suite.findings.claims import check_claims
from suite.findings.critical import CriticalRow, row_texts, rows_of
from suite.findings.data import CELL_ORDER, SweepData, cell_key, clip_key
from suite.findings.outcomes import UNDECIDED, groups, outcomes
from suite.findings.rules import rules
from suite.findings.runs import mean_clip_fraction, still_falling
from suite.findings.verdict import verdict

CELL_COLORS = {
    "simple_rnn": "tab:red",
    "irnn": "tab:orange",
    "ortho_rnn": "tab:purple",
    "lstm": "tab:blue",
    "chrono_lstm": "tab:cyan",
    "gru": "tab:green",
}
CELL_MARKERS = {
    "simple_rnn": "o", "irnn": "s", "ortho_rnn": "v", "lstm": "^", "chrono_lstm": "P", "gru": "D",
}  # fmt: skip
LINESTYLES = ("-", "--", ":", "-.")
CURVE_CAP = 10.0  # learning curves: val loss / baseline drawn up to this (diverged runs go to 1e30)
NORM_CAP = 1e4  # exploding-gradient panel: pre-clip norms drawn up to this
CRITICAL_FIGURE = "critical_length.png"

_cell_key, _clip_key = cell_key, clip_key


def _ci(lo: float, hi: float) -> str:
    return f"CI {lo:.2g}–{hi:.2g}"


def _label(cell: str, clip: str, opt: str, optimizers: int) -> str:
    return f"{cell} {clip}" + (f" {opt}" if optimizers > 1 else "")


def trimmed_profile(r):
    """A run's first profile as the slope rule trims it (copy's recall positions cut,
    floored zeros NaN), for drawing."""
    from suite.findings.runs import trimmed_profile as trim

    return trim(r.profile_first, r.task, r.seq_len, r.input_length, r.task_options)


# ----- tables ------------------------------------------------------------------------------


def solve_table(data: SweepData) -> tuple[list[str], list[tuple[str, str, str]], dict]:
    """Columns task@T, rows (cell, clip, optimizer), and the cell text (see render_markdown's
    legend)."""
    g = groups(data)
    outs = outcomes(data)
    cols = sorted({(t, T) for t, T, *_ in g}, key=lambda k: (k[0], k[1]))
    rows = sorted(
        {(c, k, o) for _, _, c, k, o in g},
        key=lambda r: (_cell_key(r[0]), _clip_key(r[1]), r[2] != "adam", r[2]),
    )
    cells = {}
    for (task, T, cell, clip, opt), runs in g.items():
        o = outs[(task, T, cell, clip, opt)]
        done = [r for r in runs if r.finished]
        ci = _ci(*o.interval) if o.counted else "no complete run"
        if o.solved:
            steps = statistics.median(
                r.metrics.get("steps_to_solve", math.nan) for r in done if r.status == "solved"
            )
            text = f"{o.solved}/{o.counted} ({ci}) · {steps:.0f} steps"
        elif done:
            ratios = [r.metrics.get("val_loss_ratio", math.inf) for r in done]
            best = min(ratios)
            text = f"FAIL 0/{o.counted} ({ci}" + (
                f"; best {best:.2g})" if math.isfinite(best) else ")"
            )
        else:
            text = "no finished run"
        if o.state == UNDECIDED:
            text += " · undecided"
        div = sum(r.status == "diverged" for r in done)
        if div:
            text += f" · {div} diverged"
        falling = [still_falling(r) for r in done if r.counted]
        if falling.count(True):
            text += f" · {falling.count(True)} budget-limited"
        if falling.count(False):
            text += f" · {falling.count(False)} plateaued"
        if o.missing and done:
            text += f" · {o.missing} missing"
        capped = [r for r in done if r.incomplete]
        if capped:  # the time cap, not the step budget, ended these: not counted
            steps = statistics.median(r.metrics.get("steps", math.nan) for r in capped)
            text += f" · {len(capped)} time-capped at ~{steps:.0f} steps, not counted"
        cells[((task, T), (cell, clip, opt))] = text
    return [f"{t}@{T}" for t, T in cols], rows, {"cols": cols, "cells": cells}


def claims_markdown(claims) -> str:
    lines = [
        "## Claims",
        "",
        "The common answers to the question, each checked against this sweep's runs by the "
        'rules under "How each finding is decided": every comparison must be significant '
        "(one-sided exact test, p < 0.05, by its margin) to decide a claim, an *indicative* one "
        "decides nothing; a configuration solves a task@T when at least half the seeds it should "
        "have do, and seeds without a counted run (time-capped, crashed, never run) leave it "
        "undecided when they could flip it. Each finding says how many of its clauses the data "
        "could test and how many runs it lacks.",
        "",
        "| # | claim | finding | evidence |",
        "|---|---|---|---|",
    ]
    for c in claims:
        lines.append(f"| {c.number} | {c.text} | **{c.finding}**{_testable(c)} | {c.evidence} |")
    return "\n".join(lines)


def _testable(c) -> str:
    return f", {c.testable}" if c.label != c.finding else ""


def rules_markdown() -> str:
    lines = ["## How each finding is decided", ""]
    lines += [f"- **{name}.** {text}" for name, text in rules().items()]
    return "\n".join(lines)


# ----- figures ----------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fig_solve_rate(data: SweepData, path: Path) -> None:
    plt = _plt()
    tasks = sorted({r.task for r in data.runs})
    clips = sorted({r.clip for r in data.runs}, key=_clip_key)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks) + 2.6, 3.8), squeeze=False)
    outs = outcomes(data)
    opts = data.optimizers
    for ax, task in zip(axes[0], tasks, strict=True):
        for cell in sorted({r.cell for r in data.runs}, key=_cell_key):
            for i, (clip, opt) in enumerate((c, o) for c in clips for o in opts):
                pts = []
                for (t, T, c, k, p), o in sorted(outs.items(), key=lambda kv: kv[0][1]):
                    if (t, c, k, p) == (task, cell, clip, opt) and o.counted:
                        pts.append((T, o.rate, *o.interval))
                if pts:
                    xs, ys, lo, hi = zip(*pts, strict=True)
                    # small offsets keep overlapping lines (same solve rate) visible
                    jitter = 0.01 * (i - (len(clips) * len(opts) - 1) / 2) + 0.03 * (
                        _cell_key(cell) - (len(CELL_ORDER) - 1) / 2
                    )
                    xj = [
                        x * (1 + 0.02 * (_cell_key(cell) - (len(CELL_ORDER) - 1) / 2 + i / 4))
                        for x in xs
                    ]
                    ax.errorbar(
                        xj, [y + jitter for y in ys],
                        yerr=[[max(0.0, y - a) for y, a in zip(ys, lo, strict=True)],
                              [max(0.0, b - y) for y, b in zip(ys, hi, strict=True)]],
                        fmt=LINESTYLES[i % 4], marker=CELL_MARKERS.get(cell, "o"), ms=5, capsize=2,
                        elinewidth=0.7, color=CELL_COLORS.get(cell), label=_label(cell, clip, opt, len(opts)),
                    )  # fmt: skip
        ax.set_title(task)
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("solve rate")
        ax.set_ylim(-0.1, 1.1)
        ax.set_xscale("log")
        lengths = sorted({r.seq_len for r in data.runs if r.task == task})
        ax.set_xticks(lengths, [str(x) for x in lengths])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(
        fig,
        path,
        "Solve rate vs sequence length, counted runs, 95 % Wilson intervals (colour/marker: cell, "
        "line style: clip; offsets only for legibility)",
        fontsize=9,
    )


def _save(fig, path: Path, title: str, fontsize: int = 10) -> None:
    """Title the figure, lay it out, write it to ``path`` and free it."""
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def fig_learning_curves(data: SweepData, path: Path) -> None:
    plt = _plt()
    tasks = sorted({r.task for r in data.finished})
    fig, axes = plt.subplots(
        1, max(1, len(tasks)), figsize=(4.2 * max(1, len(tasks)) + 2.6, 3.8), squeeze=False
    )
    clips = sorted({r.clip for r in data.runs}, key=_clip_key)
    for ax, task in zip(axes[0], tasks, strict=False):
        lengths = sorted({r.seq_len for r in data.finished if r.task == task})
        T = lengths[len(lengths) // 2]  # a representative (middle) length
        for r in sorted(data.finished, key=lambda r: (_cell_key(r.cell), r.clip)):
            if r.task != task or r.seq_len != T or r.seed != min(x.seed for x in data.finished):
                continue
            # a diverging run's loss runs off to 1e30: draw it up to the cap and mark its end
            pts = [
                (s, min(v, CURVE_CAP)) if math.isfinite(v) else (s, CURVE_CAP)
                for s, v in r.curves.get("val_loss_ratio", [])
                if not math.isfinite(v) or v > 0
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(
                    xs, ys, LINESTYLES[clips.index(r.clip) % 4], color=CELL_COLORS.get(r.cell),
                    label=_label(r.cell, r.clip, r.optimizer, len(data.optimizers)),
                )  # fmt: skip
                if r.status == "diverged":
                    ax.plot(xs[-1], ys[-1], "x", color=CELL_COLORS.get(r.cell), ms=8, mew=2)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(top=CURVE_CAP * 1.5)
        ax.set_title(f"{task}@{T}")
        ax.set_xlabel("train step")
        ax.set_ylabel("val loss / baseline")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(
        fig,
        path,
        f"Learning curves (first seed); 1.0 = the trivial baseline; x = diverged (drawn at {CURVE_CAP:g})",
        fontsize=10,
    )


def fig_gradient_decay(data: SweepData, path: Path) -> None:
    """Top row: ‖∂L/∂x_t‖ vs distance per cell (vanishing gradients). Bottom row: tanh
    SimpleRNN per clip setting (does clipping change the decay, or only rescale the gradient?)."""
    import numpy as np

    plt = _plt()
    tasks = sorted({r.task for r in data.finished}) or ["?"]
    clips = sorted({r.clip for r in data.finished}, key=_clip_key)
    fig, axes = plt.subplots(
        2, len(tasks), figsize=(4.2 * len(tasks) + 2.6, 7.0), squeeze=False, sharex="col"
    )

    def median_profile(runs):
        # copy's recall positions cut off, floored zeros as gaps (tasks.gradients.trimmed_profile)
        profs = [trimmed_profile(r) for r in runs if r.profile_first]
        raw = [np.asarray(r.profile_first, dtype=float) for r in runs if r.profile_first]
        profs = [  # a run that blew up by then: skip; so do profiles of another length
            q for q, w in zip(profs, raw, strict=True) if np.all(np.isfinite(w)) and q[-1] > 0
        ]
        profs = [q for q in profs if len(q) == len(profs[0])] if profs else []
        if not profs:
            return None
        with np.errstate(all="ignore"):
            return np.nanmedian(np.stack([q / q[-1] for q in profs]), axis=0)

    for col, task in enumerate(tasks):
        at = [r for r in data.finished if r.task == task]
        T = max((r.seq_len for r in at), default=0)
        at = [r for r in at if r.seq_len == T]
        top, bottom = axes[0][col], axes[1][col]
        for cell in sorted({r.cell for r in at}, key=_cell_key):
            p = median_profile([r for r in at if r.cell == cell])
            if p is not None:
                dist = np.arange(len(p))[::-1]
                top.plot(dist, np.maximum(p, 1e-30), color=CELL_COLORS.get(cell), label=cell)
        for i, clip in enumerate(clips):
            p = median_profile([r for r in at if r.cell == "simple_rnn" and r.clip == clip])
            if p is not None:
                dist = np.arange(len(p))[::-1]
                bottom.plot(
                    dist, np.maximum(p, 1e-30), LINESTYLES[i % 4], color=CELL_COLORS["simple_rnn"],
                    alpha=1.0 - 0.15 * i, label=f"simple_rnn {clip}",
                )  # fmt: skip
        top.set_title(f"{task}@{T}: by cell")
        bottom.set_title(f"{task}@{T}: tanh SimpleRNN by clip")
        bottom.set_xlabel(
            "distance from the loss (steps)" if task != "copy" else "distance from the delimiter"
        )
        for ax in (top, bottom):
            ax.set_yscale("log")
            ax.set_ylabel("‖∂L/∂x_t‖ / value at distance 0")
            ax.grid(alpha=0.3)
    for row in axes:
        if any(ax.get_legend_handles_labels()[0] for ax in row):
            row[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(
        fig,
        path,
        "Gradient reaching step t at the first evaluation (median over runs, longest T per task; "
        "copy: recall positions left out)",
        fontsize=10,
    )


def fig_exploding(data: SweepData, path: Path) -> None:
    plt = _plt()
    fin = data.finished
    clips = sorted({r.clip for r in fin}, key=_clip_key)
    cells = sorted({r.cell for r in fin}, key=_cell_key)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / max(1, len(cells))
    for j, cell in enumerate(cells):
        maxima = []
        fracs = []
        for clip in clips:
            rs = [r for r in fin if r.cell == cell and r.clip == clip]
            vals = [
                min(v, NORM_CAP)
                for r in rs
                for _, v in r.curves.get("grad_norm_max", [])
                if math.isfinite(v) and v > 0
            ]
            maxima.append(vals or [math.nan])
            fracs.append(
                statistics.mean(0.0 if math.isnan(f := mean_clip_fraction(r)) else f for r in rs)
                if rs
                else 0.0
            )
        pos = [i + (j - (len(cells) - 1) / 2) * width for i in range(len(clips))]
        bp = a1.boxplot(
            maxima, positions=pos, widths=width * 0.9, patch_artist=True, whis=(5, 95),
            showfliers=False,
        )  # fmt: skip
        for box in bp["boxes"]:
            box.set_facecolor(CELL_COLORS.get(cell, "grey"))
            box.set_alpha(0.6)
        a2.bar(pos, fracs, width=width * 0.9, color=CELL_COLORS.get(cell), label=cell)
    for ax in (a1, a2):
        ax.set_xticks(range(len(clips)))
        ax.set_xticklabels([c.replace("+", "\n+") for c in clips], fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    a1.set_yscale("log")
    a1.set_ylabel(
        f"pre-clip gradient norm (max per eval window,\ncapped at {NORM_CAP:g}; whiskers 5-95 %)"
    )
    a2.set_ylabel("share of steps where clipping fired")
    a2.set_ylim(0, 1.05)
    a2.legend(fontsize=8)
    _save(
        fig, path, "Exploding gradients: pre-clip norms and how often clipping fired", fontsize=10
    )


# ----- the critical-length section ----------------------------------------------------------


def critical_markdown(rows: list[CriticalRow], figure: str | None = CRITICAL_FIGURE) -> str:
    nopt = len({r.optimizer for r in rows})
    checks = any(r.checks for r in rows)
    lines = [
        "## Critical length",
        "",
        "How long a T can each cell x clip solve? This sweep bisected T over the spec's lengths "
        "per task x cell x clip (assuming solving is monotone in T), probing each T with every "
        "seed. Longest T solved: the longest probed T the configuration solves (at least half "
        "the seeds it should have; seeds cut by the training-time cap, crashed or never run "
        "count neither way); bracket [longest solved, shortest failed): the critical length "
        "lies in it (– : none solved below the smallest length, or none failed up to the "
        "largest); open: an undecided probe (its lacking seeds decide it) or a probe with no "
        "finished run ended the bisection there. Probes: solved seeds / counted runs at each "
        "probed T (95 % Wilson interval of the solve rate)."
        + (
            " End check: the lengths next to the bracket, probed again once bisection ended; "
            "NOT MONOTONE flags a failed T shorter than a solved one."
            if checks
            else ""
        ),
        "",
    ]
    for task in sorted({r.task for r in rows}):
        at = [r for r in rows if r.task == task]
        lens = at[0].lens
        head = "| cell | clip |" + (" optimizer |" if nopt > 1 else "")
        head += " longest T solved | bracket | probes: solved / n (95 % CI) |"
        head += " end check |" if checks else ""
        lines += [f"### {task} (T in {', '.join(map(str, lens))})", "", head,
                  "|" + "---|" * (head.count("|") - 1)]  # fmt: skip
        for r in at:
            t = row_texts(r)
            line = f"| {r.cell} | {r.clip} |" + (f" {r.optimizer} |" if nopt > 1 else "")
            line += f" {t['longest']} | {t['bracket']} | {t['probes']} |"
            line += f" {t['checks'] or '—'} |" if checks else ""
            lines.append(line)
        lines.append("")
    if figure:
        lines += [f"![{figure}]({figure})", ""]
    return "\n".join(lines).rstrip()


def fig_critical(rows: list[CriticalRow], path: Path) -> None:
    """Per task: the longest T solved per cell x clip (marker), the bracket up to the
    shortest T failed as an error bar; log-T axis."""
    plt = _plt()
    tasks = sorted({r.task for r in rows})
    nopt = len({r.optimizer for r in rows})
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
            for T_fail, _ in r.non_monotone:
                ax.plot(x, T_fail, "*", color="black", ms=10)
        ax.set_yscale("log")
        ax.set_yticks(lens, [str(T) for T in lens])
        ax.minorticks_off()
        ax.set_ylim(lens[0] / 2, lens[-1] * 2)
        ax.set_xticks(
            range(len(at)),
            [f"{r.cell}\n{r.clip}" + (f"\n{r.optimizer}" if nopt > 1 else "") for r in at],
            fontsize=7,
        )
        ax.set_xlim(-0.6, len(at) - 0.4)
        ax.set_title(task)
        ax.set_ylabel("sequence length T")
        ax.grid(alpha=0.3, axis="y")
    _save(
        fig,
        path,
        "Critical length: longest T solved (o; ^: every length solved; open v: none solved),\n"
        "bar up to the shortest T failed (cap; none: open-ended); x: undecided probe; "
        "*: not monotone; line style: clip",
        fontsize=9,
    )


def critical_section(data: SweepData, out_dir: Path) -> str | None:
    """The report's "Critical length" section (and its figure in ``out_dir``) when ``data``
    is a critical sweep; ``None`` otherwise."""
    rows = rows_of(data)
    if not rows:
        return None
    fig_critical(rows, Path(out_dir) / CRITICAL_FIGURE)
    return critical_markdown(rows, CRITICAL_FIGURE)


FIGURES = {
    "solve_rate.png": fig_solve_rate,
    "learning_curves.png": fig_learning_curves,
    "gradient_decay.png": fig_gradient_decay,
    "exploding_gradients.png": fig_exploding,
}


# ----- markdown ---------------------------------------------------------------------------


def render_markdown(
    data: SweepData, figures: list[str], extra_sections: list[str] | None = None
) -> str:
    cols, rows, t = solve_table(data)
    nopt = len(data.optimizers)
    lines = [
        f"# rnnbench report: sweep `{data.name}`",
        "",
        f"Parent run `{data.parent_run_id}` at `{data.tracking_uri}`: {len(data.runs)} configurations, "
        f"{len(data.finished)} finished, "
        f"{sum(r.status == 'solved' for r in data.runs)} solved, "
        f"{sum(r.status == 'diverged' for r in data.runs)} diverged, "
        f"{sum(r.status in ('failed', 'killed', 'running') for r in data.runs)} failed/killed/unfinished"
        + (
            f", {n_missing} never run"
            if (n_missing := sum(r.status == "missing" for r in data.runs))
            else ""
        )
        + ".",
        "",
        "## Verdict",
        "",
        *[f"- {s}" for s in verdict(data)],
        "",
        claims_markdown(check_claims(data)),
        "",
        "## Solve table",
        "",
        "Each cell: solved seeds / counted runs (95 % Wilson interval of the solve rate) · median "
        "steps to solve; FAIL shows the best final val loss / baseline (1.0 = no better than the "
        "trivial baseline); budget-limited: a FAIL still improving over its last evaluations, "
        "plateaued: one that was not; time-capped: runs the training-time cap ended before the "
        "step budget, with the median steps they got; missing: seeds the spec lists with no "
        "finished run (crashed, killed, never run). Neither is counted; undecided: the seeds "
        "they lack decide the outcome.",
        "",
        "| cell | clip | " + ("optimizer | " if nopt > 1 else "") + " | ".join(cols) + " |",
        "|---|---|" + "---|" * (len(cols) + (nopt > 1)),
    ]
    for cell, clip, opt in rows:
        vals = [t["cells"].get((col, (cell, clip, opt)), "—") for col in t["cols"]]
        lead = f"| {cell} | {clip} | " + (f"{opt} | " if nopt > 1 else "")
        lines.append(lead + " | ".join(vals) + " |")
    lines += [
        "",
        "Baselines (loss of the best input-independent predictor): "
        + ", ".join(f"{task}@{T} {b:.4g}" for (task, T), b in sorted(data.baselines.items()))
        + ".",
        "",
    ]
    lines += [rules_markdown(), ""]
    for extra in extra_sections or []:
        lines += [extra, ""]
    titles = {
        "solve_rate.png": "Solve rate vs sequence length",
        "learning_curves.png": "Learning curves",
        "gradient_decay.png": "Vanishing gradients: ‖∂L/∂x_t‖ vs distance",
        "exploding_gradients.png": "Exploding gradients: pre-clip norms and clip fraction",
    }
    for f in figures:
        lines += [f"## {titles.get(f, f)}", "", f"![{f}]({f})", ""]
    return "\n".join(lines)


def write_report(data: SweepData, out_dir: str | Path, log_to_mlflow: bool = True) -> Path:
    """Write ``report.md`` and the figures into ``out_dir``; attach them to the parent run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in FIGURES.items():
        fn(data, out / name)
        written.append(name)
    extra = []
    critical = critical_section(data, out)
    if critical:
        extra.append(critical)
    onnx = onnx_section(data)
    if onnx:
        extra.append(onnx)
    md = render_markdown(data, written, extra)
    (out / "report.md").write_text(md)
    if log_to_mlflow:
        import mlflow

        client = mlflow.MlflowClient(data.tracking_uri)
        client.log_artifacts(data.parent_run_id, str(out), "report")
    return out / "report.md"


def onnx_section(data: SweepData) -> str | None:
    """The ONNX exports table (latest export per task@T), when exports exist."""
    import mlflow

    from tracking import KIND_TAG, WINNER_STATUS_TAG, all_runs

    client = mlflow.MlflowClient(data.tracking_uri)
    parent = client.get_run(data.parent_run_id)
    exports = all_runs(client, parent.info.experiment_id, f"tags.`{KIND_TAG}` = 'export'")
    if not exports:
        return None
    latest: dict[tuple, object] = {}
    for r in sorted(exports, key=lambda r: r.info.start_time):
        latest[(r.data.params.get("task"), int(r.data.params.get("seq_len", 0)))] = r
    lines = [
        "## ONNX exports",
        "",
        "Winner per task@T exported with native recurrent ops and checked in onnxruntime "
        "(`rnnbench export`); speedup = Keras p50 / onnxruntime p50 latency in the same process.",
        "",
        "| task@T | cell | clip | winner | ops | parity (max abs diff) | ORT/Keras batch 1 | ORT/Keras batch 64 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, T), r in sorted(latest.items()):
        m, p = r.data.metrics, r.data.params
        status = r.data.tags.get(WINNER_STATUS_TAG, "?")
        lines.append(
            f"| {task}@{T} | {p.get('cell')} | {p.get('clip')} | {status if status == 'solved' else status.upper()} | "
            f"{p.get('ops', '?')} | {m.get('parity_max_abs_diff', math.nan):.1e} | "
            f"{m.get('speedup_b1', math.nan):.1f}x | {m.get('speedup_b64', math.nan):.1f}x |"
        )
    return "\n".join(lines)
