"""Claim 1: clipping bounds exploding gradients."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import helped
from suite.findings.data import cell_key, clip_key, is_clip_setting
from suite.findings.stats import pct

RESCUE_SHARE = 0.75  # a clip setting prevents divergence when it rescues >= 75 % ...
RESCUE_NONE = 0.25  # ... and does not when it rescues <= 25 %


class ClippingPreventsDivergence(Claim):
    number = 1
    text = "Clipping bounds exploding gradients: runs that diverge without it train stably with it."
    clauses = ("prevents divergence",)
    per_optimizer = True

    def decide(self, data):
        """Claim 1 (clipping prevents divergence), one clause per clip setting. Pairs: each
        run that diverged without clipping with the counted run of the same task, T, cell,
        optimizer and seed under the clip setting. The setting *prevents* divergence when it
        rescues (does not diverge) >= {RESCUE_SHARE:.0%} of its pairs and, over the
        configurations where a run diverged without clipping, its share of runs not diverged
        beats the unclipped share by the significance rule; only indicatively: not tested.
        It *does not* when it rescues < {RESCUE_SHARE:.0%}. Clauses combined as in
        "Combining clauses"; NOT TESTABLE when no run diverged without clipping."""
        fin = data.finished
        none = [r for r in fin if r.clip == "none"]
        clipped = [r for r in fin if is_clip_setting(r.clip)]
        if not none or not clipped:
            return Untestable("needs runs both with and without clipping.")
        div = {(r.task, r.seq_len, r.cell, r.optimizer, r.seed)
               for r in none if r.counted and r.status == "diverged"}  # fmt: skip
        if not div:
            d = sum(r.status == "diverged" for r in clipped if r.counted)
            return Untestable(
                f"no run diverged without clipping (0/{sum(r.counted for r in none)}), so there was "
                f"nothing for clipping to prevent; {d}/{sum(r.counted for r in clipped)} clipped "
                "runs diverged."
            )
        configs = {k[:4] for k in div}
        at = data.where(lambda r: (r.task, r.seq_len, r.cell, r.optimizer) in configs)
        cells = sorted({k[2] for k in div}, key=cell_key)
        head = f"{len(div)}/{sum(r.counted for r in none)} runs diverged without clipping ({', '.join(cells)})"
        out = []
        for clip in sorted({r.clip for r in clipped}, key=clip_key):
            pair = [r for r in clipped if r.clip == clip and r.counted
                    and (r.task, r.seq_len, r.cell, r.optimizer, r.seed) in div]  # fmt: skip
            if not pair:
                out.append(Clause(clip, None, f"{head}; no counted {clip} run of the same seeds."))
                continue
            rescued = sum(r.status != "diverged" for r in pair)
            share = rescued / len(pair)
            cmp = helped(at, cells, clip, lambda r: r.status != "diverged")
            stable = (f"not diverged {cmp.k1}/{cmp.n1} with it vs {cmp.k2}/{cmp.n2} without "
                      f"({cmp.text})") if cmp else "no configuration ran both"  # fmt: skip
            txt = f"{head}; {clip} rescued {pct(rescued, len(pair))} of the same seeds; {stable}."
            if share >= RESCUE_SHARE:
                out.append(Clause(clip, True if cmp and cmp.holds else None, txt))
            else:
                kind = "none" if share <= RESCUE_NONE else "only some"
                out.append(
                    Clause(clip, False, txt.rstrip(".") + f" ({kind}, < {RESCUE_SHARE:.0%}).")
                )
        return out
