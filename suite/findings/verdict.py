"""The verdict: the sentences at the top of the report, each derived from the numbers by the
same rules as the claims, each naming its evidence.

Example:
    >>> for sentence in verdict(load_sweep("sqlite:///mlflow.db", "rnnbench")):  # doctest: +SKIP
    ...     print("-", sentence)
"""

from __future__ import annotations

import math
import statistics

from suite.findings.claims.c2_vanishing import tanh_rescue
from suite.findings.comparisons import ORDER_MARGIN, beats, beyond, rank_cells
from suite.findings.data import GATED, SweepData, cell_key, clip_key, is_clip_setting
from suite.findings.outcomes import (
    UNDECIDED,
    bracket,
    lacking_runs,
    longest_solved,
    non_monotone,
    outcomes,
    setting_text,
    solved_set,
)
from suite.findings.runs import mean_clip_fraction, run_max_grad
from suite.findings.stats import compare, median, wilson


def _lengths(data: SweepData, task: str, cells, clips) -> str:
    """Per cell, its longest T solved on ``task`` (best setting), with the bracket in a
    critical sweep."""
    ls = longest_solved(data)
    nopt = len(data.optimizers)
    parts = []
    for cell in cells:
        got = [(T, k, o) for (t, c, k, o), T in ls.items() if (t, c) == (task, cell) and T]
        if not got:
            parts.append(f"{cell} none")
            continue
        T, k, o = max(got, key=lambda x: (x[0], -clips.index(x[1]) if x[1] in clips else 0))
        text = f"{cell} T = {T} ({setting_text(k, o, nopt)}"
        if data.is_critical:
            lo, hi = bracket(data, task, cell, k, o)
            text += f", bracket [{lo}, {hi if hi is not None else '–'})"
        parts.append(text + ")")
    return "; ".join(parts)


def verdict(data: SweepData) -> list[str]:
    """Sentences derived from the numbers, each naming its evidence, by the same rules as the
    claims ("Solved, failed, undecided", "Clipping and tanh SimpleRNN", "Beyond", "Beats",
    "Largest pre-clip norm"; a cell's longest T solved takes its best setting). Cells are
    ranked by share of counted runs solved in a grid sweep and by critical length in a
    critical-length sweep (where the bisection probes longer T for better cells, so shares
    rank nothing), and not at all when no run solved; each step of a ranking says whether it
    is significant; every "helped" or "goes further" carries its p (or "indicative")."""
    out: list[str] = []
    fin = data.finished
    if not fin:
        return ["No run finished, so the data supports no statement yet."]
    cells = sorted({r.cell for r in fin}, key=cell_key)
    clips = sorted({r.clip for r in fin}, key=clip_key)
    tasks = sorted({r.task for r in fin})
    seeds = data.expected_seeds() or len({r.seed for r in fin})
    solved_any = any(r.status == "solved" for r in fin)
    if seeds < 3:
        out.append(
            f"Only {seeds} seed(s) per configuration: read every statement below as an indication, "
            "not a conclusion (3 or more seeds are needed)."
        )
    capped, missing = lacking_runs(data)
    if capped or missing:
        undecided = sum(o.state in (UNDECIDED, None) for o in outcomes(data).values())
        parts = [
            f"{capped} run(s) were cut by the training-time cap before their step budget"
        ] * bool(capped)
        parts += [f"{missing} seed(s) have no finished run (crashed, killed or never run)"] * bool(
            missing
        )
        out.append(
            "; ".join(parts) + ": they count neither as solved nor as failed "
            f"({undecided} configuration(s) left undecided or without a result)."
        )
    if not solved_any:
        out.append(
            "No run solved its task, so no cell can be ranked and no clipping effect on solving can be shown."
        )
    what = (
        "Critical length (longest T solved, bracket up to the shortest T failed)"
        if data.is_critical
        else "Longest length solved"
    )
    for task in tasks:
        lengths = sorted({r.seq_len for r in data.runs if r.task == task})
        if data.is_critical:  # the spec's lengths, of which the bisection probed some
            lengths = sorted({T for b in data.critical.get("brackets", []) if b["task"] == task
                              for T in b["lens"]}) or lengths  # fmt: skip
        out.append(
            f"{what} on {task} (lengths {', '.join(map(str, lengths))}): "
            + _lengths(data, task, cells, clips)
            + "."
        )
    for task, cell, clip, opt, T_fail, T_solved in non_monotone(data):
        out.append(
            f"Not monotone in T: {cell} {setting_text(clip, opt, len(data.optimizers))} solved "
            f"{task}@{T_solved} but failed {task}@{T_fail}; lengths inferred by monotonicity "
            "(critical brackets, 'cannot with any setting') may be wrong there."
        )

    if "simple_rnn" in cells and "none" in clips and solved_any:
        res = tanh_rescue(data)
        for c, g in res.get("wins", {}).items():
            for t, T, cmp in g:
                out.append(
                    f"Clipping helped tanh SimpleRNN: with {c} it solved {t}@{T}, which it failed "
                    f"without clipping ({cmp.text})."
                )
        for c, g in res.get("indicative", {}).items():
            for t, T, cmp in g:
                out.append(
                    f"Clipping may have helped tanh SimpleRNN: with {c} it solved {t}@{T}, which it "
                    f"failed without clipping, but not significantly: {cmp.text}."
                )
        if not res.get("wins") and not res.get("indicative"):
            if res["tested"]:
                out.append(
                    "No clipping setting made tanh SimpleRNN solve a length it failed without clipping "
                    f"({len(res['tested'])} task@T failed without and solved by another cell; clip "
                    f"settings tried: {', '.join(res['clips'])})."
                )
            elif res["clips"]:
                out.append(
                    f"Clipping and tanh SimpleRNN: not testable here: {res.get('reason', '')}"
                )

    if solved_any:
        out += _ranking(data, cells, tasks)

    none = [r for r in fin if r.clip == "none" and r.counted]
    clipped = [r for r in fin if is_clip_setting(r.clip) and r.counted]
    d0 = [r for r in none if r.status == "diverged"]
    d1 = [r for r in clipped if r.status == "diverged"]
    if not d0 and not d1:
        out.append("No run diverged, so this data cannot show clipping preventing divergence.")
    else:
        out.append(
            f"Divergence: {len(d0)}/{len(none)} runs without clipping diverged"
            + (f" ({', '.join(sorted({r.cell for r in d0}, key=cell_key))})" if d0 else "")
            + f", {len(d1)}/{len(clipped)} with clipping"
            + (f" ({', '.join(sorted({r.cell for r in d1}, key=cell_key))})" if d1 else "")
            + "."
        )

    if "irnn" in cells and "none" in clips and len(clips) > 1:
        per = [f"{len(solved_set(data, 'irnn', c))} with {c}" for c in clips if c != "none"]
        sentence = (
            f"IRNN solved {len(solved_set(data, 'irnn', 'none'))} task@T without clipping, "
            + ", ".join(per)
        )
        if "simple_rnn" in cells:
            for task in tasks:
                r = beyond(data, task, ["irnn"], ["simple_rnn"], rival="tanh SimpleRNN")
                detail = r.text.split("; ", 1)[-1]
                if r.ok:
                    sentence += f"; on {task} it goes further than tanh SimpleRNN: {detail}"
                elif r.open:
                    sentence += (
                        f"; whether it goes further than tanh SimpleRNN on {task} is open: {detail}"
                    )
        out.append(sentence + ".")

    for cell in GATED:
        rs = [r for r in fin if r.cell == cell]
        if not rs:
            continue
        gmax = max((run_max_grad(r) for r in rs), key=lambda v: v if math.isfinite(v) else -1)
        fr = [mean_clip_fraction(r) for r in rs if r.clip != "none"]
        fr = [f for f in fr if math.isfinite(f)]
        out.append(
            f"{cell}: largest pre-clip gradient norm {gmax:.3g} (max over every window of every run)"
            + (
                f"; clipping fired on {statistics.mean(fr):.0%} of steps on average when enabled"
                if fr
                else ""
            )
            + "."
        )
    return out


