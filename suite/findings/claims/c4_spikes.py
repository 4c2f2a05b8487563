"""Claim 4: gating does not remove exploding gradients."""

from __future__ import annotations

import math
import statistics

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import helped
from suite.findings.data import GATED, clip_key, is_clip_setting
from suite.findings.runs import SPIKE_RATIO, mean_clip_fraction, spike_ratio
from suite.findings.stats import median


class GatedStillSpike(Claim):
    number = 4
    text = ("Gating does not remove exploding gradients: gated cells still see gradient spikes, "
            "so clipping can still help them.")  # fmt: skip
    clauses = ("spikes", "clipping helped")
    cells = GATED
    per_optimizer = True

    def decide(self, data):
        """Claim 4 (gated cells still see spikes; clipping can still help them). Spikes: more
        than half of the unclipped LSTM/GRU runs spike (rule "Spikes"). Helped: for at least
        one clip setting, the gated runs' share solved or share not diverged beats the
        unclipped runs' over the configurations both ran (rule "Helped"); indicatively only:
        not tested. Clauses combined as in "Combining clauses"."""
        fin = [r for r in data.finished if r.cell in GATED]
        none = [r for r in fin if r.clip == "none"]
        clips = sorted({r.clip for r in fin if is_clip_setting(r.clip)}, key=clip_key)
        if not none or not clips:
            return Untestable("needs gated runs with and without clipping.")
        ratios = [x for x in (spike_ratio(r) for r in none) if math.isfinite(x)]
        if ratios:
            k = sum(x >= SPIKE_RATIO for x in ratios)
            spikes = Clause("spikes", 2 * k > len(ratios),
                            f"{k}/{len(ratios)} unclipped LSTM/GRU runs spiked (max/median window "
                            f"ratio >= {SPIKE_RATIO:g}, first window excluded; median ratio "
                            f"{statistics.median(ratios):.3g}, largest {max(ratios):.3g}).")  # fmt: skip
        else:
            spikes = Clause(
                "spikes", None, "no unclipped gated run logged 2 or more gradient windows."
            )
        oks, parts = [], []
        for c in clips:
            solve = helped(data, GATED, c, lambda r: r.status == "solved")
            stable = helped(data, GATED, c, lambda r: r.status != "diverged")
            if solve is None:
                parts.append(f"{c}: no configuration ran both")
                continue
            oks += [solve.holds, stable.holds]
            frac = median(mean_clip_fraction(r) for r in fin if r.clip == c)
            parts.append(
                f"{c}: solved {solve.k1}/{solve.n1} vs {solve.k2}/{solve.n2} ({solve.text}), "
                f"not diverged {stable.k1}/{stable.n1} vs {stable.k2}/{stable.n2} ({stable.text})"
                + (f", fired on {frac:.0%} of steps (median run)" if math.isfinite(frac) else "")
            )
        ok = True if True in oks else None if None in oks or not oks else False
        help_ = Clause("clipping helped", ok, "with vs without clipping: " + "; ".join(parts) + ".")
        return [spikes, help_]
