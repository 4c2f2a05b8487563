"""Claims 9-11 (issue [optimizers]): clipping under SGD vs Adam, normalising the gradient,
Pascanu et al.'s regulariser; each reaches SUPPORTED, REFUTED, MIXED and NOT TESTABLE from
hand-logged runs in a real sqlite store, and 3 seeds stay indicative."""

from __future__ import annotations

import pytest
from test_claims import SGD, _claims, _sweep

N, C, NORM = "none", "global_clipnorm=1", "normalize=1"
OMEGA = {"params": {"omega": 2.0}}
FIVE = (0, 1, 2, 3, 4)


def _finding(uri, rows, n, seeds=FIVE):
    return _claims(_sweep(uri, rows, seeds=seeds))[n]


def _sgd(**extra):
    return {"params": {**SGD, **extra.pop("params", {})}, **extra}


CLAIM9 = {
    "SUPPORTED": [  # SGD: clipping prevents every divergence and gains every solve; Adam: nothing to gain
        ("adding", 10, "irnn", N, "solved"), ("adding", 10, "irnn", C, "solved"),
        ("adding", 10, "irnn", N, "diverged", _sgd()), ("adding", 10, "irnn", C, "solved", _sgd()),
    ],
    "REFUTED": [  # clipping matters under Adam, not under SGD
        ("adding", 10, "irnn", N, "diverged"), ("adding", 10, "irnn", C, "solved"),
        ("adding", 10, "irnn", N, "solved", _sgd()), ("adding", 10, "irnn", C, "solved", _sgd()),
    ],
    "MIXED": [  # SGD: clipping prevents divergence but solves nothing more; Adam: it gains solves
        ("adding", 10, "irnn", N, "unsolved"), ("adding", 10, "irnn", C, "solved"),
        ("adding", 10, "irnn", N, "diverged", _sgd()), ("adding", 10, "irnn", C, "unsolved", _sgd()),
    ],
    "NOT TESTABLE": [  # one optimizer only
        ("adding", 10, "irnn", N, "diverged"), ("adding", 10, "irnn", C, "solved"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("expected", list(CLAIM9))
def test_claim9_reaches_each_finding(sqlite_uri, expected):
    f = _finding(sqlite_uri, CLAIM9[expected], 9)
    assert f.finding == expected, f.evidence
    if expected != "NOT TESTABLE":
        assert "sgd(lr=0.01,momentum=0.9)" in f.evidence and "under adam" in f.evidence


def test_claim9_on_three_seeds_is_only_indicative(sqlite_uri):
    f = _finding(sqlite_uri, CLAIM9["SUPPORTED"], 9, seeds=(0, 1, 2))
    assert f.finding == "NOT TESTABLE", f.evidence  # 3/3 vs 0/3: p = 0.05, not < 0.05
    assert "indicative (p = 0.05)" in f.evidence


CLAIM10 = {
    "SUPPORTED": [  # tanh fails either way; where lstm solves, normalize solves later
        ("adding", 10, "simple_rnn", N, "unsolved"), ("adding", 10, "simple_rnn", NORM, "unsolved"),
        ("adding", 10, "lstm", N, "solved", {"steps": 100}),
        ("adding", 10, "lstm", NORM, "solved", {"steps": 500}),
    ],
    "REFUTED": [  # normalize makes tanh solve, and lstm solve sooner
        ("adding", 10, "simple_rnn", N, "unsolved"), ("adding", 10, "simple_rnn", NORM, "solved"),
        ("adding", 10, "lstm", N, "solved", {"steps": 500}),
        ("adding", 10, "lstm", NORM, "solved", {"steps": 100}),
    ],
    "MIXED": [  # tanh still fails, but normalize converges sooner
        ("adding", 10, "simple_rnn", N, "unsolved"), ("adding", 10, "simple_rnn", NORM, "unsolved"),
        ("adding", 10, "lstm", N, "solved", {"steps": 500}),
        ("adding", 10, "lstm", NORM, "solved", {"steps": 100}),
    ],
    "NOT TESTABLE": [  # no normalize run
        ("adding", 10, "simple_rnn", N, "unsolved"), ("adding", 10, "lstm", N, "solved"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("expected", list(CLAIM10))
def test_claim10_reaches_each_finding(sqlite_uri, expected):
    f = _finding(sqlite_uri, CLAIM10[expected], 10)
    assert f.finding == expected, f.evidence


def test_claim10_convergence_uses_a_sign_test(sqlite_uri):
    f = _finding(sqlite_uri, CLAIM10["SUPPORTED"], 10)
    assert "slower (later or unsolved) in 5 seed pair(s), faster in 0" in f.evidence
    assert "sign test p = 0.031" in f.evidence  # 1/32
    from suite.findings.stats import sign_test_greater

    assert sign_test_greater(5, 0) == pytest.approx(1 / 32)
    assert sign_test_greater(3, 3) == pytest.approx(42 / 64)


CLAIM11 = {
    "SUPPORTED": [  # clip alone plateaus; clip + omega solves
        ("adding", 10, "simple_rnn", C, "unsolved"), ("adding", 10, "simple_rnn", C, "solved", OMEGA),
    ],
    "REFUTED": [
        ("adding", 10, "simple_rnn", C, "unsolved"), ("adding", 10, "simple_rnn", C, "unsolved", OMEGA),
    ],
    "MIXED": [  # holds under Adam, fails under SGD
        ("adding", 10, "simple_rnn", C, "unsolved"), ("adding", 10, "simple_rnn", C, "solved", OMEGA),
        ("adding", 10, "simple_rnn", C, "unsolved", _sgd()),
        ("adding", 10, "simple_rnn", C, "unsolved", _sgd(params={"omega": 2.0})),
    ],
    "NOT TESTABLE": [  # clipping alone already solves: nothing to go beyond
        ("adding", 10, "simple_rnn", C, "solved"), ("adding", 10, "simple_rnn", C, "solved", OMEGA),
    ],
}  # fmt: skip


@pytest.mark.parametrize("expected", list(CLAIM11))
def test_claim11_reaches_each_finding(sqlite_uri, expected):
    f = _finding(sqlite_uri, CLAIM11[expected], 11)
    assert f.finding == expected, f.evidence
    if expected == "SUPPORTED":
        assert "global_clipnorm=1+omega=2 5/5 vs global_clipnorm=1 alone 0/5 (cannot" in f.evidence


def test_claim11_budget_limited_failures_are_not_cannot(sqlite_uri):
    rows = [("adding", 10, "simple_rnn", C, "falling"),
            ("adding", 10, "simple_rnn", C, "solved", OMEGA)]  # fmt: skip
    f = _finding(sqlite_uri, rows, 11)
    assert f.finding == "NOT TESTABLE", f.evidence
    assert "failed inconclusively" in f.evidence
