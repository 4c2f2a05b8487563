"""Claim 2: clipping does nothing for vanishing gradients."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.data import SweepData, clip_key, is_clip_setting
from suite.findings.outcomes import (
    FAILED,
    SOLVED,
    at_text,
    failed_set,
    groups,
    outcomes,
    solvable,
)
from suite.findings.runs import run_slope
from suite.findings.stats import compare, compare_slopes

TANH = "simple_rnn"


def tanh_rescue(data: SweepData) -> dict:
    """Clause "still fails with clipping" of claim 2 (the verdict uses it too), per optimizer:
    the task@T tanh SimpleRNN failed without clipping and some configuration solved (a task@T
    no cell solved says nothing about vanishing gradients). A clip setting *rescues* one when
    it solved it and its share solved beats the unclipped share by the significance rule
    (only indicatively: an indicative rescue). The clause fails on a rescue; it holds when
    every clip setting failed every such task@T it decided (undecided ones named, not counted)
    and nothing rescued even indicatively; otherwise it is not testable. NOT TESTABLE when
    there is no such task@T."""
    outs = outcomes(data)
    fin = [r for r in data.finished if r.cell == TANH]
    clips = sorted({r.clip for r in fin if is_clip_setting(r.clip)}, key=clip_key)
    out = {"clips": clips, "tested": [], "unsolvable": [], "wins": {}, "indicative": {},
           "undecided": [], "failed": []}  # fmt: skip
    if not any(r.clip == "none" for r in fin) or not clips:
        out["reason"] = "needs simple_rnn runs with and without clipping."
        return out
    failed = failed_set(data, TANH, "none")
    ok = solvable(data)
    out["tested"] = sorted(failed & ok)
    out["unsolvable"] = sorted(failed - ok)
    for clip in clips:
        for task, T in out["tested"]:
            for opt in data.optimizers:
                base, o = (
                    outs.get((task, T, TANH, "none", opt)),
                    outs.get((task, T, TANH, clip, opt)),
                )
                if base is None or base.state != FAILED:
                    continue
                if o is None or o.state not in (SOLVED, FAILED):
                    out["undecided"].append((clip, task, T))
                elif o.state == FAILED:
                    out["failed"].append((clip, task, T))
                else:
                    cmp = compare(o.solved, o.counted, base.solved, base.counted,
                                  lack1=o.lacking, lack2=base.lacking)  # fmt: skip
                    where = "wins" if cmp.holds else "indicative"
                    out[where].setdefault(clip, []).append((task, T, cmp))
    if not failed:
        out["reason"] = "tanh SimpleRNN failed no task@T without clipping: nothing to rescue."
    elif not out["tested"]:
        out["reason"] = (
            f"no cell solved the task@T tanh SimpleRNN failed without clipping ({at_text(failed)})."
        )
    return out


def _rescues(got: dict) -> str:
    return "; ".join(
        f"{c}: " + ", ".join(f"{t}@{T} ({cmp.text})" for t, T, cmp in g) for c, g in got.items()
    )


class ClippingLeavesVanishing(Claim):
    number = 2
    text = ("Clipping does nothing for vanishing gradients: a tanh RNN that fails at some T "
            "without clipping still fails with it.")  # fmt: skip
    clauses = ("solving", "profile")
    cells = (TANH,)
    per_optimizer = True

    def decide(self, data):
        """Claim 2 (clipping does nothing for vanishing gradients), two clauses on the task@T
        tanh SimpleRNN failed without clipping and some configuration solved. Solving: no
        clip setting rescued tanh SimpleRNN on one of them (rule "Clipping and tanh
        SimpleRNN"). Profile: for each such task@T and clip setting, the per-run decay slopes
        of tanh SimpleRNN with the setting and without clipping are compared (rule "Slope
        comparisons"); the clause holds when they are the same in more than half of the
        pairs, even counting every indicative difference as a difference, fails when they
        differ significantly in at least half even counting every indicative one as the same,
        and is not tested otherwise."""
        res = tanh_rescue(data)
        if "reason" in res:
            return Untestable(res["reason"])
        tested = res["tested"]
        if res["wins"]:
            solve = Clause(
                "solving", False, f"clipping rescued tanh SimpleRNN: {_rescues(res['wins'])}."
            )
        elif res["indicative"]:
            solve = Clause("solving", None, "clipping solved what tanh SimpleRNN failed without, "
                           f"only indicatively: {_rescues(res['indicative'])}.")  # fmt: skip
        elif res["failed"]:
            solve = Clause("solving", True,
                           f"tanh SimpleRNN failed {at_text(tested)} without clipping (solved by "
                           f"another cell) and failed them with {', '.join(res['clips'])}.")  # fmt: skip
        else:
            solve = Clause("solving", None, "every clip setting is undecided where tanh SimpleRNN "
                           f"failed without clipping ({at_text(tested)}).")  # fmt: skip
        extra = []
        if res["undecided"]:
            extra.append(
                "undecided, not counted: "
                + ", ".join(f"{c} at {t}@{T}" for c, t, T in res["undecided"])
            )
        if res["unsolvable"]:
            extra.append(f"not counted: {at_text(res['unsolvable'])} (no cell solved them)")
        if extra:
            solve = Clause(
                solve.name, solve.ok, solve.text + " " + "; ".join(extra).capitalize() + "."
            )
        g = groups(data)
        same = differ = weak = 0
        pairs = []
        for task, T in tested:
            for opt in data.optimizers:
                base = [run_slope(r) for r in g.get((task, T, TANH, "none", opt), []) if r.finished]
                for clip in res["clips"]:
                    with_ = [
                        run_slope(r) for r in g.get((task, T, TANH, clip, opt), []) if r.finished
                    ]
                    cmp = compare_slopes(with_, base)
                    if not cmp.testable:
                        continue
                    same += cmp.agree is True
                    differ += cmp.agree is False
                    weak += cmp.agree is None
                    pairs.append(f"{task}@{T} {cmp.text(f'with {clip}', 'without')}")
        n = same + differ + weak
        if not n:
            prof = Clause("profile", None, "no gradient profile logged for those task@T.")
        else:
            ok = True if 2 * same > n else False if 2 * (same + weak) <= n else None
            prof = Clause("profile", ok, f"decay slopes (log10 per 100 steps, first evaluation, "
                          f"median over runs) the same in {same}/{n} pairs"
                          f"{f' ({weak} differ only indicatively)' if weak else ''}: "
                          f"{'; '.join(pairs)}.")  # fmt: skip
        return [solve, prof]
