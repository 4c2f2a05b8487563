"""The report: read a sweep back from MLflow, write ``report.md`` + PNG figures, derive a verdict.

Every sentence of the verdict is computed from the runs (nothing hand-written), and says
so when the data cannot support a statement (too few seeds, nothing solved, nothing diverged).

Example:
    >>> data = load_sweep("sqlite:///mlflow.db", "rnnbench")        # doctest: +SKIP
    >>> write_report(data, "reports/quick")                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from suite.claims import check_claims, claims_markdown
from suite.errors import UserError

CELL_ORDER = ("simple_rnn", "irnn", "lstm", "gru")
CELL_COLORS = {
    "simple_rnn": "tab:red",
    "irnn": "tab:orange",
    "lstm": "tab:blue",
    "gru": "tab:green",
}
CELL_MARKERS = {"simple_rnn": "o", "irnn": "s", "lstm": "^", "gru": "D"}
LINESTYLES = ("-", "--", ":", "-.")
CURVE_CAP = 10.0  # learning curves: val loss / baseline drawn up to this (diverged runs go to 1e30)
NORM_CAP = 1e4  # exploding-gradient panel: pre-clip norms drawn up to this


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
    profile_first: list | None = None  # ‖∂L/∂x_t‖ at the first eval
    stop_reason: str = ""  # e.g. "max_steps reached", "max_seconds reached"


@dataclass
class SweepData:
    parent_run_id: str
    name: str
    runs: list[RunInfo]
    baselines: dict  # (task, T) -> baseline loss
    tracking_uri: str

    @property
    def finished(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status in ("solved", "unsolved", "diverged")]


def _cell_key(cell: str) -> int:
    return CELL_ORDER.index(cell) if cell in CELL_ORDER else len(CELL_ORDER)


def _clip_key(clip: str) -> tuple:
    return (clip != "none", clip)


_NAME = re.compile(
    r"^(?P<task>.+)-T(?P<T>\d+)-(?P<cell>simple_rnn|irnn|lstm|gru)-(?P<clip>.+)-s(?P<seed>\d+)$"
)


def _params_of(run) -> dict:
    """A run's params; for a run that crashed before logging them, parsed from its name."""
    p = dict(run.data.params)
    if "task" not in p:
        m = _NAME.match(run.info.run_name or "")
        if m:
            p.update(task=m["task"], seq_len=m["T"], cell=m["cell"], clip=m["clip"], seed=m["seed"])
    return p


def load_sweep(tracking_uri: str, experiment: str, sweep: str | None = None) -> SweepData:
    """Read a sweep's child runs (latest FINISHED per config; gaps kept) from MLflow."""
    import mlflow

    from suite.sweep import KIND_TAG, _all_runs
    from tasks import get_task

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
        parents = _all_runs(client, exp.experiment_id, f"tags.`{KIND_TAG}` = 'sweep'")
        if not parents:
            raise UserError(
                f"no sweep in experiment {experiment!r} at {tracking_uri}; run `rnnbench sweep quick` first."
            )
        parent = max(parents, key=lambda r: r.info.start_time)
    pid = parent.info.run_id
    children = _all_runs(client, exp.experiment_id, f"tags.`mlflow.parentRunId` = '{pid}'")
    if not children:
        raise UserError(f"sweep {pid} has no runs yet; run (or resume) the sweep first.")
    latest: dict[str, object] = {}
    for run in sorted(children, key=lambda r: r.info.start_time):
        h = run.data.tags.get("rnnbench.config_hash", run.info.run_id)
        if run.info.status == "FINISHED" or h not in latest or latest[h].info.status != "FINISHED":
            latest[h] = run
    runs, baselines = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in latest.values():
            p = _params_of(run)
            status = run.data.tags.get("rnnbench.status", "running")
            if run.info.status == "FAILED":
                status = "failed"
            elif run.info.status == "KILLED":
                status = "killed"
            info = RunInfo(
                run_id=run.info.run_id,
                task=p.get("task", "?"),
                seq_len=int(p.get("seq_len", 0)),
                cell=p.get("cell", "?"),
                clip=p.get("clip", "?"),
                seed=int(p.get("seed", 0)),
                status=status,
                metrics=dict(run.data.metrics),
                stop_reason=run.data.tags.get("rnnbench.stop_reason", ""),
            )
            if status in ("solved", "unsolved", "diverged"):
                for m in ("val_loss_ratio", "grad_norm", "grad_norm_max", "clip_fraction"):
                    info.curves[m] = [
                        (h.step, h.value) for h in client.get_metric_history(run.info.run_id, m)
                    ]
                try:
                    path = client.download_artifacts(run.info.run_id, "grad_profile.json", tmp)
                    prof = json.loads(Path(path).read_text())
                    info.profile_first = prof["norms"][0] if prof.get("norms") else None
                except Exception:  # a missing artifact is a gap, not an error
                    info.profile_first = None
            key = (info.task, info.seq_len)
            if key not in baselines and info.task != "?":
                try:
                    baselines[key] = get_task(info.task, seq_len=info.seq_len).baseline_loss
                except ValueError:
                    pass
            runs.append(info)
    name = parent.data.params.get("spec") or parent.info.run_name or pid
    return SweepData(pid, name, runs, baselines, tracking_uri)


