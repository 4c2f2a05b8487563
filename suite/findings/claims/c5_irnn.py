"""Claim 5: IRNN matches LSTM on the adding problem, but needs clipping."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import beyond, helped
from suite.findings.data import clip_key, is_clip_setting
from suite.findings.outcomes import fmt_T, longest

TASK = "adding"


class IrnnMatchesLstm(Claim):
    number = 5
    text = ("IRNN (ReLU + identity) matches LSTM on the adding problem where tanh fails, but needs "
            "clipping to stay stable.")  # fmt: skip
    clauses = ("matches LSTM", "where tanh fails", "needs clipping")
    cells = ("irnn", "lstm", "simple_rnn")
    tasks = (TASK,)
    per_optimizer = True

    def decide(self, data):
        """Claim 5 (IRNN matches LSTM on adding where tanh fails; needs clipping), on the
        adding task. Matches LSTM: LSTM solves no length IRNN cannot (rule "Beyond", LSTM
        against IRNN: the clause holds when that fails, fails when it holds); NOT TESTABLE
        when neither solved any length. Where tanh fails: IRNN goes further than tanh
        SimpleRNN (rule "Beyond"). Needs clipping: for at least one clip setting, IRNN's share
        of runs not diverged beats the unclipped share (rule "Helped"). Clauses combined as in
        "Combining clauses"."""
        adding = data.where(lambda r: r.task == TASK)
        cells = {r.cell for r in adding.finished}
        if not {"irnn", "lstm"} <= cells:
            return Untestable("needs irnn and lstm runs on the adding task.")
        L = {c: longest(adding, TASK, [c]) for c in ("irnn", "lstm", "simple_rnn")}
        head = ", ".join(f"{c} {fmt_T(T)}" for c, T in L.items())
        ahead = beyond(adding, TASK, ["lstm"], ["irnn"])
        if not (L["irnn"] or L["lstm"]):
            match = Clause(
                "matches LSTM",
                None,
                f"longest T solved: {head}; neither irnn nor lstm solved any length.",
            )
        else:
            ok = None if ahead.ok is None else not ahead.ok
            match = Clause(
                "matches LSTM", ok, f"longest T solved: {head}; lstm beyond irnn? {ahead.text}."
            )
        if "simple_rnn" in cells:
            r = beyond(adding, TASK, ["irnn"], ["simple_rnn"], rival="tanh")
            tanh = Clause("where tanh fails", r.ok, r.text + ".")
        else:
            tanh = Clause("where tanh fails", None, "no simple_rnn runs on adding.")
        oks, parts = [], []
        for c in sorted(
            {r.clip for r in adding.finished if r.cell == "irnn" and is_clip_setting(r.clip)},
            key=clip_key,
        ):
            cmp = helped(adding, ["irnn"], c, lambda r: r.status != "diverged")
            if cmp is None:
                continue
            oks.append(cmp.holds)
            parts.append(
                f"{c}: irnn not diverged {cmp.k1}/{cmp.n1} vs {cmp.k2}/{cmp.n2} without ({cmp.text})"
            )
        if not oks:
            stab = Clause(
                "needs clipping", None, "needs irnn runs on adding with and without clipping."
            )
        else:
            ok = True if True in oks else None if None in oks else False
            stab = Clause("needs clipping", ok, "; ".join(parts) + ".")
        return [match, tanh, stab]