def _chain(order, label, step) -> str:
    """``a (..) > [p = 0.01] b (..) ≥ [indicative (p = 0.2)] c (..)``: ">" only where the
    step is significant."""
    text = label(order[0])
    for a, b in zip(order, order[1:], strict=False):
        ok, why = step(a, b)
        text += f" {'>' if ok else '≥'} [{why}] {label(b)}"
    return text


def _ranking(data: SweepData, cells, tasks) -> list[str]:
    out = []
    fin = data.finished
    if data.is_critical:
        ls = longest_solved(data)
        for task in tasks:
            here = [c for c in cells if any(r.cell == c and r.task == task for r in fin)]
            score = {c: max((T or 0 for (t, cc, _, _), T in ls.items() if (t, cc) == (task, c)),
                            default=0) for c in here}  # fmt: skip
            order = sorted(here, key=lambda c: (-score[c], cell_key(c)))

            def step(a, b, task=task):
                r = beats(data, task, a, b)
                return r.ok, (f"p = {r.p:.2g}" if r.ok else "indicative" if r.open else "not shown")

            text = _chain(order, lambda c, score=score: f"{c} ({score[c] or 'none'})", step)
            out.append(
                f"Ranking of cells on {task} by critical length (longest T solved, best setting; "
                f"> where it goes further significantly): {text}."
            )
    else:
        score = {}
        for cell in cells:
            rs = [r for r in fin if r.cell == cell and r.counted]
            k = sum(r.status == "solved" for r in rs)
            steps = median(r.metrics.get("steps_to_solve") for r in rs if r.status == "solved")
            score[cell] = (k, len(rs), steps if math.isfinite(steps) else math.inf)
        order = sorted(cells, key=lambda c: (-score[c][0] / max(score[c][1], 1), score[c][2]))

        def label(c):
            lo, hi = wilson(score[c][0], score[c][1])
            return f"{c} ({score[c][0]}/{score[c][1]}, 95% CI {lo:.2f}-{hi:.2f})"

        def step(a, b):
            cmp = compare(score[a][0], score[a][1], score[b][0], score[b][1], ORDER_MARGIN)
            return cmp.holds, cmp.text

        out.append(
            "Ranking of cells by share of runs solved (> where the step is significant by the "
            f"{ORDER_MARGIN:.0%}-point rule): " + _chain(order, label, step) + "."
        )
    best = {t: rank_cells(data, t) for t in tasks}
    if len(tasks) > 1 and len({tuple(v[0]) for v in best.values() if v[0]}) > 1:
        out.append(
            "The best cell depends on the task: "
            + ", ".join(f"{t}: {' = '.join(c) or 'none solved'}" for t, (c, _) in best.items())
            + "."
        )
    return out