# ----- aggregation ------------------------------------------------------------------------


def groups(data: SweepData) -> dict[tuple, list[RunInfo]]:
    """(task, T, cell, clip) -> runs over seeds."""
    out: dict[tuple, list[RunInfo]] = defaultdict(list)
    for r in data.runs:
        out[(r.task, r.seq_len, r.cell, r.clip)].append(r)
    return out


def solve_table(data: SweepData) -> tuple[list[str], list[tuple[str, str]], dict]:
    """Columns task@T, rows (cell, clip), and the cell text."""
    g = groups(data)
    cols = sorted({(t, T) for t, T, _, _ in g}, key=lambda k: (k[0], k[1]))
    rows = sorted({(c, k) for _, _, c, k in g}, key=lambda ck: (_cell_key(ck[0]), _clip_key(ck[1])))
    cells = {}
    for (task, T, cell, clip), runs in g.items():
        done = [r for r in runs if r.status in ("solved", "unsolved", "diverged")]
        solved = [r for r in done if r.status == "solved"]
        div = sum(r.status == "diverged" for r in done)
        gaps = len(runs) - len(done)
        if solved:
            steps = statistics.median(r.metrics.get("steps_to_solve", math.nan) for r in solved)
            text = f"{len(solved)}/{len(runs)} · {steps:.0f} steps"
        elif done:
            ratios = [r.metrics.get("val_loss_ratio", math.inf) for r in done]
            best = min(ratios)
            text = (
                f"FAIL {len(solved)}/{len(runs)} (best {best:.2g})"
                if math.isfinite(best)
                else f"FAIL 0/{len(runs)}"
            )
        else:
            text = "no finished run"
        capped = [r for r in done if r.stop_reason == "max_seconds reached"]
        if capped:  # a time cap, not the step budget, ended these: say how far they got
            steps = statistics.median(r.metrics.get("steps", math.nan) for r in capped)
            text += f" · {len(capped)} time-capped at ~{steps:.0f} steps"
        if div:
            text += f" · {div} diverged"
        if gaps and done:
            text += f" · {gaps} missing"
        cells[((task, T), (cell, clip))] = text
    return [f"{t}@{T}" for t, T in cols], rows, {"cols": cols, "cells": cells}


def longest_solved(data: SweepData) -> dict[tuple, int | None]:
    """(task, cell, clip) -> longest T where at least half the seeds solved (None: none)."""
    out: dict[tuple, int | None] = {}
    for (task, T, cell, clip), runs in groups(data).items():
        key = (task, cell, clip)
        out.setdefault(key, None)
        done = [r for r in runs if r.status in ("solved", "unsolved", "diverged")]
        if done and sum(r.status == "solved" for r in done) * 2 >= len(done):
            out[key] = max(out[key] or 0, T)
    return out


def solved_set(data: SweepData, cell: str, clip: str) -> set[tuple]:
    """task@T (as tuples) where ``cell``/``clip`` solved at least half its seeds."""
    s = set()
    for (task, T, c, k), runs in groups(data).items():
        done = [r for r in runs if r.status in ("solved", "unsolved", "diverged")]
        if (
            c == cell
            and k == clip
            and done
            and sum(r.status == "solved" for r in done) * 2 >= len(done)
        ):
            s.add((task, T))
    return s


# ----- verdict ----------------------------------------------------------------------------


