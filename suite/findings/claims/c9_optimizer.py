"""Claim 9: clipping matters more under SGD than under Adam."""

from __future__ import annotations

from suite.findings.claims.base import Claim, Clause, Untestable
from suite.findings.comparisons import helped
from suite.findings.data import clip_key, is_clip_setting
from suite.findings.stats import HELP_MARGIN


def optimizer_name(label: str) -> str:
    """``sgd`` of ``sgd(lr=0.01,momentum=0.9)``."""
    return label.split("(", 1)[0]


def _effect(cmp) -> str:
    return f"{cmp.k1}/{cmp.n1} with vs {cmp.k2}/{cmp.n2} without ({cmp.text})"


class ClippingMattersMoreUnderSgd(Claim):
    number = 9
    text = (
        "Clipping matters more under SGD than under Adam: Adam's per-coordinate scaling already "
        "bounds the step, so clipping prevents more divergences and gains more solves under SGD."
    )
    clauses = ("divergences prevented", "solves gained")

    def decide(self, data):
        """Claim 9, two clauses per clip setting: *divergences prevented* (share of counted
        runs that did not diverge) and *solves gained* (share solved). Under each optimizer,
        the clip setting's share is compared with "none" over the configurations that ran
        both (rule "Significance"). A clause *holds* when clipping helped under SGD by the
        significance rule and its gain there is at least {HELP_MARGIN:.0%} points above its
        gain under Adam; it *fails* when clipping helped under Adam at least as much as under
        SGD, or helped under neither (its share under SGD stays below the margin); only
        indicative otherwise. NOT TESTABLE without runs of both optimizers, with and without
        clipping; a clause is not testable when no run under either optimizer diverged
        without clipping (divergences) or no run solved at all (solves)."""
        by_name = {optimizer_name(o): o for o in data.optimizers}
        if "sgd" not in by_name or "adam" not in by_name:
            return Untestable(
                f"needs runs under both adam and sgd (this sweep: {', '.join(data.optimizers)})."
            )
        parts = {n: data.where(lambda r, o=by_name[n]: r.optimizer == o) for n in ("sgd", "adam")}
        clips = sorted({r.clip for r in data.finished if is_clip_setting(r.clip)}, key=clip_key)
        cells = sorted({r.cell for r in data.runs})
        if not clips or not any(r.clip == "none" for r in data.finished):
            return Untestable("needs runs both with and without clipping.")
        checks = (
            ("divergences prevented", lambda r: r.status != "diverged", "not diverged",
             lambda r: r.clip == "none" and r.status == "diverged"),
            ("solves gained", lambda r: r.status == "solved", "solved",
             lambda r: r.status == "solved"),
        )  # fmt: skip
        out = []
        for clip in clips:
            for name, keep, what, needed in checks:
                label = f"{name} ({clip})" if len(clips) > 1 else name
                if not any(needed(r) and r.counted for r in data.runs):
                    why = (
                        "no run diverged without clipping" if "diverg" in name else "no run solved"
                    )
                    out.append(Clause(label, None, f"{why}: nothing to compare."))
                    continue
                cmp = {n: helped(part, cells, clip, keep) for n, part in parts.items()}
                if cmp["sgd"] is None or cmp["adam"] is None:
                    out.append(
                        Clause(
                            label, None, f"{clip} and none did not both run under each optimizer."
                        )
                    )
                    continue
                s, a = cmp["sgd"], cmp["adam"]
                txt = f"{what} under {by_name['sgd']}: {_effect(s)}; under adam: {_effect(a)}."
                if s.holds and s.gain - a.gain >= HELP_MARGIN - 1e-12:
                    out.append(Clause(label, True, txt))
                elif (a.holds and a.gain >= s.gain) or s.holds is False:
                    out.append(Clause(label, False, txt))
                else:
                    out.append(Clause(label, None, txt + " Only indicative."))
        return out
