"""Claim 10: always rescaling the gradient to a fixed norm neither fixes vanishing gradients
nor converges as well as plain training."""

from __future__ import annotations

import math

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.outcomes import SOLVED, groups, outcomes
from suite.findings.stats import compare, fmt_p, sign_test_greater

NORMALIZE = "normalize"


def is_normalize(clip: str) -> bool:
    return clip.partition("=")[0] == NORMALIZE and "+" not in clip


def _steps(r) -> float:
    """Steps to solve; a counted run that did not solve is slower than any that did."""
    if r.status == "solved":
        return float(r.metrics.get("steps_to_solve", r.metrics.get("steps", math.inf)))
    return math.inf


class NormalizingDoesNotFixVanishing(Claim):
    number = 10
    text = (
        "Rescaling the gradient to a fixed norm (normalize) does not fix vanishing gradients "
        "and costs convergence: the step no longer shrinks near a minimum."
    )
    clauses = ("tanh still fails", "costs convergence")
    per_optimizer = True

    def decide(self, data):
        """Claim 10, per optimizer, for each ``normalize=TAU`` treatment. *tanh still fails*:
        at every task@T where tanh SimpleRNN failed without clipping, normalize does not solve
        a larger share (rule "Significance": the clause fails when normalize's share beats
        "none"'s significantly; only indicative when it beats it without significance; not
        testable where tanh solved everything). *costs convergence*: over the
        configurations (any cell) that solve their task@T without clipping, pair each seed's
        run with its normalize run (same task, T, cell, seed): normalize is slower when it
        solves later or not at all; the clause holds when normalize is slower in more pairs
        than faster by a one-sided sign test p < 0.05 (ties dropped), fails when it is faster
        in at least as many pairs, and is only indicative in between."""
        norm = sorted({r.clip for r in data.finished if is_normalize(r.clip)})
        if not norm or not any(r.clip == "none" for r in data.finished):
            return Untestable("needs runs with normalize=TAU and without clipping.")
        outs, g = outcomes(data), groups(data)
        out = []
        for clip in norm:
            suffix = f" ({clip})" if len(norm) > 1 else ""
            # tanh still fails
            failed = [k for k, o in outs.items()
                      if k[2] == "simple_rnn" and k[3] == "none" and o.state == "failed"]  # fmt: skip
            lines, oks = [], []
            for t, T, c, _, o in sorted(failed):
                key = (t, T, c, clip, o)
                if key not in outs:
                    continue
                a, b = outs[key], outs[(t, T, c, "none", o)]
                cmp = compare(
                    a.solved, a.counted, b.solved, b.counted, lack1=a.lacking, lack2=b.lacking
                )
                lines.append(
                    f"{t}@{T}: {clip} {a.solved}/{a.counted} vs none {b.solved}/{b.counted} ({cmp.text})"
                )
                oks.append(
                    False if cmp.holds else None if cmp.holds is None and cmp.gain > 0 else True
                )
            if not oks:
                out.append(Clause("tanh still fails" + suffix, None,
                                  "tanh SimpleRNN failed no task@T without clipping that normalize also ran."))  # fmt: skip
            else:
                ok = False if False in oks else None if None in oks else True
                out.append(Clause("tanh still fails" + suffix, ok, "; ".join(lines) + "."))
            # costs convergence
            slower = faster = ties = 0
            for key, o in outs.items():
                if key[3] != "none" or o.state != SOLVED:
                    continue
                nkey = (*key[:3], clip, key[4])
                plain = {r.seed: r for r in g.get(key, []) if r.counted}
                normed = {r.seed: r for r in g.get(nkey, []) if r.counted}
                for seed in plain.keys() & normed.keys():
                    a, b = _steps(normed[seed]), _steps(plain[seed])
                    slower += a > b
                    faster += a < b
                    ties += a == b
            if not slower + faster + ties:
                out.append(Clause("costs convergence" + suffix, None,
                                  "no configuration solved without clipping and ran normalize."))  # fmt: skip
                continue
            p = sign_test_greater(slower, faster)
            txt = (f"where plain training solves, {clip} was slower (later or unsolved) in {slower} "
                   f"seed pair(s), faster in {faster}, tied in {ties} (sign test p = {fmt_p(p)})")  # fmt: skip
            if slower > faster and p < 0.05:
                out.append(Clause("costs convergence" + suffix, True, txt + "."))
            elif faster >= slower:
                out.append(Clause("costs convergence" + suffix, False, txt + "."))
            else:
                out.append(Clause("costs convergence" + suffix, None, f"{txt}: indicative."))
        return out