def verdict(data: SweepData) -> list[str]:
    """Sentences derived from the numbers; each names its evidence or says it has none."""
    out: list[str] = []
    fin = data.finished
    if not fin:
        return ["No run finished, so the data supports no statement yet."]
    cells = sorted({r.cell for r in fin}, key=_cell_key)
    clips = sorted({r.clip for r in fin}, key=_clip_key)
    tasks = sorted({r.task for r in fin})
    seeds = {r.seed for r in fin}
    solved_any = [r for r in fin if r.status == "solved"]
    if len(seeds) < 3:
        out.append(
            f"Only {len(seeds)} seed(s) per configuration: read every statement below as an indication, "
            "not a conclusion (3 or more seeds are needed)."
        )
    if not solved_any:
        out.append(
            "No run solved its task, so no cell can be ranked and no clipping effect on solving can be shown."
        )

    # Longest T per cell (best clip), per task.
    ls = longest_solved(data)
    for task in tasks:
        parts = []
        for cell in cells:
            best = [
                (ls.get((task, cell, clip)), clip) for clip in clips if (task, cell, clip) in ls
            ]
            solved_T = [(T, clip) for T, clip in best if T]
            if solved_T:
                T, clip = max(solved_T)
                parts.append(f"{cell} T = {T} ({clip})")
            else:
                parts.append(f"{cell} none")
        lengths = sorted({r.seq_len for r in fin if r.task == task})
        out.append(
            f"Longest length solved on {task} (lengths {', '.join(map(str, lengths))}): "
            + "; ".join(parts)
            + "."
        )

    # Claim 2: does clipping make tanh SimpleRNN solve what it failed without?
    if "simple_rnn" in cells and "none" in clips:
        base = solved_set(data, "simple_rnn", "none")
        gained = {
            clip: sorted(solved_set(data, "simple_rnn", clip) - base)
            for clip in clips
            if clip != "none"
        }
        tested = sorted({(r.task, r.seq_len) for r in fin if r.cell == "simple_rnn"} - base)
        wins = {clip: g for clip, g in gained.items() if g}
        if not tested:
            out.append(
                "tanh SimpleRNN solved every length it was given without clipping, so clipping had nothing to rescue."
            )
        elif wins:
            for clip, g in wins.items():
                out.append(
                    f"Clipping helped tanh SimpleRNN: with {clip} it solved "
                    + ", ".join(f"{t}@{T}" for t, T in g)
                    + " which it failed without clipping."
                )
        else:
            out.append(
                "No clipping setting made tanh SimpleRNN solve a length it failed without clipping "
                f"({len(tested)} task@T failed without; clip settings tried: {', '.join(c for c in clips if c != 'none') or 'none'})."
            )

    # Ranking of cells by runs solved (ties: median steps to solve).
    score = {}
    for cell in cells:
        rs = [r for r in fin if r.cell == cell]
        sol = [r for r in rs if r.status == "solved"]
        med = (
            statistics.median(r.metrics.get("steps_to_solve", math.inf) for r in sol)
            if sol
            else math.inf
        )
        score[cell] = (len(sol), len(rs), med)
    ranking = sorted(cells, key=lambda c: (-score[c][0] / max(score[c][1], 1), score[c][2]))
    out.append(
        "Ranking of cells by share of runs solved: "
        + " > ".join(f"{c} ({score[c][0]}/{score[c][1]})" for c in ranking)
        + "."
    )
    per_task_best = {}
    for task in tasks:
        best = max(
            cells,
            key=lambda c: sum(r.status == "solved" for r in fin if r.cell == c and r.task == task),
        )
        n = sum(r.status == "solved" for r in fin if r.cell == best and r.task == task)
        per_task_best[task] = best if n else None
    if len(tasks) > 1 and len({v for v in per_task_best.values() if v}) > 1:
        out.append(
            "The best cell depends on the task: "
            + ", ".join(f"{t}: {c or 'none solved'}" for t, c in per_task_best.items())
            + "."
        )

    # Claim 1 / 5: divergence without vs with clipping.
    div_none = [r for r in fin if r.clip == "none" and r.status == "diverged"]
    div_clip = [r for r in fin if r.clip != "none" and r.status == "diverged"]
    n_none = sum(r.clip == "none" for r in fin)
    n_clip = len(fin) - n_none
    if not div_none and not div_clip:
        out.append("No run diverged, so this data cannot show clipping preventing divergence.")
    else:
        out.append(
            f"Divergence: {len(div_none)}/{n_none} runs without clipping diverged"
            + (f" ({', '.join(sorted({r.cell for r in div_none}))})" if div_none else "")
            + f", {len(div_clip)}/{n_clip} with clipping"
            + (f" ({', '.join(sorted({r.cell for r in div_clip}))})" if div_clip else "")
            + "."
        )
    if "irnn" in cells and "none" in clips and any(c != "none" for c in clips):
        irnn_none = solved_set(data, "irnn", "none")
        irnn_clip = set().union(*(solved_set(data, "irnn", c) for c in clips if c != "none"))
        tanh_all = (
            set().union(*(solved_set(data, "simple_rnn", c) for c in clips))
            if "simple_rnn" in cells
            else set()
        )
        beyond = sorted((irnn_none | irnn_clip) - tanh_all)
        out.append(
            f"IRNN solved {len(irnn_clip)} task@T with clipping vs {len(irnn_none)} without"
            + (
                f"; it solved {', '.join(f'{t}@{T}' for t, T in beyond)} where tanh SimpleRNN failed"
                if beyond
                else ""
            )
            + "."
        )

    # Claim 4: gated cells still see large gradients.
    for cell in ("lstm", "gru"):
        rs = [r for r in fin if r.cell == cell]
        if not rs:
            continue
        gmax = max((r.metrics.get("grad_norm_max", 0.0) for r in rs), default=0.0)
        clipped = [r for r in rs if r.clip != "none"]
        frac = (
            statistics.mean(_mean_curve(r, "clip_fraction") for r in clipped) if clipped else None
        )
        out.append(
            f"{cell}: largest pre-clip gradient norm {gmax:.3g}"
            + (
                f"; clipping fired on {frac:.0%} of steps on average when enabled"
                if frac is not None
                else ""
            )
            + "."
        )
    return out


