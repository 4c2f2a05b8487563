"""The report's figures: one function per PNG, each drawing what the findings modules decided.

Every function takes the sweep's data (or the critical-length rows) and a path, draws with
matplotlib's Agg backend (no screen needed) and writes one PNG. Nothing here decides an
outcome: solve rates come from :mod:`suite.findings.outcomes`, brackets from
:mod:`suite.findings.critical`.

Example:
    >>> from suite.findings.data import load_sweep                        # doctest: +SKIP
    >>> fig_solve_rate(load_sweep("sqlite:///mlflow.db", "rnnbench"), Path("solve_rate.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from suite.findings.critical import CriticalRow
from suite.findings.data import CELL_ORDER, SweepData, cell_key, clip_key
from suite.findings.outcomes import outcomes
from suite.findings.runs import mean_clip_fraction

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


def _label(cell: str, clip: str, opt: str, optimizers: int) -> str:
    return f"{cell} {clip}" + (f" {opt}" if optimizers > 1 else "")


def trimmed_profile(r):
    """A run's first profile as the slope rule trims it (copy's recall positions cut,
    floored zeros NaN), for drawing."""
    from suite.findings.runs import trimmed_profile as trim

    return trim(r.profile_first, r.task, r.seq_len, r.input_length, r.task_options)


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


FIGURES = {
    "solve_rate.png": fig_solve_rate,
    "learning_curves.png": fig_learning_curves,
    "gradient_decay.png": fig_gradient_decay,
    "exploding_gradients.png": fig_exploding,
}
