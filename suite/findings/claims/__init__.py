"""The claims the suite exists to test (the README's "Report" section), one entry each.

Each claim is a small :class:`~suite.findings.claims.base.Claim` subclass in its own module
(``cN_topic.py``): its number, its text, the clauses it states and a ``decide(data)`` whose
docstring is the rule the report prints under "How each finding is decided". ``CLAIMS`` is the
registry: adding a claim is writing one such module and listing its class here.

A finding is SUPPORTED when every clause the data can test holds, REFUTED when none does,
MIXED when they disagree, NOT TESTABLE when none can be tested; it says how many of its
clauses were testable and how many runs it lacks.

Example:
    >>> from suite.findings.data import load_sweep                    # doctest: +SKIP
    >>> for f in check_claims(load_sweep("sqlite:///mlflow.db", "rnnbench")):  # doctest: +SKIP
    ...     print(f.number, f.label, f.evidence)
"""

from __future__ import annotations

from suite.findings.claims.base import (
    MIXED,
    REFUTED,
    SUPPORTED,
    UNTESTABLE,
    Claim,
    Clause,
    Finding,
    Untestable,
    combine,
)
from suite.findings.claims.c1_divergence import ClippingPreventsDivergence
from suite.findings.claims.c2_vanishing import ClippingLeavesVanishing
from suite.findings.claims.c3_gating import GatingSolvesLonger
from suite.findings.claims.c4_spikes import GatedStillSpike
from suite.findings.claims.c5_irnn import IrnnMatchesLstm
from suite.findings.claims.c6_task import DependsOnTask
from suite.findings.claims.c7_ortho import OrthoGoesFurther
from suite.findings.claims.c8_chrono import ChronoGoesFurther
from suite.findings.claims.c9_optimizer import ClippingMattersMoreUnderSgd
from suite.findings.claims.c10_normalize import NormalizingDoesNotFixVanishing
from suite.findings.claims.c11_omega import RegulariserGoesBeyondClipping
from suite.findings.claims.c12_identity import IdentityInitDoesTheWork
from suite.findings.claims.c13_attention import AttentionRemovesLength
from suite.findings.data import SweepData

CLAIMS: tuple[Claim, ...] = (
    ClippingPreventsDivergence(),
    ClippingLeavesVanishing(),
    GatingSolvesLonger(),
    GatedStillSpike(),
    IrnnMatchesLstm(),
    DependsOnTask(),
    OrthoGoesFurther(),
    ChronoGoesFurther(),
    ClippingMattersMoreUnderSgd(),
    NormalizingDoesNotFixVanishing(),
    RegulariserGoesBeyondClipping(),
    IdentityInitDoesTheWork(),
    AttentionRemovesLength(),
)


def check_claims(data: SweepData) -> list[Finding]:
    """Every claim of ``CLAIMS`` checked against ``data``, in order."""
    return [c.check(data) for c in CLAIMS]


__all__ = [
    "CLAIMS", "MIXED", "REFUTED", "SUPPORTED", "UNTESTABLE", "Claim", "Clause", "Finding",
    "Untestable", "check_claims", "combine",
]  # fmt: skip
