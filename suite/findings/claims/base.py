"""What a claim is: an entry with its number, its text, its clauses and a ``decide`` rule
(whose docstring is the rule the report prints); and how clause results become a finding.

Example:
    >>> combine([Clause("length", True, ""), Clause("profile", None, "")])[0]
    'SUPPORTED'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from suite.findings.data import SweepData
from suite.findings.outcomes import lacking_runs, lacks_text

SUPPORTED, REFUTED, MIXED, UNTESTABLE = "SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"


@dataclass(frozen=True)
class Clause:
    """One clause of a claim on some part of the data (a task, a clip setting, ...): ``ok``
    True (holds), False (fails) or None (not testable here, or resting on comparisons that
    are only indicative)."""

    name: str
    ok: bool | None
    text: str


@dataclass(frozen=True)
class Untestable:
    """What ``decide`` returns when the data cannot test the claim at all (the reason)."""

    reason: str


@dataclass
class Finding:
    """A claim checked against a sweep."""

    number: int
    text: str
    finding: str  # SUPPORTED | REFUTED | MIXED | NOT TESTABLE
    evidence: str
    clauses: list[Clause] = field(default_factory=list)
    capped: int = 0  # time-capped runs the finding lacks
    missing: int = 0  # crashed, killed or never-run seeds the finding lacks
    untestable_why: str = ""  # what decide() said it needs, when it could test nothing

    @property
    def reason(self) -> str:
        """Why a NOT TESTABLE finding is not testable, in one line ("" otherwise): what the
        claim needs that the sweep lacks, or that every clause rested on comparisons that
        are only indicative or on lacking runs."""
        if self.finding != UNTESTABLE:
            return ""
        if self.untestable_why:
            return self.untestable_why
        lack = f"; {lacks_text(self.capped, self.missing)}" if self.excluded else ""
        return (
            "every clause rests on comparisons that are only indicative (not significant) "
            f"or on runs the sweep lacks{lack}: "
            + " ".join(_sentence(c.text) for c in self.clauses if c.text)
        ).rstrip(": ")

    @property
    def excluded(self) -> int:
        """Runs the finding lacks (time-capped + missing)."""
        return self.capped + self.missing

    @property
    def tested(self) -> int:
        return sum(c.ok is not None for c in self.clauses)

    @property
    def testable(self) -> str:
        """``1 of 4 clauses testable``."""
        n = len(self.clauses)
        return f"{self.tested} of {n} clause{'s' if n != 1 else ''} testable"

    @property
    def label(self) -> str:
        """``SUPPORTED, 1 of 4 clauses testable`` (just the finding when all were)."""
        if self.clauses and self.tested < len(self.clauses) and self.finding != UNTESTABLE:
            return f"{self.finding}, {self.testable}"
        return self.finding


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?)" else text + "."


def combine(clauses: list[Clause]) -> tuple[str, str]:
    """A claim's finding from its clauses: every tested clause holds: SUPPORTED; none holds:
    REFUTED; they disagree: MIXED; none could be tested: NOT TESTABLE. A clause that rests
    only on indicative comparisons is not tested. The finding says how many of its clauses
    the data could test, and the evidence gives every clause, labelled."""
    tested = [c.ok for c in clauses if c.ok is not None]
    label = {True: "holds", False: "fails", None: "not testable"}
    evidence = " ".join(f"[{c.name}: {label[c.ok]}] {_sentence(c.text)}".rstrip() for c in clauses)
    if not tested:
        return UNTESTABLE, evidence
    if all(tested):
        return SUPPORTED, evidence
    if not any(tested):
        return REFUTED, evidence
    return MIXED, evidence


class Claim:
    """One claim of the README. A subclass sets the class attributes and writes ``decide``;
    its docstring is the rule "How each finding is decided" prints.

    Attributes:
        number, text: as the report lists it.
        clauses: the names of the clauses it states (a clause may be tested once per task,
            clip setting or optimizer; the names then carry that part).
        cells: the cells whose configurations it reads (None: every cell), for the runs it
            lacks.
        per_optimizer: decided separately for each optimizer of the sweep, the clauses named
            after the optimizer when there are several.
    """

    number: int = 0
    text: str = ""
    clauses: tuple[str, ...] = ()
    cells: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None
    per_optimizer: bool = False

    def decide(self, data: SweepData) -> list[Clause] | Untestable:
        raise NotImplementedError

    def _reads(self, key: tuple) -> bool:
        task, _, cell, _, _ = key
        return (self.cells is None or cell in self.cells) and (
            self.tasks is None or task in self.tasks
        )

    def _untestable(self, reason: str, prefix: str = "") -> list[Clause]:
        return [Clause(f"{prefix}{n}", None, reason if i == 0 else "")
                for i, n in enumerate(self.clauses)]  # fmt: skip

    def check(self, data: SweepData) -> Finding:
        """The finding on ``data`` (per optimizer when ``per_optimizer``), rule "Combining
        clauses"."""
        opts = data.optimizers if self.per_optimizer else []
        parts = [(f"{o}: ", data.where(lambda r, o=o: r.optimizer == o)) for o in opts]
        if len(parts) <= 1:
            parts = [("", data)]
        clauses: list[Clause] = []
        reasons = []
        for prefix, part in parts:
            got = self.decide(part) if part.finished else Untestable("no run finished.")
            if isinstance(got, Untestable):
                clauses += self._untestable(got.reason, prefix)
                reasons.append(f"{prefix}{got.reason}")
            else:
                clauses += [Clause(prefix + c.name, c.ok, c.text) for c in got]
        finding, evidence = combine(clauses)
        if len(reasons) == len(parts):  # nothing decided anywhere: just the reason(s)
            evidence = " ".join(reasons)
        capped, missing = lacking_runs(data, self._reads)
        n = len(clauses)
        tested = sum(c.ok is not None for c in clauses)
        evidence += f" ({tested} of {n} clause{'s' if n != 1 else ''} testable; {lacks_text(capped, missing)}.)"
        why = " ".join(reasons) if len(reasons) == len(parts) else ""
        return Finding(self.number, self.text, finding, evidence, clauses, capped, missing, why)
