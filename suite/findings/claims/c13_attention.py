"""Claim 13: attention removes the length problem on these tasks."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import beyond

ATTENTION = "transformer"


class AttentionRemovesLength(Claim):
    number = 13
    text = ("Attention removes the length problem on these tasks: a small causal transformer "
            "solves lengths that no recurrent cell solves.")  # fmt: skip
    clauses = ("beyond every recurrent cell",)

    def decide(self, data):
        """Claim 13 (attention removes the length problem): on every task the transformer
        and at least one recurrent cell ran, the transformer solves a length that none of
        the recurrent cells can with any setting (rule "Beyond", the transformer against
        every recurrent cell of the sweep, per task); combined over tasks as in "Combining
        clauses". What attention costs per step as T grows is measured by `rnnbench perf`,
        not decided here."""
        have = {r.cell for r in data.finished}
        recurrent = sorted(have - {ATTENTION})
        if ATTENTION not in have or not recurrent:
            return Untestable(f"needs {ATTENTION} runs and runs of a recurrent cell.")
        tasks = sorted({r.task for r in data.finished if r.cell == ATTENTION}
                       & {r.task for r in data.finished if r.cell != ATTENTION})  # fmt: skip
        out = []
        for t in tasks:
            r = beyond(data, t, [ATTENTION], recurrent, rival="every recurrent cell")
            out.append(Clause(t, r.ok, r.text + "."))
        return out or Untestable(f"{ATTENTION} and the recurrent cells ran on no common task.")
