"""Claim 12: a ReLU or leaky-ReLU RNN does what IRNN does only with the identity init."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import beyond
from suite.findings.outcomes import fmt_T, longest

TASK = "adding"


class IdentityInitDoesTheWork(Claim):
    number = 12
    text = ("A ReLU or leaky-ReLU RNN does what IRNN does only with the identity initialisation: "
            "ReLU with Keras's default (orthogonal) recurrent init falls short of IRNN on the "
            "adding problem, leaky ReLU with the identity init matches it.")  # fmt: skip
    clauses = ("relu needs identity", "leaky matches irnn")
    cells = ("irnn", "relu_rnn", "leaky_rnn")
    tasks = (TASK,)
    per_optimizer = True

    def decide(self, data):
        """Claim 12 (the identity initialisation, not the activation, does IRNN's work), on
        the adding task. ReLU needs identity: IRNN goes further than relu_rnn, the same ReLU
        RNN with Keras's orthogonal recurrent init (rule "Beyond", IRNN against relu_rnn).
        Leaky matches IRNN: IRNN solves no length leaky_rnn (leaky ReLU, identity init)
        cannot (rule "Beyond", IRNN against leaky_rnn: the clause holds when that fails,
        fails when it holds); NOT TESTABLE when neither solved any length. Clauses combined
        as in "Combining clauses"."""
        adding = data.where(lambda r: r.task == TASK)
        cells = {r.cell for r in adding.finished}
        if "irnn" not in cells or not cells & {"relu_rnn", "leaky_rnn"}:
            return Untestable("needs irnn and relu_rnn or leaky_rnn runs on the adding task.")
        L = {c: longest(adding, TASK, [c]) for c in ("irnn", "relu_rnn", "leaky_rnn")}
        head = "longest T solved: " + ", ".join(
            f"{c} {fmt_T(T)}" for c, T in L.items() if c in cells
        )
        if "relu_rnn" in cells:
            r = beyond(adding, TASK, ["irnn"], ["relu_rnn"])
            relu = Clause("relu needs identity", r.ok, f"{head}; {r.text}.")
        else:
            relu = Clause("relu needs identity", None, "no relu_rnn runs on adding.")
        if "leaky_rnn" not in cells:
            leaky = Clause("leaky matches irnn", None, "no leaky_rnn runs on adding.")
        elif not (L["irnn"] or L["leaky_rnn"]):
            leaky = Clause("leaky matches irnn", None,
                           f"{head}; neither irnn nor leaky_rnn solved any length.")  # fmt: skip
        else:
            ahead = beyond(adding, TASK, ["irnn"], ["leaky_rnn"])
            ok = None if ahead.ok is None else not ahead.ok
            leaky = Clause(
                "leaky matches irnn", ok, f"{head}; irnn beyond leaky_rnn? {ahead.text}."
            )
        return [relu, leaky]
