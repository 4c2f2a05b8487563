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
from functools import partial
from pathlib import Path

from suite.findings.answer import QUESTION, answer, decided, untestable_lines
from suite.findings.claims import check_claims
from suite.findings.critical import CriticalRow, row_texts, rows_of
from suite.findings.data import SweepData, cell_key, clip_key
from suite.findings.figures import CRITICAL_FIGURE, FIGURES, fig_critical
from suite.findings.outcomes import UNDECIDED, groups, outcomes
from suite.findings.rules import rules
from suite.findings.runs import mean_clip_fraction, still_falling
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
    """The table of the claims the sweep decided ("" when it decided none)."""
    if not claims:
        return ""
    lines = [
        "## Claims decided",
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


FIGURE_TITLES = {
    "solve_rate.png": "Solve rate per configuration",
    "learning_curves.png": "Learning curves",
    "gradient_decay.png": "Vanishing gradients: ‖∂L/∂x_t‖ vs distance",
    "exploding_gradients.png": "Exploding gradients: pre-clip norms and clip fraction",
}
DEFAULT_UI = "http://127.0.0.1:5000"  # where the printed `mlflow ui` command serves
KEY_FIGURE = "solve_rate.png"  # drawn right under the answer


def summary_line(data: SweepData) -> str:
    """The sweep in one line: where it is and what its runs did."""
    n_missing = sum(r.status == "missing" for r in data.runs)
    return (
        f"Parent run `{data.parent_run_id}` at `{data.tracking_uri}`: {len(data.runs)} "
        f"configurations, {len(data.finished)} finished, "
        f"{sum(r.status == 'solved' for r in data.runs)} solved, "
        f"{sum(r.status == 'diverged' for r in data.runs)} diverged, "
        f"{sum(r.status in ('failed', 'killed', 'running') for r in data.runs)} "
        "failed/killed/unfinished" + (f", {n_missing} never run" if n_missing else "") + "."
    )


def answer_markdown(data: SweepData, findings, figures: list[str]) -> str:
    """The opening section: the question, its answer from the data, the key figure."""
    lines = ["## The answer", "", f"*{QUESTION}*", ""]
    lines += [f"- {s}" for s in answer(data, findings)]
    if KEY_FIGURE in figures:
        lines += ["", f"![{FIGURE_TITLES[KEY_FIGURE]}]({KEY_FIGURE})"]
    return "\n".join(lines)


def untestable_markdown(findings) -> str:
    """The claims this sweep cannot test, apart, one line each with the reason."""
    lines = untestable_lines(findings)
    if not lines:
        return ""
    return "\n".join(
        ["## Not testable in this sweep", "", "Each with what it would need or why not:", ""]
        + [f"- {x}" for x in lines]
    )


def solve_table_markdown(data: SweepData) -> str:
    cols, rows, t = solve_table(data)
    nopt = len(data.optimizers)
    lines = [
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
    ]
    return "\n".join(lines)


def render_markdown(
    data: SweepData, figures: list[str], extra_sections: list[str] | None = None, run_link=None
) -> str:
    """report.md: the answer first, then the claims it decided and those it could not test,
    the verdict, the solve table, the extra sections (critical length, ONNX), the figures,
    the rules and the per-run table."""
    return _join([*_sections(data, figures, extra_sections), runs_markdown(data, run_link)])


def _join(parts: list[str]) -> str:
    return "\n\n".join(p for p in parts if p) + "\n"


def _sections(data: SweepData, figures: list[str], extra_sections: list[str] | None) -> list[str]:
    """Every section of the report but the per-run table (the one part report.md and
    report.html write differently)."""
    findings = check_claims(data)
    parts = [
        f"# rnnbench report: sweep `{data.name}`",
        summary_line(data),
        answer_markdown(data, findings, figures),
        claims_markdown(decided(findings)),
        untestable_markdown(findings),
        "## Verdict\n\n" + "\n".join(f"- {s}" for s in verdict(data)),
        solve_table_markdown(data),
        *(extra_sections or []),
        *(f"## {FIGURE_TITLES.get(f, f)}\n\n![{f}]({f})" for f in figures if f != KEY_FIGURE),
        rules_markdown(),
    ]
    return parts


RUN_COLUMNS = ("task", "T", "cell", "clip", "optimizer", "seed", "status", "steps",
               "val/baseline", "steps to solve", "max pre-clip norm", "clip fraction", "run")  # fmt: skip


def run_rows(data: SweepData) -> list[dict]:
    """One row per run of the sweep, in report order: what the MLflow UI's runs table shows
    once its columns are added (params task, seq_len, cell, clip, optimizer, seed; metrics
    steps, val_loss_ratio, steps_to_solve, grad_norm_max, clip_fraction; tag status)."""

    def num(x, fmt):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    rows = []
    for r in sorted(data.runs, key=lambda r: (r.task, r.seq_len, cell_key(r.cell),
                                               clip_key(r.clip), r.optimizer, r.seed)):  # fmt: skip
        m = r.metrics
        norms = [v for _, v in r.curves.get("grad_norm_max", []) if math.isfinite(v)]
        frac = mean_clip_fraction(r)
        rows.append({
            "task": r.task, "T": r.seq_len, "cell": r.cell, "clip": r.clip,
            "optimizer": r.optimizer, "seed": r.seed,
            "status": r.status + (" (time-capped)" if r.incomplete else ""),
            "steps": num(m.get("steps"), ".0f"), "val/baseline": num(m.get("val_loss_ratio"), ".3g"),
            "steps to solve": num(m.get("steps_to_solve"), ".0f"),
            "max pre-clip norm": num(max(norms) if norms else None, ".3g"),
            "clip fraction": num(frac, ".2f"), "run": r.run_id,
        })  # fmt: skip
    return rows


def runs_markdown(data: SweepData, run_link=None) -> str:
    """The per-run comparison table (so the MLflow UI is optional); ``run_link(run_id)``
    gives each run id a link (report.html links the runs in the MLflow UI)."""
    rows = run_rows(data)
    if not rows:
        return ""
    lines = [
        "## Every run",
        "",
        f"The {len(rows)} runs of this sweep, one row each; in the MLflow UI each is a child "
        "of the parent run (the run ids below).",
        "",
        "| " + " | ".join(RUN_COLUMNS) + " |",
        "|" + "---|" * len(RUN_COLUMNS),
    ]
    for row in rows:
        rid = row["run"]
        text = f"`{rid[:8]}`" if rid else "—"
        row = dict(row, run=f"[{text}]({run_link(rid)})" if rid and run_link else text)
        lines.append("| " + " | ".join(str(row[c]) for c in RUN_COLUMNS) + " |")
    return "\n".join(lines)


def ui_base(tracking_uri: str, ui_url: str | None = None) -> str:
    """Where the MLflow UI of ``tracking_uri`` answers: the server itself for an http(s)
    store, else the address the printed ``mlflow ui`` command serves (127.0.0.1:5000)."""
    if ui_url:
        return ui_url.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_UI


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
"""


def render_html(markdown_text: str, out_dir: Path, title: str) -> str:
    """report.html: ``markdown_text`` as one self-contained page: the figures in ``out_dir``
    embedded as data URIs, the style inline, nothing fetched from the network."""
    import base64
    import html
    import re

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)

    def embed(m: re.Match) -> str:
        src = html.unescape(m.group(1))
        f = Path(out_dir) / src
        if "/" in src or not f.is_file():
            return m.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(f.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )


def write_report(
    data: SweepData, out_dir: str | Path, log_to_mlflow: bool = True, ui_url: str | None = None
) -> Path:
    """Write ``report.md``, ``report.html`` and the figures into ``out_dir``; attach them to
    the parent run (artifact folder ``report/``).

    Args:
        data: the sweep (:func:`suite.findings.data.load_sweep`).
        out_dir: the folder to write.
        log_to_mlflow: attach the folder to the sweep's parent run.
        ui_url: the MLflow UI that report.html's run links point to (default: :func:`ui_base`).

    Returns:
        The path of report.md (report.html lies beside it).
    """
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
    sections = _sections(data, written, extra)  # claims and verdict decided once for both
    (out / "report.md").write_text(_join([*sections, runs_markdown(data)]))
    base = ui_base(data.tracking_uri, ui_url)
    linked = _join([*sections, runs_markdown(data, partial(run_url, base, data.experiment_id))])
    (out / "report.html").write_text(
        render_html(linked, out, f"rnnbench report: sweep {data.name}")
    )
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
