"""The section "How each finding is decided": every rule printed from the docstring of the
code that applies it (margins filled in from the constants of its module), so the report
cannot drift from what decides.

Example:
    >>> print(rules()["Significance"][:40])
    Every comparison of two shares of runs (
"""

from __future__ import annotations

import inspect
import re

from suite.findings.claims import CLAIMS
from suite.findings.claims.base import combine
from suite.findings.claims.c2_vanishing import tanh_rescue
from suite.findings.claims.c3_gating import gating_by_task
from suite.findings.comparisons import beats, beyond, helped
from suite.findings.data import RunInfo
from suite.findings.outcomes import at_length, non_monotone, outcome
from suite.findings.runs import conclusive_failure, run_max_grad, spike_ratio, still_falling
from suite.findings.stats import compare, compare_slopes, slopes_same, wilson
from suite.findings.verdict import verdict
from tasks.gradients import decay_slope, trimmed_profile

RULE_FUNCTIONS = {
    "Solved, failed, undecided": outcome,
    "Incomplete runs": RunInfo.incomplete.fget,
    "Budget-limited vs plateaued": still_falling,
    "Conclusive failures": conclusive_failure,
    "Monotone in T": at_length,
    "Non-monotone outcomes": non_monotone,
    "Solve-rate intervals": wilson,
    "Significance": compare,
    "Helped": helped,
    "Same slope": slopes_same,
    "Slope comparisons": compare_slopes,
    "Gradient profile": trimmed_profile,
    "Gradient-decay slope": decay_slope,
    "Spikes": spike_ratio,
    "Largest pre-clip norm": run_max_grad,
    "Combining clauses": combine,
    "Clipping and tanh SimpleRNN": tanh_rescue,
    "Gating per task": gating_by_task,
    "Beyond": beyond,
    "Beats": beats,
    **{f"Claim {c.number}": type(c).decide for c in CLAIMS},
    "Verdict": verdict,
}


def _doc(fn) -> str:
    """A function's docstring up to its Args/Returns sections, on one line, the margins of its
    module filled in."""
    text = re.split(r"\n\s*(?:Args|Returns|Raises|Example):", inspect.getdoc(fn) or "")[0]
    text = " ".join(text.replace("``", "`").split())
    consts = {k: v for k, v in fn.__globals__.items() if k.isupper()}
    return text.format(**consts)


def rules() -> dict[str, str]:
    """Title -> the rule, as written in its function's docstring (margins filled in; a rule
    that cites another rule's function names that rule's title instead)."""
    titles = {fn.__name__: t for t, fn in RULE_FUNCTIONS.items() if "_" in fn.__name__}
    names = "|".join(map(re.escape, sorted(titles, key=len, reverse=True)))
    cited = re.compile(rf"\(({names})\)|\b({names})\b")

    def by_title(m: re.Match) -> str:
        return f'(rule "{titles[m[1]]}")' if m[1] else f'"{titles[m[2]]}"'

    return {name: cited.sub(by_title, _doc(fn)) for name, fn in RULE_FUNCTIONS.items()}


__all__ = ["RULE_FUNCTIONS", "rules"]
