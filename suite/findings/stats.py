"""The statistics every finding shares: Wilson intervals, exact one-sided tests, and the one
significance rule every comparison goes through (:func:`compare` for shares of runs,
:func:`compare_slopes` for per-run gradient-decay slopes).

A comparison ends in one of three states, and the claims read only those:

- ``holds`` True: significant in the stated direction, by the stated margin, whatever the
  runs it lacks (time-capped, crashed, never run) would have done;
- ``holds`` None: *indicative*: the direction holds but not significantly (or the lacking
  runs could overturn it); a claim never rests on it, and the text says "indicative (p = …)";
- ``holds`` False: the direction fails (below the margin even if every lacking run had gone
  the claim's way).

Example:
    >>> compare(3, 3, 0, 3).text
    'indicative (p = 0.05)'
    >>> compare(6, 6, 0, 6).holds
    True
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

WILSON_Z = 1.96  # 95 % Wilson score interval
FISHER_P = 0.05  # the level of every one-sided exact test
HELP_MARGIN = 0.10  # a share "beats" another by at least 10 points (and p < FISHER_P)
SLOPE_SAME = 0.25  # two decay slopes are "the same" when they differ by <= 25 % ...
SLOPE_ABS = 0.5  # ... or by <= 0.5 log10 per 100 steps (near-zero slopes)
EXACT_LIMIT = 200  # rank-sum tests over more runs than this use the normal approximation


def median(xs) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else math.nan


def fmt_p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.2g}"


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else "0/0"


def wilson(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Solve rates ``k/n`` (solved / counted runs) carry 95 % Wilson score intervals
    (z = {WILSON_Z}); none when no run is counted."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def fisher_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided Fisher exact p that rate ``k1/n1`` exceeds ``k2/n2`` (hypergeometric tail)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan
    N, K = n1 + n2, k1 + k2
    total = math.comb(N, n1)
    tail = sum(math.comb(K, x) * math.comb(N - K, n1 - x) for x in range(k1, min(n1, K) + 1))
    return tail / total


def rank_sum_greater(xs, ys) -> float:
    """One-sided exact permutation p (Wilcoxon rank sum, mid-ranks for ties) that the values
    ``xs`` tend to exceed ``ys``; the normal approximation beyond EXACT_LIMIT runs."""
    xs = [x for x in xs if math.isfinite(x)]
    ys = [y for y in ys if math.isfinite(y)]
    n1, n2 = len(xs), len(ys)
    if not n1 or not n2:
        return math.nan
    values = np.array(xs + ys, dtype=np.float64)
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # mid-ranks for ties
        tie = values == v
        ranks[tie] = ranks[tie].mean()
    doubled = np.rint(2 * ranks).astype(int)  # mid-ranks are halves: integers when doubled
    observed = int(doubled[:n1].sum())
    N = n1 + n2
    if N > EXACT_LIMIT:
        mean = n1 * (N + 1)
        var = 4 * n1 * n2 * (N + 1) / 12.0
        z = (observed - mean - 1) / math.sqrt(var)  # continuity correction (doubled units)
        return 0.5 * math.erfc(z / math.sqrt(2))
    top = int(doubled.sum())
    ways = np.zeros((n1 + 1, top + 1))  # ways[k, s]: subsets of k runs with doubled rank sum s
    ways[0, 0] = 1.0
    for w in doubled:
        ways[1:, w:] = ways[1:, w:] + ways[:-1, : top + 1 - w]
    dist = ways[n1]
    return float(dist[observed:].sum() / dist.sum())


def _significant(k1: int, n1: int, k2: int, n2: int, margin: float) -> bool:
    if not n1 or not n2:
        return False
    gain = k1 / n1 - k2 / n2
    return gain >= margin - 1e-12 and fisher_greater(k1, n1, k2, n2) < FISHER_P


@dataclass(frozen=True)
class Comparison:
    """Share ``k1/n1`` against ``k2/n2`` (counted runs), with ``lack1``/``lack2`` runs
    lacking on each side; see :func:`compare`."""

    k1: int
    n1: int
    k2: int
    n2: int
    margin: float = HELP_MARGIN
    lack1: int = 0
    lack2: int = 0

    @property
    def gain(self) -> float:
        if not self.n1 or not self.n2:
            return math.nan
        return self.k1 / self.n1 - self.k2 / self.n2

    @property
    def p(self) -> float:
        return fisher_greater(self.k1, self.n1, self.k2, self.n2)

    @property
    def holds(self) -> bool | None:
        k1, n1, k2, n2, m = self.k1, self.n1, self.k2, self.n2, self.margin
        a, b = self.lack1, self.lack2
        if _significant(k1, n1, k2, n2, m) and _significant(k1, n1 + a, k2 + b, n2 + b, m):
            return True
        best_n1, best_n2 = n1 + a, n2 + b
        if best_n1 and best_n2 and (k1 + a) / best_n1 - k2 / best_n2 < m - 1e-12:
            return False
        return None

    @property
    def lacking(self) -> int:
        return self.lack1 + self.lack2

    @property
    def text(self) -> str:
        """``p = 0.011`` (significant or failing), ``indicative (p = 0.2)`` otherwise."""
        if not self.n1 or not self.n2:
            return "no counted runs to compare"
        p = f"p = {fmt_p(self.p)}"
        holds = self.holds
        if holds is None:
            if _significant(self.k1, self.n1, self.k2, self.n2, self.margin):
                return f"indicative ({p} on the counted runs; {self.lacking} lacking run(s) could overturn it)"
            if self.gain < self.margin - 1e-12:
                return f"indicative ({p}; {self.lacking} lacking run(s) could decide it)"
            return f"indicative ({p})"
        if holds is False and self.gain > 0:
            return f"{p}, below the {self.margin:.0%}-point margin"
        return p


def compare(
    k1: int, n1: int, k2: int, n2: int, margin: float = HELP_MARGIN, lack1: int = 0, lack2: int = 0
) -> Comparison:
    """Every comparison of two shares of runs (A beats B, clipping helped, X solves a length Y
    cannot): A's share beats B's when it is higher by at least {HELP_MARGIN:.0%} (percentage
    points; or the margin the rule states) AND a one-sided Fisher exact test gives p < {FISHER_P}, and still
    would if every run A or B lacks (time-capped, crashed, never run) had gone against it. It
    *fails* when A's share stays below the margin even if every lacking run had gone its way;
    anything between is *indicative (p = …)*, and no claim is decided on it."""
    return Comparison(k1, n1, k2, n2, margin, lack1, lack2)


def slopes_same(a: float, b: float) -> bool:
    """Two gradient-decay slopes agree when |a - b| <= max({SLOPE_SAME:.0%} of the larger
    magnitude, {SLOPE_ABS} log10 per 100 steps)."""
    return abs(a - b) <= max(SLOPE_SAME * max(abs(a), abs(b)), SLOPE_ABS)


@dataclass(frozen=True)
class SlopeComparison:
    """Per-run decay slopes of A against B; see :func:`compare_slopes`."""

    a: tuple[float, ...]
    b: tuple[float, ...]

    @property
    def med_a(self) -> float:
        return median(self.a)

    @property
    def med_b(self) -> float:
        return median(self.b)

    @property
    def testable(self) -> bool:
        return math.isfinite(self.med_a) and math.isfinite(self.med_b)

    @property
    def same(self) -> bool:
        return self.testable and slopes_same(self.med_a, self.med_b)

    @property
    def p(self) -> float:
        """One-sided p of the difference in the direction of the medians."""
        if self.med_a >= self.med_b:
            return rank_sum_greater(self.a, self.b)
        return rank_sum_greater(self.b, self.a)

    @property
    def flatter(self) -> bool | None:
        """A flatter than B: True significant, None indicative, False same or steeper."""
        if not self.testable:
            return None
        if self.same or self.med_a < self.med_b:
            return False
        return True if self.p < FISHER_P else None

    @property
    def agree(self) -> bool | None:
        """A and B the same: True within the margin, False significantly different, None
        different but only indicatively."""
        if not self.testable:
            return None
        if self.same:
            return True
        return False if self.p < FISHER_P else None

    def text(self, a: str = "A", b: str = "B") -> str:
        head = (
            f"{self.med_a:.2g} ({a}, {len(self.a)} runs) vs {self.med_b:.2g} ({b}, {len(self.b)})"
        )
        if self.same:
            return f"{head}: the same"
        p = f"p = {fmt_p(self.p)}"
        return f"{head}: differ ({p})" if self.p < FISHER_P else f"{head}: differ, indicative ({p})"


def compare_slopes(a, b) -> SlopeComparison:
    """Decay slopes (log10 per 100 steps) are compared on their medians over runs: *the
    same* when the medians agree within the margin (slopes_same); otherwise they *differ* —
    A flatter or steeper than B — only when a one-sided exact rank-sum test on the per-run
    slopes (the permutation test Fisher's test is for shares) gives p < {FISHER_P}, and
    *indicatively* when it does not."""
    return SlopeComparison(
        tuple(x for x in a if math.isfinite(x)), tuple(x for x in b if math.isfinite(x))
    )


def sign_test_greater(wins: int, losses: int) -> float:
    """One-sided exact sign test p that paired outcomes favour "wins" over "losses" (ties
    already dropped): P(X >= wins) for X ~ Binomial(wins + losses, 1/2)."""
    n = wins + losses
    if n <= 0:
        return math.nan
    return sum(math.comb(n, x) for x in range(wins, n + 1)) / 2**n
