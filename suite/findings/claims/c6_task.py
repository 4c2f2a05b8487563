"""Claim 6: none of this is universal."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause
from suite.findings.claims.c3_gating import gating_by_task
from suite.findings.comparisons import ORDER_MARGIN, beats, rank_cells
from suite.findings.data import cell_key
from suite.findings.outcomes import solvable


class DependsOnTask(Claim):
    number = 6
    text = "None of this is universal: the outcome depends on the task."
    clauses = ("ranking", "claims")

    def decide(self, data):
        """Claim 6 (the outcome depends on the task), on the tasks where some configuration
        solved a length. Ranking: the order of two cells reverses between two tasks, each
        time by the rule "Beats" (significant both ways; only indicatively, or undecided
        for lacking runs: not tested); it fails when no pair of cells reverses even so. Claims: the length clause of claim 3
        holds on some task and fails on another; it fails when it comes out the same on every
        task where it is testable. Each clause needs two such tasks (else not testable);
        combined as in "Combining clauses"."""
        tasks = sorted({t for t, _ in solvable(data)})
        named = "; ".join(f"{t}: {rank_cells(data, t)[1]}" for t in tasks) or "none solved"
        if len(tasks) < 2:
            rank = Clause("ranking", None, f"needs lengths solved on two tasks ({named}).")
        else:
            best, weak = None, None
            for i, a in enumerate(tasks):
                for b in tasks[i + 1 :]:
                    common = sorted({r.cell for r in data.finished if r.task == a}
                                    & {r.cell for r in data.finished if r.task == b}, key=cell_key)  # fmt: skip
                    for x in common:
                        for y in common:
                            if x == y:
                                continue
                            ra, rb = beats(data, a, x, y), beats(data, b, y, x)
                            text = f"{x} > {y} on {a} ({ra.text}) but {y} > {x} on {b} ({rb.text})"
                            if ra.ok and rb.ok:
                                best = best or text
                            elif (ra.ok or ra.open) and (rb.ok or rb.open):
                                weak = weak or text
            if best:
                rank = Clause("ranking", True, f"{named}; {best}.")
            elif weak:
                rank = Clause("ranking", None, f"{named}; only indicatively: {weak}.")
            else:
                rank = Clause("ranking", False, f"{named}; no two cells swap order (by >= "
                              f"{ORDER_MARGIN * 100:.0f} points of share solved, or going further).")  # fmt: skip
        g = {t: c["length"] for t, c in gating_by_task(data).items()}
        tested = {t: cl.ok for t, cl in g.items() if cl.ok is not None}
        if len(tested) < 2:
            per = Clause(
                "claims", None, "claim 3's length clause is testable on fewer than two tasks."
            )
        else:
            hold = sorted(t for t, ok in tested.items() if ok)
            fail = sorted(t for t, ok in tested.items() if not ok)
            per = Clause("claims", bool(hold and fail),
                         f"claim 3's length clause holds on {', '.join(hold) or 'no task'}, fails on "
                         f"{', '.join(fail) or 'no task'}.")  # fmt: skip
        return [rank, per]
