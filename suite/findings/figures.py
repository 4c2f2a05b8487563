"""The report's figures: one function per PNG, each drawing what the findings modules decided.

Every ``fig_*`` function takes the sweep's data (or the critical-length rows) and a path,
draws with matplotlib's Agg backend (no screen needed) and writes one PNG; the matching
``*_figure`` function returns the matplotlib figure unsaved (what the tests read back).
Nothing here decides an outcome: solve rates and states come from
:mod:`suite.findings.outcomes`, brackets from :mod:`suite.findings.critical`, the "solved"
rule and baseline of each task from :mod:`tasks`.

Each figure says in its title what it shows and in its caption how to read it; every colour
has a legend; a value a cap hides is counted (and its maximum named) in the figure.

Example:
    >>> from suite.findings.data import load_sweep                        # doctest: +SKIP
    >>> fig_solve_rate(load_sweep("sqlite:///mlflow.db", "rnnbench"), Path("solve_rate.png"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
import textwrap
import warnings
from pathlib import Path

from suite.findings.critical import CriticalRow
from suite.findings.data import DEFAULT_OPTIMIZER, SweepData, cell_key, clip_key
from suite.findings.outcomes import SOLVED, UNDECIDED, Outcome, outcomes
from suite.findings.runs import mean_clip_fraction

CELL_COLORS = {
    "simple_rnn": "tab:red",
    "irnn": "tab:orange",
    "relu_rnn": "darkgoldenrod",
    "leaky_rnn": "teal",
    "sigmoid_rnn": "lightcoral",
    "ortho_rnn": "tab:purple",
    "lstm": "tab:blue",
    "chrono_lstm": "tab:cyan",
    "gru": "tab:green",
    "transformer": "slateblue",
}
# the decay figure's tanh SimpleRNN lines, one colour per treatment: none of the cell colours
CLIP_COLORS = ("black", "tab:brown", "tab:pink", "tab:olive", "tab:gray", "gold", "navy", "magenta")
OPT_STYLES = ("-", "--", ":", "-.")  # line style per optimizer (learning curves)
CURVE_CAP = 10.0  # learning curves: val loss / baseline drawn up to this (diverged runs go to 1e30)
NORM_CAP = 1e4  # exploding-gradient panel: pre-clip norms drawn up to this (the rest counted)
SOLVE_CMAP = "viridis"
NO_RUN_COLOR = "#d4d4d4"
SOLVED_SHADE = "#b8e0b8"  # learning curves: the val-loss zone the task counts as solved
DPI = 110
CRITICAL_FIGURE = "critical_length.png"

_cell_key, _clip_key = cell_key, clip_key


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cell_color(cell: str) -> str:
    return CELL_COLORS.get(cell, f"C{cell_key(cell) % 10}")


def setting_key(s: tuple[str, str, str]) -> tuple:
    """(cell, treatment, optimizer) in report order: cell, treatment, Adam first."""
    return (cell_key(s[0]), clip_key(s[1]), s[2] != DEFAULT_OPTIMIZER, s[2])


def setting_label(cell: str, clip: str, opt: str, optimizers: int) -> str:
    return " · ".join([cell, clip] + [opt] * (optimizers > 1))


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize`` points
    (DejaVu Sans averages about 0.6 em a character); ``\\n`` starts a new paragraph."""
    per_line = max(24, int(width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(p, per_line) for p in text.split("\n"))


def _titled(fig, title: str, caption: str | None = None, handles=(), ncol: int = 1,
            fontsize: float = 11):  # fmt: skip
    """Title the figure (wrapped to its width) and put one legend under the panels: its keys
    (``handles``) under the caption (how to read the figure, wrapped), both laid out by the
    figure's constrained layout, so nothing overlaps or is cut."""
    width = fig.get_figwidth() - 0.4
    fig.suptitle(_wrap(title, width, fontsize), fontsize=fontsize)
    if caption or handles:
        handles = list(handles)
        longest = max((len(h.get_label()) for h in handles), default=0)
        entry = 0.6 * 8 * longest / 72 + 0.75  # inches: handle, gap and label at 8 pt
        ncol = min(ncol, max(1, int(width / entry)))  # the legend no wider than the figure
        leg = fig.legend(
            handles=handles, loc="outside lower center", ncol=max(1, ncol), fontsize=8,
            frameon=False, title=_wrap(caption, width, 8) if caption else None,
            title_fontsize=8, alignment="left",
        )  # fmt: skip
        leg.set_gid("legend")
        if caption:
            leg.get_title().set_gid("caption")
    return fig


def _save(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` (grown to hold every artist, caption included) and free it."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    _plt().close(fig)


def _num(x: float) -> str:
    """1e4 for a power of ten, else the shortest float text."""
    e = math.log10(x) if x > 0 else math.nan
    return f"1e{e:.0f}" if math.isfinite(e) and e == round(e) and abs(e) >= 4 else f"{x:g}"


def _empty(title: str, why: str):
    fig = _plt().figure(figsize=(6.5, 2.5), layout="constrained")
    fig.text(0.5, 0.5, why, ha="center", va="center", fontsize=10)
    return _titled(fig, title)


# ----- solve rate: a heat map of k/n per configuration --------------------------------------


def solve_rate_grid(data: SweepData) -> tuple[list[tuple], list[tuple], dict[tuple, Outcome]]:
    """The heat map's rows (cell, treatment, optimizer), columns (task, T) and outcomes keyed
    (task, T, cell, treatment, optimizer), from :func:`suite.findings.outcomes.outcomes`."""
    outs = outcomes(data)
    cols = sorted({(t, T) for t, T, *_ in outs})
    rows = sorted({(c, k, o) for _, _, c, k, o in outs}, key=setting_key)
    return rows, cols, outs


def solve_label(o: Outcome | None) -> str:
    """A heat-map square's text: solved seeds / counted runs, "—" without a counted run."""
    return f"{o.solved}/{o.counted}" if o is not None and o.counted else "—"


def solve_rate_figure(data: SweepData):
    import numpy as np
    from matplotlib.patches import Patch, Rectangle

    title = "Solve rate per configuration: seeds solved / counted runs at each task@T"
    rows, cols, outs = solve_rate_grid(data)
    if not rows:
        return _empty(title, "no run in this sweep")
    plt = _plt()
    nopt = len(data.optimizers)
    labels = [setting_label(c, k, o, nopt) for c, k, o in rows]
    label_w = 0.075 * max(len(s) for s in labels) + 0.4
    tasks = sorted({t for t, _ in cols})
    span = {t: sum(c == t for c, _ in cols) for t in tasks}
    # a task name over its columns, broken at "_" where one column is too narrow for it
    heads = [t if 0.085 * len(t) <= 0.66 * span[t] else t.replace("_", "_\n") for t in tasks]
    col_w = max([0.66] + [0.085 * max(map(len, h.split("\n"))) / span[t]
                          for t, h in zip(tasks, heads, strict=True)])  # fmt: skip
    width = max(7.0, label_w + col_w * len(cols) + 1.6)
    height = 0.3 * len(rows) + 2.4
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    ax.set_gid("solve-rate")
    rate = np.full((len(rows), len(cols)), np.nan)
    for i, (cell, clip, opt) in enumerate(rows):
        for j, (task, T) in enumerate(cols):
            o = outs.get((task, T, cell, clip, opt))
            if o is not None and o.counted:
                rate[i, j] = o.rate
    cmap = plt.get_cmap(SOLVE_CMAP).with_extremes(bad=NO_RUN_COLOR)
    im = ax.imshow(rate, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    for i, (cell, clip, opt) in enumerate(rows):
        for j, (task, T) in enumerate(cols):
            o = outs.get((task, T, cell, clip, opt))
            text = solve_label(o)
            dark = o is not None and o.counted and o.rate < 0.55
            lacking = o is not None and (o.state == UNDECIDED or not o.counted)
            if lacking:  # undecided, or the configuration ran but has no counted run
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                       edgecolor="0.45", lw=0, gid="lacking"))  # fmt: skip
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8,
                color="white" if dark else "black",
                fontweight="bold" if o is not None and o.state == SOLVED else "normal",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85)
                if lacking and o.counted else None,
            )  # fmt: skip
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    for tick, (cell, _, _) in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_color(cell_color(cell))
    ax.set_xticks(range(len(cols)), [str(T) for _, T in cols], fontsize=8)
    ax.set_xlabel("sequence length T (columns grouped by task, task names on top)")
    centers = [statistics.mean(j for j, (t, _) in enumerate(cols) if t == task) for task in tasks]
    top = ax.secondary_xaxis("top")
    top.set_xticks(centers, heads, fontsize=9, fontweight="bold")
    top.tick_params(length=0)
    for j in range(1, len(cols)):
        if cols[j][0] != cols[j - 1][0]:
            ax.axvline(j - 0.5, color="white", lw=3)
    for i in range(1, len(rows)):
        if rows[i][0] != rows[i - 1][0]:
            ax.axhline(i - 0.5, color="white", lw=3)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    bar = fig.colorbar(im, ax=ax, shrink=min(1.0, 4.0 / max(height - 2.4, 1.0)), pad=0.02)
    bar.set_label("solve rate (seeds solved / counted runs)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    handles = [
        Patch(facecolor="white", edgecolor="0.45", hatch="///", label="undecided: lacking seeds could flip it"),
        Patch(facecolor=NO_RUN_COLOR, label="— no counted run (hatched: its seeds crashed, were time-capped or never ran)"),
    ]  # fmt: skip
    n = data.expected_seeds()
    return _titled(
        fig,
        title,
        f"Each square: k/n = seeds solved / counted runs (finished, not cut by the time cap), "
        f"coloured by k/n; bold: the configuration solves the task@T (at least half its {n} "
        "expected seeds solved, the rule the claims use). Rows: cell · treatment"
        + (" · optimizer" if nopt > 1 else "")
        + "; label colour = cell.",
        handles,
        ncol=2 if width > 11 else 1,
    )


def fig_solve_rate(data: SweepData, path: Path) -> None:
    _save(solve_rate_figure(data), path)


# ----- learning curves --------------------------------------------------------------------


def solved_line(data: SweepData, task: str, T: int, options: dict | None = None):
    """The task's "solved" rule in val-loss / baseline units: ``(ratio, text)``; ratio is
    ``None`` when the rule is not on the loss (accuracy-based) and cannot be drawn."""
    from tasks import get_task

    try:
        t = get_task(task, seq_len=T, **(options or {}))
    except (ValueError, TypeError):
        return None, f"{task}: solved rule unknown"
    if t.solved_metric != "loss":
        return None, f"solved: {t.solved_when} (no line: not a loss)"
    base = data.baselines.get((task, T)) or t.baseline_loss
    ratio = t.solved_threshold / base
    return ratio, f"solved: {t.solved_when} (= {ratio:.2g} × baseline)"


def _curve(r) -> list[tuple[int, float]]:
    """A run's val loss / baseline per evaluation, non-finite or above the cap drawn at it."""
    return [
        (s, min(v, CURVE_CAP) if math.isfinite(v) else CURVE_CAP)
        for s, v in sorted(r.curves.get("val_loss_ratio") or [])
        if not math.isfinite(v) or v > 0
    ]


def _median_curve(curves: list[list[tuple[int, float]]]):
    """Median over runs at every evaluation step any run reached; a run that ended earlier
    (solved or diverged) holds its last value."""
    steps = sorted({s for c in curves for s, _ in c})
    out = []
    for s in steps:
        vals = []
        for c in curves:
            seen = [v for t, v in c if t <= s]
            if seen:
                vals.append(seen[-1])
        out.append(statistics.median(vals))
    return steps, out


def learning_curves_figure(data: SweepData):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    title = "Learning curves: val loss / baseline over training, every seed"
    fin = data.finished
    tasks = sorted({r.task for r in fin})
    if not tasks:
        return _empty(title, "no finished run to draw")
    plt = _plt()
    clips = sorted({r.clip for r in fin}, key=clip_key)
    opts = data.optimizers
    fig, axes = plt.subplots(
        len(tasks), len(clips), figsize=(3.4 * len(clips) + 1.0, 2.9 * len(tasks) + 1.4),
        squeeze=False, sharey=True, layout="constrained",
    )  # fmt: skip
    cells_drawn: set[str] = set()
    opts_drawn: set[str] = set()
    any_line = any_note = any_div = False
    shade = []
    for i, task in enumerate(tasks):
        lengths = sorted({r.seq_len for r in fin if r.task == task})
        T = lengths[len(lengths) // 2]  # a representative (middle) length
        at = [r for r in fin if r.task == task and r.seq_len == T]
        ratio, rule = solved_line(data, task, T, at[0].task_options)
        for j, clip in enumerate(clips):
            ax = axes[i][j]
            mine = [r for r in at if r.clip == clip]
            for cell, opt in sorted({(r.cell, r.optimizer) for r in mine},
                                    key=lambda s: setting_key((s[0], clip, s[1]))):  # fmt: skip
                color, style = cell_color(cell), OPT_STYLES[opts.index(opt) % len(OPT_STYLES)]
                curves = []
                for r in sorted(mine, key=lambda r: r.seed):
                    if (r.cell, r.optimizer) != (cell, opt):
                        continue
                    pts = _curve(r)
                    if not pts:
                        continue
                    curves.append(pts)
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, style, color=color, lw=0.8, alpha=0.35, gid=f"seed:{r.run_id}")
                    if r.status == "diverged":
                        any_div = True
                        ax.plot(xs[-1], ys[-1], "x", color=color, ms=7, mew=1.8)
                if curves:
                    ax.plot(
                        *_median_curve(curves),
                        style,
                        color=color,
                        lw=2.0,
                        gid=f"median:{cell}:{opt}",
                    )
                    cells_drawn.add(cell)
                    opts_drawn.add(opt)
            ax.axhline(1.0, color="grey", lw=0.9)
            if ratio is not None:
                any_line = True
                ax.axhline(ratio, color="black", lw=1.0, gid="solved-line")
                shade.append((ax, ratio))
            else:
                any_note = True
            if not mine:
                ax.text(0.5, 0.5, "no finished run at this T", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9)  # fmt: skip
            ax.set_yscale("log")
            ax.set_ylim(top=CURVE_CAP * 1.5)
            ax.set_title(f"{task}@{T} · {clip}\n{rule}", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            if i == len(tasks) - 1:
                ax.set_xlabel("train step", fontsize=8)
            if j == 0:
                ax.set_ylabel("val loss / baseline", fontsize=8)
    for ax, ratio in shade:  # the solved zone, under the threshold, once the limits are known
        low, high = ax.get_ylim()
        ax.axhspan(low, ratio, color=SOLVED_SHADE, alpha=0.35, lw=0, zorder=0)
        ax.set_ylim(low, high)
    handles = [Line2D([], [], color=cell_color(c), lw=2, label=c)
               for c in sorted(cells_drawn, key=cell_key)]  # fmt: skip
    if len(opts_drawn) > 1:
        handles += [Line2D([], [], color="0.3", ls=OPT_STYLES[opts.index(o) % len(OPT_STYLES)],
                           lw=2, label=f"optimizer {o}") for o in opts if o in opts_drawn]  # fmt: skip
    handles += [
        Line2D([], [], color="0.3", lw=2, label="median over seeds"),
        Line2D([], [], color="0.3", lw=0.8, alpha=0.5, label="one seed"),
        Line2D([], [], color="grey", lw=0.9, label="1.0 = trivial baseline"),
    ]
    if any_line:
        handles.append(Patch(facecolor=SOLVED_SHADE, alpha=0.35, edgecolor="black",
                             label="solved: below the task's threshold"))  # fmt: skip
    if any_div:
        handles.append(Line2D([], [], color="0.3", marker="x", ls="none", mew=1.8,
                              label=f"diverged (drawn at {CURVE_CAP:g})"))  # fmt: skip
    return _titled(
        fig,
        title,
        "Rows: task at its middle length T; columns: gradient treatment. Thin lines: one per "
        "seed; thick: the median over seeds (a run that stopped early, solved or diverged, "
        "holds its last value). Shaded, under a black line: the task's own solved rule as val loss "
        "/ baseline (its target over its baseline loss)"
        + (
            "; an accuracy-based rule (named in the panel title) has no line on this axis."
            if any_note
            else "."
        ),
        handles,
        ncol=min(len(handles), 5),
    )


def fig_learning_curves(data: SweepData, path: Path) -> None:
    _save(learning_curves_figure(data), path)


# ----- gradient decay ---------------------------------------------------------------------


def _trim(r, profile):
    """A logged profile as the slope rule trims it (copy's recall positions cut, floored zeros
    NaN), for drawing."""
    from suite.findings.runs import trimmed_profile as trim

    return trim(profile, r.task, r.seq_len, r.input_length, r.task_options)


def trimmed_profile(r):
    """A run's first profile as the slope rule trims it, for drawing."""
    return _trim(r, r.profile_first)


def median_profile(runs, which: int = 0):
    """The median over runs of each run's profile at evaluation ``which`` (0: first, -1:
    last), each divided by its value at distance 0; runs whose profile is non-finite (blowing
    up) or of another length are left out; ``None`` when none is left."""
    import numpy as np

    pairs = [(r, r.profiles[which]) for r in runs if r.profiles]
    profs = [
        q
        for r, p in pairs
        if np.all(np.isfinite(np.asarray(p, dtype=float))) and (q := _trim(r, p)).size and q[-1] > 0
    ]
    profs = [q for q in profs if len(q) == len(profs[0])] if profs else []
    if not profs:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a position floored in every run: NaN
        return np.nanmedian(np.stack([q / q[-1] for q in profs]), axis=0)


def gradient_decay_figure(data: SweepData):
    """Per task (rows, at its longest T): ‖∂L/∂x_t‖ vs distance per cell, and for tanh
    SimpleRNN per treatment (does clipping change the decay, or only rescale the gradient?);
    solid: first evaluation, dashed: last evaluation (when runs logged more than one)."""
    import numpy as np
    from matplotlib.lines import Line2D

    fin = [r for r in data.finished if r.profiles]
    tasks = sorted({r.task for r in fin})
    has_last = any(len(r.profiles) > 1 for r in fin)
    when = "first and last evaluation" if has_last else "at initialisation (first evaluation)"
    title = f"Vanishing gradients: ‖∂L/∂x_t‖ vs distance from the loss, {when}"
    if not tasks:
        return _empty(title, "no gradient profile logged")
    plt = _plt()
    opts = data.optimizers
    nopt = len(opts)
    evals = [(0, "-", "first evaluation")] + [(-1, "--", "last evaluation")] * has_last
    clips = sorted({r.clip for r in fin if r.cell == "simple_rnn"}, key=clip_key)
    lengths = {t: max(r.seq_len for r in fin if r.task == t) for t in tasks}
    content = {}  # (task, kind, opt) -> [(name, colour, [(eval label, style, profile)])]
    for task in tasks:
        at = [r for r in fin if r.task == task and r.seq_len == lengths[task]]
        for opt in opts:
            mine = [r for r in at if r.optimizer == opt]
            by = {
                "cell": [(c, cell_color(c), [r for r in mine if r.cell == c])
                         for c in sorted({r.cell for r in mine}, key=cell_key)],
                "clip": [(k, CLIP_COLORS[clips.index(k) % len(CLIP_COLORS)],
                          [r for r in mine if r.cell == "simple_rnn" and r.clip == k])
                         for k in clips],
            }  # fmt: skip
            for kind, lines in by.items():
                drawn = [(name, color, [(label, style, p) for which, style, label in evals
                                        if (p := median_profile(runs, which)) is not None])
                         for name, color, runs in lines]  # fmt: skip
                drawn = [d for d in drawn if d[2]]
                if drawn:
                    content[(task, kind, opt)] = drawn
    panels = [(k, o) for k in ("cell", "clip") for o in opts
              if any((t, k, o) in content for t in tasks)]  # fmt: skip
    if not panels:
        return _empty(title, "no finite gradient profile logged")
    fig, axes = plt.subplots(
        len(tasks), len(panels), figsize=(3.8 * len(panels) + 1.0, 3.1 * len(tasks) + 1.8),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    names: dict[str, set] = {"cell": set(), "clip": set()}
    for i, task in enumerate(tasks):
        T = lengths[task]
        for j, (kind, opt) in enumerate(panels):
            ax = axes[i][j]
            what = "by cell" if kind == "cell" else "tanh SimpleRNN by treatment"
            head = f"{task}@{T}: {what}" + (f" · {opt}" if nopt > 1 else "")
            ax.set_title(_wrap(head, 3.6, 9), fontsize=9)
            if (task, kind, opt) not in content:
                ax.axis("off")
                ax.text(0.5, 0.5, _wrap(f"no finite profile of {task}@{T}"
                                        + (f" under {opt}" if nopt > 1 else ""), 3.0, 9),
                        ha="center", va="center", transform=ax.transAxes, fontsize=9)  # fmt: skip
                continue
            for name, color, profs in content[(task, kind, opt)]:
                names[kind].add(name)
                for label, style, p in profs:
                    dist = np.arange(len(p))[::-1]
                    ax.plot(dist, np.maximum(p, 1e-30), style, color=color, lw=1.6,
                            gid=f"{label}:{name}")  # fmt: skip
            ax.set_yscale("log")
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            ax.set_xlabel(
                "distance from the delimiter (steps)" if task == "copy" else
                "distance from the loss (steps)", fontsize=8,
            )  # fmt: skip
            ax.set_ylabel("‖∂L/∂x_t‖ / value at distance 0", fontsize=8)
    handles = [Line2D([], [], color=cell_color(c), lw=2, label=c)
               for c in sorted(names["cell"], key=cell_key)]  # fmt: skip
    handles += [Line2D([], [], color=CLIP_COLORS[clips.index(k) % len(CLIP_COLORS)], lw=2,
                       label=f"tanh SimpleRNN {k}") for k in clips if k in names["clip"]]  # fmt: skip
    handles += [
        Line2D([], [], color="0.3", ls=style, lw=1.6, label=label) for _, style, label in evals
    ]
    first = (
        "Solid: each run's first evaluation (after its first evaluation window, a nearly "
        "untrained model): the profile claims 2 and 3 fit their decay slopes on, per run and at "
        "the task@T each claim names, so this median at the longest T need not look like their "
        "verdict. "
    )
    last = (
        "Dashed: each run's last evaluation (end of training: the gradient the trained model "
        "passes back). "
        if has_last
        else "Each run logged one profile, so no later evaluation is drawn. "
    )
    return _titled(
        fig,
        title,
        first + last + "Median over the runs of each line (every seed and, in the by-cell "
        "panels, every treatment), each run's profile divided by its value at distance 0; copy: "
        "recall positions left out; a profile with a non-finite norm (a run blowing up) is left "
        "out.",
        handles,
        ncol=min(len(handles), 4),
    )


def fig_gradient_decay(data: SweepData, path: Path) -> None:
    _save(gradient_decay_figure(data), path)


# ----- exploding gradients ------------------------------------------------------------------


def exploding_figure(data: SweepData):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    title = "Exploding gradients: pre-clip gradient norms and how often clipping fired"
    fin = data.finished
    if not fin:
        return _empty(title, "no finished run to draw")
    plt = _plt()
    cells = sorted({r.cell for r in fin}, key=cell_key)
    opts = data.optimizers
    nopt = len(opts)
    xs = sorted({(r.clip, r.optimizer) for r in fin}, key=lambda s: setting_key(("", *s)))
    ticks = [k.replace("+", "\n+") + ("\n" + o.replace(", ", ",\n") if nopt > 1 else "")
             for k, o in xs]  # fmt: skip
    longest = max(len(line) for t in ticks for line in t.split("\n"))
    group_w = max(1.2, 0.32 * len(cells), 0.068 * longest + 0.25)  # tick labels side by side
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(max(7.5, group_w * len(xs) + 1.4), 7.4), height_ratios=[1.4, 1],
        layout="constrained",
    )  # fmt: skip
    width = 0.8 / len(cells)
    above_all: list[float] = []
    nonfinite = 0
    for j, cell in enumerate(cells):
        for i, (clip, opt) in enumerate(xs):
            rs = [r for r in fin if (r.cell, r.clip, r.optimizer) == (cell, clip, opt)]
            if not rs:
                continue
            pos = i + (j - (len(cells) - 1) / 2) * width
            raw = [v for r in rs for _, v in r.curves.get("grad_norm_max", [])]
            nonfinite += sum(not math.isfinite(v) for v in raw)
            vals = [v for v in raw if math.isfinite(v) and v > 0]
            above = [v for v in vals if v > NORM_CAP]
            above_all += above
            color = cell_color(cell)
            if vals:
                bp = a1.boxplot(
                    [min(v, NORM_CAP) for v in vals], positions=[pos], widths=width * 0.9,
                    patch_artist=True, whis=(5, 95), showfliers=False, manage_ticks=False,
                )  # fmt: skip
                for box in bp["boxes"]:
                    box.set_facecolor(color)
                    box.set_alpha(0.7)
            if above:
                a1.plot([pos], [NORM_CAP], "^", color=color, mec="black", ms=7, zorder=5)
                a1.text(pos, NORM_CAP * 1.9, str(len(above)), ha="center", va="bottom", fontsize=7)
            fracs = [0.0 if math.isnan(f := mean_clip_fraction(r)) else f for r in rs]
            a2.bar(pos, statistics.mean(fracs), width=width * 0.9, color=color, alpha=0.7)
    for ax in (a1, a2):
        ax.set_xticks(range(len(xs)), ticks, fontsize=8)
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlabel("gradient treatment" + (" · optimizer" if nopt > 1 else ""), fontsize=8)
    a1.set_yscale("log")
    a1.axhline(NORM_CAP, color="0.4", lw=0.8, ls=":")
    a1.set_ylim(top=NORM_CAP * 60)
    a1.set_ylabel("largest pre-clip gradient norm\nper evaluation window", fontsize=8)
    a1.set_title("pre-clip norms (box: quartiles, whiskers: 5–95 %)", fontsize=9)
    if above_all or nonfinite:
        parts = []
        if above_all:
            n = len(above_all)
            parts.append(f"▲ {n} window {'maximum' if n == 1 else 'maxima'} above the cap "
                         f"{_num(NORM_CAP)} drawn at it (count over each ▲; max "
                         f"{max(above_all):.2g})")  # fmt: skip
        if nonfinite:
            parts.append(f"{nonfinite} non-finite value(s) (runs blowing up) left out")
        a1.text(0.02, 0.98, "\n".join(parts), transform=a1.transAxes, va="top", fontsize=7,
                gid="cap-note", bbox=dict(fc="white", ec="0.7", alpha=0.9))  # fmt: skip
    a2.set_ylabel("share of steps where\nclipping fired (mean over runs)", fontsize=8)
    a2.set_title("clip fraction (none: never clips)", fontsize=9)
    a2.set_ylim(0, 1.05)
    handles = [Patch(facecolor=cell_color(c), alpha=0.7, label=c) for c in cells]
    if above_all:
        handles.append(Line2D([], [], marker="^", color="0.5", mec="black", ls="none",
                              label=f"values above {_num(NORM_CAP)} (drawn at the cap)"))  # fmt: skip
    return _titled(
        fig,
        title,
        "Top: for each cell and treatment, the distribution over every run and evaluation "
        "window of the largest pre-clip gradient norm in the window (log scale, drawn up to "
        f"{_num(NORM_CAP)}; what lies above is counted in the panel). Bottom: the share of training "
        "steps whose gradient the treatment clipped, averaged over the runs.",
        handles,
        ncol=min(len(handles), 7),
    )


def fig_exploding(data: SweepData, path: Path) -> None:
    _save(exploding_figure(data), path)


# ----- critical length --------------------------------------------------------------------


def critical_figure(rows: list[CriticalRow]):
    """Per task (stacked panels): one row per bracket (cell · treatment · optimizer), the
    longest T solved (marker) and the bracket up to the shortest T failed, on a log-T axis."""
    from matplotlib.lines import Line2D

    title = "Critical length: the longest sequence length T each setting solved, and its bracket"
    if not rows:
        return _empty(title, "no bracket recorded")
    plt = _plt()
    tasks = sorted({r.task for r in rows})
    nopt = len({r.optimizer for r in rows})
    per = {t: [r for r in rows if r.task == t] for t in tasks}
    labels = {t: [setting_label(r.cell, r.clip, r.optimizer, nopt) for r in per[t]] for t in tasks}
    label_w = 0.075 * max(len(s) for ls in labels.values() for s in ls)
    height = sum(0.36 * len(per[t]) + 1.1 for t in tasks) + 1.8
    fig, axes = plt.subplots(
        len(tasks), 1, figsize=(max(8.5, label_w + 6.0), height), squeeze=False,
        height_ratios=[len(per[t]) + 2.5 for t in tasks], layout="constrained",
    )  # fmt: skip
    for ax, task in zip(axes[:, 0], tasks, strict=True):
        at = per[task]
        lens = sorted({T for r in at for T in r.lens})
        for y, r in enumerate(at):
            color = cell_color(r.cell)
            lo, hi = r.longest_solved, r.shortest_failed
            left = lo if lo is not None else lens[0] / 1.6
            right = hi if hi is not None else lens[-1] * 1.6
            ax.plot(
                [left, right], [y, y], "-", color=color, lw=3, alpha=0.45, solid_capstyle="butt"
            )
            if hi is not None:  # the cap: the shortest T failed (no cap: none failed)
                ax.plot(hi, y, "|", color=color, ms=14, mew=2.5)
            if lo is not None:
                marker = ">" if hi is None and not r.unresolved else "o"
                ax.plot(lo, y, marker, color=color, ms=8)
            else:  # none solved: an open marker left of the shortest T
                ax.plot(left, y, "<", color=color, ms=8, mfc="white", mew=1.5)
            for T in r.unresolved:
                ax.plot(T, y, "x", color="black", ms=8, mew=2)
            for T_fail, _ in r.non_monotone:
                ax.plot(T_fail, y, "*", color="black", ms=11)
        ax.set_xscale("log")
        ax.set_xticks(lens, [str(T) for T in lens], fontsize=8)
        ax.minorticks_off()
        ax.set_xlim(lens[0] / 2, lens[-1] * 2)
        ax.set_yticks(range(len(at)), labels[task], fontsize=8)
        for tick, r in zip(ax.get_yticklabels(), at, strict=True):
            tick.set_color(cell_color(r.cell))
        ax.set_ylim(len(at) - 0.5, -0.5)
        ax.set_title(f"{task} (lengths to bisect: {', '.join(map(str, lens))})", fontsize=9)
        ax.set_xlabel("sequence length T (log scale)", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    k = dict(ls="none", color="0.3")
    handles = [
        Line2D([], [], marker="o", ms=8, label="longest T solved", **k),
        Line2D([], [], marker=">", ms=8, label="every probed T solved", **k),
        Line2D([], [], marker="<", ms=8, mfc="white", label="none solved (below the shortest T)", **k),
        Line2D([], [], marker="|", ms=14, mew=2.5, label="shortest T failed above it", **k),
        Line2D([], [], color="0.3", lw=3, alpha=0.45, label="bracket (no end mark: open-ended)"),
        Line2D([], [], marker="x", ms=8, mew=2, ls="none", color="black", label="undecided probe"),
        Line2D([], [], marker="*", ms=11, ls="none", color="black", label="failed below a solved T (not monotone)"),
    ]  # fmt: skip
    return _titled(
        fig,
        title,
        "Each row is one bracket of the critical sweep (label colour = cell): the bisection "
        "probed lengths until the longest T solved and the shortest longer T failed were "
        "neighbours; a probe is solved when at least half its seeds solved.",
        handles,
        ncol=3,
    )


def fig_critical(rows: list[CriticalRow], path: Path) -> None:
    _save(critical_figure(rows), path)


FIGURES = {
    "solve_rate.png": fig_solve_rate,
    "learning_curves.png": fig_learning_curves,
    "gradient_decay.png": fig_gradient_decay,
    "exploding_gradients.png": fig_exploding,
}
