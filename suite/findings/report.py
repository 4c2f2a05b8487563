"""The report: render a sweep's findings as ``report.md`` + PNG figures.

This module draws and formats only: every number and sentence it prints (solve table entries,
verdict, claims, the rules behind them) comes from :mod:`suite.findings.analysis`.

Example:
    >>> data = load_sweep("sqlite:///mlflow.db", "rnnbench")        # doctest: +SKIP
    >>> write_report(data, "reports/quick")                          # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from suite.findings.analysis import (  # noqa: F401  (re-exported: the report's API)
    CELL_ORDER,
    RunInfo,
    SweepData,
    check_claims,
    clip_key,
    groups,
    load_sweep,
    longest_solved,
    mean_clip_fraction,
    outcome,
    rules,
    solved_set,
    still_falling,
    trimmed_profile,
    verdict,
)

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


def _cell_key(cell: str) -> int:
    return CELL_ORDER.index(cell) if cell in CELL_ORDER else len(CELL_ORDER)


_clip_key = clip_key


def _ci(lo: float, hi: float) -> str:
    return f"CI {lo:.2g}–{hi:.2g}"


def solve_table(data: SweepData) -> tuple[list[str], list[tuple[str, str]], dict]:
    """Columns task@T, rows (cell, clip), and the cell text (see render_markdown's legend)."""
    g = groups(data)
    cols = sorted({(t, T) for t, T, _, _ in g}, key=lambda k: (k[0], k[1]))
    rows = sorted({(c, k) for _, _, c, k in g}, key=lambda ck: (_cell_key(ck[0]), _clip_key(ck[1])))
    cells = {}
    for (task, T, cell, clip), runs in g.items():
        o = outcome(runs)
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
        if o.state == "undecided":
            text += " · undecided"
        div = sum(r.status == "diverged" for r in done)
        if div:
            text += f" · {div} diverged"
        falling = [still_falling(r) for r in done if r.counted]
        if falling.count(True):
            text += f" · {falling.count(True)} budget-limited"
        if falling.count(False):
            text += f" · {falling.count(False)} plateaued"
        gaps = len(runs) - len(done)
        if gaps and done:
            text += f" · {gaps} missing"
        capped = [r for r in done if r.incomplete]
        if capped:  # the time cap, not the step budget, ended these: not counted
            steps = statistics.median(r.metrics.get("steps", math.nan) for r in capped)
            text += f" · {len(capped)} time-capped at ~{steps:.0f} steps, not counted"
        cells[((task, T), (cell, clip))] = text
    return [f"{t}@{T}" for t, T in cols], rows, {"cols": cols, "cells": cells}


def claims_markdown(claims) -> str:
    lines = [
        "## Claims",
        "",
        "The common answers to the question, each checked against this sweep's runs by the "
        'rules under "How each finding is decided" (a configuration solves a task@T when at '
        "least half its seeds do; runs cut by the training-time cap are not counted).",
        "",
        "| # | claim | finding | evidence |",
        "|---|---|---|---|",
    ]
    for c in claims:
        lines.append(f"| {c.number} | {c.text} | **{c.finding}** | {c.evidence} |")
    return "\n".join(lines)


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
    g = groups(data)
    for ax, task in zip(axes[0], tasks, strict=True):
        for cell in sorted({r.cell for r in data.runs}, key=_cell_key):
            for i, clip in enumerate(clips):
                pts = []
                for (t, T, c, k), runs in sorted(g.items(), key=lambda kv: kv[0][1]):
                    o = outcome(runs)
                    if (t, c, k) == (task, cell, clip) and o.counted:
                        pts.append((T, o.rate, *o.interval))
                if pts:
                    xs, ys, lo, hi = zip(*pts, strict=True)
                    # small offsets keep overlapping lines (same solve rate) visible
                    jitter = 0.01 * (i - (len(clips) - 1) / 2) + 0.03 * (
                        _cell_key(cell) - (len(CELL_ORDER) - 1) / 2
                    )
                    xj = [
                        x * (1 + 0.02 * (_cell_key(cell) - (len(CELL_ORDER) - 1) / 2 + i / 4))
                        for x in xs
                    ]
                    ax.errorbar(
                        xj, [y + jitter for y in ys],
                        yerr=[[y - a for y, a in zip(ys, lo, strict=True)],
                              [b - y for y, b in zip(ys, hi, strict=True)]],
                        fmt=LINESTYLES[i % 4], marker=CELL_MARKERS.get(cell, "o"), ms=5, capsize=2,
                        elinewidth=0.7, color=CELL_COLORS.get(cell), label=f"{cell} {clip}",
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
                    label=f"{r.cell} {r.clip}",
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
        # copy's recall positions cut off, floored zeros as gaps (suite.findings.analysis.trimmed_profile)
        profs = [
            trimmed_profile(r.profile_first, r.task, r.seq_len, r.input_length, r.task_options)
            for r in runs
            if r.profile_first
        ]
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
        ax.set_xticklabels(clips, fontsize=8)
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
    lines = [
        f"# rnnbench report: sweep `{data.name}`",
        "",
        f"Parent run `{data.parent_run_id}` at `{data.tracking_uri}`: {len(data.runs)} configurations, "
        f"{len(data.finished)} finished, "
        f"{sum(r.status == 'solved' for r in data.runs)} solved, "
        f"{sum(r.status == 'diverged' for r in data.runs)} diverged, "
        f"{sum(r.status in ('failed', 'killed', 'running') for r in data.runs)} failed/killed/unfinished.",
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
        "step budget, with the median steps they got (not counted; undecided: the outcome "
        "depends on them).",
        "",
        "| cell | clip | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for cell, clip in rows:
        vals = [t["cells"].get((col, (cell, clip)), "—") for col in t["cols"]]
        lines.append(f"| {cell} | {clip} | " + " | ".join(vals) + " |")
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
    from suite.findings.critical import critical_section  # a critical sweep's table + figure

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
