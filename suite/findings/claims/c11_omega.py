"""Claim 11: clipping plus Pascanu et al.'s regulariser Ω lets a tanh RNN solve lengths that
clipping alone cannot."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.outcomes import outcomes
from suite.findings.stats import compare


class RegulariserGoesBeyondClipping(Claim):
    number = 11
    text = (
        "Clipping plus Pascanu et al.'s regulariser lets a tanh RNN solve lengths that "
        "clipping alone cannot (their SGD-CR vs SGD-C)."
    )
    clauses = ("beyond clipping alone",)
    cells = ("simple_rnn",)
    per_optimizer = True

    def decide(self, data):
        """Claim 11, per optimizer, for each treatment ``CLIP+omega=ALPHA`` of tanh
        SimpleRNN against ``CLIP`` alone at the same task@T: the clause *holds* when at some
        task@T clipping alone *cannot* solve it (failed, and would still fail if its
        inconclusive failures had solved: rule "Conclusive failures") and the regulariser's
        share solved beats clipping alone's by the significance rule; it *fails* when at every
        task@T where clipping alone failed, the regulariser's share does not beat it by the
        margin (even if the runs it lacks had gone its way); otherwise (clipping alone failed
        only inconclusively, or the gain is not significant) only indicative. NOT TESTABLE
        without tanh runs of both, or when clipping alone solved every task@T."""
        outs = outcomes(data)
        pairs = []
        for key in outs:
            t, T, c, clip, opt = key
            base, sep, _ = clip.partition("+omega=")
            if c == "simple_rnn" and sep and (t, T, c, base, opt) in outs:
                pairs.append((key, (t, T, c, base, opt)))
        if not pairs:
            return Untestable(
                "needs tanh SimpleRNN runs with CLIP+omega=ALPHA and with CLIP alone."
            )
        lines, oks = [], []
        for reg, base in sorted(pairs):
            a, b = outs[reg], outs[base]
            if b.state != "failed":
                continue
            cmp = compare(
                a.solved, a.counted, b.solved, b.counted, lack1=a.lacking, lack2=b.lacking
            )
            how = "cannot" if b.cannot else "failed inconclusively"
            lines.append(f"{reg[0]}@{reg[1]}: {reg[3]} {a.solved}/{a.counted} vs {base[3]} alone "
                         f"{b.solved}/{b.counted} ({how}; {cmp.text})")  # fmt: skip
            if cmp.holds and b.cannot:
                oks.append(True)
            elif cmp.holds is False:
                oks.append(False)
            else:
                oks.append(None)
        if not oks:
            return Untestable(
                "clipping alone solved every task@T the regulariser ran: nothing to go beyond."
            )
        ok = True if True in oks else False if all(x is False for x in oks) else None
        return [Clause("beyond clipping alone", ok, "; ".join(lines) + ".")]