def _mean_curve(r: RunInfo, metric: str) -> float:
    pts = r.curves.get(metric) or []
    return statistics.mean(v for _, v in pts) if pts else 0.0


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
                    done = [r for r in runs if r.status in ("solved", "unsolved", "diverged")]
                    if t == task and c == cell and k == clip and done:
                        pts.append((T, sum(r.status == "solved" for r in done) / len(done)))
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    # small vertical offsets keep overlapping lines (same solve rate) visible
                    jitter = 0.01 * (i - (len(clips) - 1) / 2) + 0.03 * (_cell_key(cell) - 1.5)
                    ax.plot(
                        xs, [y + jitter for y in ys], LINESTYLES[i % 4], marker=CELL_MARKERS.get(cell, "o"),
                        ms=5, color=CELL_COLORS.get(cell), label=f"{cell} {clip}",
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
    fig.suptitle(
        "Solve rate vs sequence length (colour/marker: cell, line style: clip; offsets only for legibility)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    fig.suptitle(
        f"Learning curves (first seed); 1.0 = the trivial baseline; x = diverged (drawn at {CURVE_CAP:g})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        profs = [np.asarray(r.profile_first, dtype=float) for r in runs if r.profile_first]
        profs = [q for q in profs if np.all(np.isfinite(q))]  # a run that blew up by then: skip
        if not profs:
            return None
        return np.median(np.stack([q / max(q[-1], 1e-30) for q in profs]), axis=0)

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
        bottom.set_xlabel("distance from the loss (steps)")
        for ax in (top, bottom):
            ax.set_yscale("log")
            ax.set_ylabel("‖∂L/∂x_t‖ / value at distance 0")
            ax.grid(alpha=0.3)
    for row in axes:
        if any(ax.get_legend_handles_labels()[0] for ax in row):
            row[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(
        "Gradient reaching step t at the first evaluation (median over runs, longest T per task)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
                statistics.mean(_mean_curve(r, "clip_fraction") for r in rs) if rs else 0.0
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
    fig.suptitle("Exploding gradients: pre-clip norms and how often clipping fired", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        "Each cell: solved seeds / runs · median steps to solve; FAIL shows the best final val loss / baseline "
        "(1.0 = no better than the trivial baseline); time-capped: runs ended by the training-time cap "
        "before the step budget, with the median steps they got.",
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

    from suite.sweep import _all_runs

    client = mlflow.MlflowClient(data.tracking_uri)
    parent = client.get_run(data.parent_run_id)
    exports = _all_runs(client, parent.info.experiment_id, "tags.`rnnbench.kind` = 'export'")
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
        status = r.data.tags.get("rnnbench.winner_status", "?")
        lines.append(
            f"| {task}@{T} | {p.get('cell')} | {p.get('clip')} | {status if status == 'solved' else status.upper()} | "
            f"{p.get('ops', '?')} | {m.get('parity_max_abs_diff', math.nan):.1e} | "
            f"{m.get('speedup_b1', math.nan):.1f}x | {m.get('speedup_b64', math.nan):.1f}x |"
        )
    return "\n".join(lines)
