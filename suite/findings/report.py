"""The report: render a sweep's findings as ``report.md`` (figures: :mod:`suite.findings.figures`).

This module formats only: every number and sentence it prints comes from the
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
from suite.findings.data import SweepData, cell_key, clip_key
from suite.findings.figures import CRITICAL_FIGURE, FIGURES, fig_critical
from suite.findings.outcomes import UNDECIDED, groups, outcomes
from suite.findings.rules import rules
from suite.findings.runs import still_falling
from suite.findings.verdict import verdict


def _ci(lo: float, hi: float) -> str:
    return f"CI {lo:.2g}–{hi:.2g}"


# ----- tables ------------------------------------------------------------------------------


def solve_table(data: SweepData) -> tuple[list[str], list[tuple[str, str, str]], dict]:
    """Columns task@T, rows (cell, clip, optimizer), and the cell text (see render_markdown's
    legend)."""
    g = groups(data)
    outs = outcomes(data)
    cols = sorted({(t, T) for t, T, *_ in g}, key=lambda k: (k[0], k[1]))
    rows = sorted(
        {(c, k, o) for _, _, c, k, o in g},
        key=lambda r: (cell_key(r[0]), clip_key(r[1]), r[2] != "adam", r[2]),
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


def critical_section(data: SweepData, out_dir: Path) -> str | None:
    """The report's "Critical length" section (and its figure in ``out_dir``) when ``data``
    is a critical sweep; ``None`` otherwise."""
    rows = rows_of(data)
    if not rows:
        return None
    fig_critical(rows, Path(out_dir) / CRITICAL_FIGURE)
    return critical_markdown(rows, CRITICAL_FIGURE)


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
