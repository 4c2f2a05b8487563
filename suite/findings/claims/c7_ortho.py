"""Claim 7: an orthogonal vanilla RNN goes further than tanh, without gates."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import beyond


def beyond_per_task(data, cell: str, rival: str):
    """The "Beyond" clause of ``cell`` against ``rival`` on every task both ran."""
    have = {r.cell for r in data.finished}
    if not {cell, rival} <= have:
        return Untestable(f"needs {cell} and {rival} runs.")
    tasks = sorted({r.task for r in data.finished if r.cell == cell}
                   & {r.task for r in data.finished if r.cell == rival})  # fmt: skip
    out = []
    for t in tasks:
        r = beyond(data, t, [cell], [rival])
        out.append(Clause(t, r.ok, r.text + "."))
    return out or Untestable(f"{cell} and {rival} ran on no common task.")


class OrthoGoesFurther(Claim):
    number = 7
    text = ("A vanilla RNN whose recurrent matrix stays orthogonal solves lengths that tanh RNN "
            "cannot, without gates.")  # fmt: skip
    clauses = ("beyond tanh",)
    cells = ("ortho_rnn", "simple_rnn")

    def decide(self, data):
        """Claim 7 (an orthogonal vanilla RNN goes further than tanh SimpleRNN, without
        gates): on every task both ran, ortho_rnn solves a length tanh SimpleRNN cannot with
        any setting (rule "Beyond", per task); combined over tasks as in "Combining
        clauses"."""
        return beyond_per_task(data, "ortho_rnn", "simple_rnn")
