"""The claims the suite exists to test (the README's "Report" section).

The rules live in :mod:`suite.findings.analysis`, with every other finding of the report (one copy of
each rule); this module is the claims API kept for callers:

- ``SUPPORTED``: every clause of the claim that the data can test holds;
- ``REFUTED``: none of them holds;
- ``MIXED``: the clauses disagree (say, on one task but not another);
- ``NOT TESTABLE``: the data cannot decide (the evidence says why).

Example:
    >>> from suite.findings.report import load_sweep                        # doctest: +SKIP
    >>> for c in check_claims(load_sweep("sqlite:///mlflow.db", "rnnbench")):  # doctest: +SKIP
    ...     print(c.number, c.finding, c.evidence)
"""

from __future__ import annotations

from suite.findings.analysis import (
    CLAIMS,
    GATED,
    MIXED,
    REFUTED,
    SUPPORTED,
    UNTESTABLE,
    Claim,
    check_claims,
)

__all__ = [
    "CLAIMS",
    "GATED",
    "MIXED",
    "REFUTED",
    "SUPPORTED",
    "UNTESTABLE",
    "Claim",
    "check_claims",
]
