"""The answer: the report's opening lines, the question answered from this sweep's runs.

*Can gradient clipping make a vanilla (tanh) RNN learn long-range dependencies the way LSTM
and GRU do?* The answer is assembled from what the other findings modules decided, never
written by hand: whether clipping rescued tanh SimpleRNN on a task@T it failed without
(:func:`suite.findings.claims.c2_vanishing.tanh_rescue`, the rule "Clipping and tanh
SimpleRNN"), how far each cell got per task (:func:`suite.findings.outcomes.longest_solved`),
and the findings of claims 2 and 3. Claims the sweep cannot test are listed apart, one line
each with the reason (:func:`untestable_lines`).

Example:
    >>> data = load_sweep("sqlite:///mlflow.db", "rnnbench")           # doctest: +SKIP
    >>> print("\\n".join(answer(data, check_claims(data))))              # doctest: +SKIP
    No: clipping made tanh SimpleRNN solve none of the 2 task@T it failed without clipping ...
"""

from __future__ import annotations

from suite.findings.claims import SUPPORTED, UNTESTABLE, Finding
from suite.findings.claims.c2_vanishing import TANH, tanh_rescue
from suite.findings.data import GATED, SweepData, cell_key
from suite.findings.outcomes import at_text, longest_solved
from suite.findings.stats import compare

QUESTION = (
    "Can gradient clipping make a vanilla (tanh) RNN learn long-range dependencies the way "
    "LSTM and GRU do?"
)


def _rescues(got: dict) -> str:
    return "; ".join(
        f"{c} on " + ", ".join(f"{t}@{T} ({cmp.text})" for t, T, cmp in g) for c, g in got.items()
    )


def _headline(data: SweepData) -> str:
    """The direct answer, from the rule "Clipping and tanh SimpleRNN"."""
    res = tanh_rescue(data)
    if res.get("wins"):
        return (
            "Partly, in this sweep: clipping made tanh SimpleRNN solve what it failed without "
            f"clipping: {_rescues(res['wins'])}."
        )
    if res.get("indicative"):
        return (
            "Not shown: clipping may have helped tanh SimpleRNN, but no contrast is significant "
            f"({_rescues(res['indicative'])}); more seeds can decide it."
        )
    if res.get("tested"):
        n, at = len(res["tested"]), at_text(res["tested"])
        clips = ", ".join(res["clips"])
        if n == 1:
            return (
                f"No: with {clips}, tanh SimpleRNN still failed {at}, which it failed without "
                "clipping and another cell solved."
            )
        return (
            f"No: with {clips}, tanh SimpleRNN solved none of the {n} task@T it failed without "
            f"clipping and another cell solved ({at})."
        )
    return f"This sweep cannot answer it: {res.get('reason', 'no tanh SimpleRNN runs.')}"


def _reach(data: SweepData) -> list[str]:
    """Per task: how far each cell got (longest T solved with its best setting)."""
    ls = longest_solved(data)
    cells = sorted({r.cell for r in data.finished}, key=cell_key)
    out = []
    for task in sorted({r.task for r in data.finished}):
        parts = []
        for cell in cells:
            got = [T for (t, c, _, _), T in ls.items() if (t, c) == (task, cell) and T]
            parts.append(f"{cell} {max(got) if got else 'none'}")
        lengths = sorted({r.seq_len for r in data.finished if r.task == task})
        out.append(
            f"Longest T solved on {task} (of {', '.join(map(str, lengths))}), best setting: "
            + ", ".join(parts)
            + "."
        )
    return out


def answer(data: SweepData, findings: list[Finding]) -> list[str]:
    """The answer to :data:`QUESTION` from ``data``: the direct answer, how far each cell got
    per task, and what claims 2 (clipping and vanishing gradients) and 3 (gating) found.

    Args:
        data: the sweep.
        findings: ``check_claims(data)``, in claim order.

    Returns:
        Sentences, the first of them the direct answer.
    """
    if not data.finished:
        return ["No run finished, so the data answers nothing yet."]
    lines = [_headline(data), *_reach(data)]
    by_number = {f.number: f for f in findings}
    why = []
    for n, what in (
        (2, "clipping leaves vanishing gradients"),
        (3, "gating mitigates vanishing gradients"),
    ):
        f = by_number.get(n)
        if f is not None and f.finding != UNTESTABLE:
            why.append(f"claim {n} ({what}): {f.label}")
    if why:
        lines.append("Why: " + "; ".join(why) + ".")
    seeds = data.expected_seeds() or len({r.seed for r in data.finished})
    best = compare(seeds, seeds, 0, seeds)  # the strongest contrast these seeds allow
    if best.holds is not True:
        lines.append(
            f"With {seeds} seed(s) per configuration even {seeds}/{seeds} vs 0/{seeds} is "
            f"{best.text}: no solve-rate contrast between two configurations can be "
            "significant here; a rerun with more seeds can decide them."
        )
    decided = sum(f.finding != UNTESTABLE for f in findings)
    gated = sorted({r.cell for r in data.finished if r.cell in GATED}, key=cell_key)
    if TANH not in {r.cell for r in data.finished} or not gated:
        lines.append("This sweep lacks tanh SimpleRNN or a gated cell: it cannot compare them.")
    lines.append(f"{decided} of {len(findings)} claims decided; the others are listed apart.")
    return lines


def untestable_lines(findings: list[Finding]) -> list[str]:
    """One line per claim the sweep cannot test: its number, text and the reason."""
    return [
        f"Claim {f.number}: {f.text} Why not: {f.reason}"
        for f in findings
        if f.finding == UNTESTABLE
    ]


def decided(findings: list[Finding]) -> list[Finding]:
    """The findings the data decided (SUPPORTED, REFUTED or MIXED)."""
    return [f for f in findings if f.finding != UNTESTABLE]


__all__ = ["QUESTION", "SUPPORTED", "answer", "decided", "untestable_lines"]
