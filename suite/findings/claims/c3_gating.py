"""Claim 3: gating mitigates vanishing gradients."""

from __future__ import annotations

import math

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import beyond
from suite.findings.data import GATED, SweepData
from suite.findings.runs import run_slope
from suite.findings.stats import compare_slopes

TANH = "simple_rnn"


def gating_by_task(data: SweepData) -> dict[str, dict[str, Clause]]:
    """Per task, the two clauses of claim 3. Length: a gated cell goes further than tanh
    SimpleRNN (rule "Beyond", the gated cells' best configuration against every setting of
    tanh SimpleRNN). Profile: at the longest T where both gated and tanh SimpleRNN runs logged
    gradient profiles (in a critical sweep, a length both brackets probed), the gated runs'
    decay slopes are flatter than tanh SimpleRNN's (rule "Slope comparisons": flatter
    significantly; indicatively: not tested); it fails when they are the same or steeper."""
    fin = data.finished
    cells = [c for c in GATED if any(r.cell == c for r in fin)]
    out = {}
    for task in sorted({r.task for r in fin}):
        slopes = [(r, run_slope(r)) for r in fin if r.task == task]
        slopes = [(r, x) for r, x in slopes if math.isfinite(x)]
        length = beyond(data, task, cells, [TANH], name="gated", rival="tanh")
        common = {r.seq_len for r, _ in slopes if r.cell in GATED} & {
            r.seq_len for r, _ in slopes if r.cell == TANH
        }
        if common:
            T = max(common)
            s_gate = [x for r, x in slopes if r.seq_len == T and r.cell in GATED]
            s_tanh = [x for r, x in slopes if r.seq_len == T and r.cell == TANH]
            cmp = compare_slopes(s_gate, s_tanh)
            prof = Clause(
                "profile", cmp.flatter, f"decay at {task}@{T} {cmp.text('gated', 'tanh')}"
            )
        else:
            prof = Clause("profile", None, f"no length of {task} with decay slopes of both")
        out[task] = {"length": Clause("length", length.ok, length.text), "profile": prof}
    return out


class GatingSolvesLonger(Claim):
    number = 3
    text = ("Gating (LSTM, GRU) mitigates vanishing gradients: gated cells solve longer T, with "
            "flatter gradient profiles.")  # fmt: skip
    clauses = ("length", "profile")
    cells = (TANH, *GATED)

    def decide(self, data):
        """Claim 3 (gated cells solve longer T, with flatter profiles): the length and profile
        clauses of "Gating per task" on every task, combined as in "Combining clauses" (MIXED
        when they disagree on a task or between tasks)."""
        cells = {r.cell for r in data.finished}
        if TANH not in cells or not cells & set(GATED):
            return Untestable("needs simple_rnn and at least one gated cell.")
        out = []
        for task, c in gating_by_task(data).items():
            out += [Clause(f"{task} {name}", cl.ok, cl.text) for name, cl in c.items()]
        return out
