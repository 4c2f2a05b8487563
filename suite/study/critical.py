"""Critical length: how long a T can each cell x clip solve? (``rnnbench sweep SPEC --critical``)

Instead of the spec's whole grid, a critical sweep bisects T over the spec's ``seq_lens``
(sorted ascending; per task, ``[overrides.TASK] seq_lens`` included) for every
(task, cell, clip) *bracket*, assuming solving is monotone in T (solved at T => solved at
every shorter T). A probe is one T of one bracket, trained with all the spec's seeds and
judged by the suite's solved rule (``suite.findings.outcomes.outcome``: solved when at least
half the seeds are; undecided when seeds without a counted run (time-capped, crashed, never
run) decide it).

Rounds: every open bracket probes its midpoint in the same round, and all the probes of a
round run as one batch through the ordinary sweep executor (``suite.study.sweep``: local
workers or Ray, resume by config hash, one parent run, each probe's runs ordinary child
runs). A bracket ends when its longest T solved and its shortest T failed are adjacent in
``seq_lens`` (or nothing below the smallest is solved / nothing up to the largest failed),
or when a probe is undecided or has no finished run: that bracket then ends with the
uncertainty stated. Resume after a kill replays the bisection from the finished runs
without training them again.

The round logic (:func:`bisect`) takes an ``evaluate(probes) -> {probe: state}`` callable, so
it runs on any solver, e.g. a pure function of T in the tests; :func:`run_critical` plugs in
the sweep executor and a ``judge`` that reads outcomes back from the store (the CLI passes
``suite.findings.critical.probe_outcomes``; this layer does not import the findings).

Example:
    >>> b = Bracket("copy", "gru", "none", [10, 20, 50, 100, 200])
    >>> bisect([b], lambda probes: {p: "solved" if p.seq_len <= 50 else "failed" for p in probes})
    2
    >>> b.longest_solved, b.shortest_failed, sorted(b.probes)
    (50, 100, [50, 100])
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from suite.core.train import TrainConfig
from suite.study.spec import SpecError, SweepSpec

MODE = "critical"  # the parent's rnnbench.mode tag and plan mode
# The states of suite.findings.outcomes.outcome (a probe with no finished run has state None).
SOLVED, FAILED, UNDECIDED = "solved", "failed", "undecided"


class Probe(NamedTuple):
    """One T of one bracket: trained with every seed of the spec."""

    task: str
    cell: str
    clip: str  # the gradient treatment (clip spec, +omega=ALPHA with Pascanu's regulariser)
    seq_len: int
    optimizer: str = "adam"  # tracking.layout.optimizer_label


@dataclass
class Bracket:
    """The bisection of one (task, cell, clip) over ``lens``.

    ``lo``/``hi`` index the longest T solved and the shortest T failed so far (``-1`` and
    ``len(lens)``: none yet); the bracket is closed when they are adjacent.
    """

    task: str
    cell: str
    clip: str
    lens: list[int]
    lo: int = -1
    hi: int = -1  # set to len(lens) in __post_init__
    probes: dict[int, str | None] = field(default_factory=dict)  # T -> state, in probe order
    rounds: dict[int, int] = field(default_factory=dict)  # T -> the round that probed it
    stopped_at: int | None = None  # T of an undecided probe (or one with no finished run)
    checks: dict[int, str | None] = field(default_factory=dict)  # end check: T -> state
    optimizer: str = "adam"  # tracking.layout.optimizer_label (the spec's optimizer axis)

    def __post_init__(self) -> None:
        self.lens = sorted(set(self.lens))
        if self.hi < 0:
            self.hi = len(self.lens)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(task, cell, clip, optimizer): what a bracket bisects T for."""
        return (self.task, self.cell, self.clip, self.optimizer)

    @property
    def done(self) -> bool:
        return self.stopped_at is not None or self.hi - self.lo <= 1

    @property
    def closed(self) -> bool:
        """Ended with adjacent bounds (no undecided probe in the way)."""
        return self.stopped_at is None and self.hi - self.lo <= 1

    def next_probe(self) -> Probe | None:
        """The midpoint of the open bracket (``None`` once done)."""
        if self.done:
            return None
        return self.probe(self.lens[(self.lo + self.hi) // 2])

    def probe(self, seq_len: int) -> Probe:
        return Probe(self.task, self.cell, self.clip, seq_len, self.optimizer)

    def record(self, seq_len: int, state: str | None, round_no: int = 0) -> None:
        """The outcome of probing ``seq_len``: moves a bound, or ends the bracket."""
        i = self.lens.index(seq_len)
        self.probes[seq_len] = state
        self.rounds[seq_len] = round_no
        if state == SOLVED:
            self.lo = max(self.lo, i)
        elif state == FAILED:
            self.hi = min(self.hi, i)
        else:  # undecided or no finished run: the bisection cannot go on honestly
            self.stopped_at = seq_len

    def neighbours(self) -> list[Probe]:
        """The end check of the monotonicity the bisection assumed: the lengths next to the
        bracket (just below the longest T solved, just above the shortest T failed) that it
        has not probed; each should come out solved / failed like the bound it borders."""
        out = []
        if self.lo >= 1:
            out.append(self.lens[self.lo - 1])
        if self.hi + 1 < len(self.lens):
            out.append(self.lens[self.hi + 1])
        return [self.probe(T) for T in out if T not in self.probes]

    @property
    def non_monotone(self) -> list[int]:
        """End-checked lengths that broke monotonicity: failed below the longest T solved,
        or solved above the shortest T failed."""
        lo, hi = self.longest_solved, self.shortest_failed
        return sorted(
            T for T, state in self.checks.items()
            if (state == FAILED and lo is not None and T < lo)
            or (state == SOLVED and hi is not None and T > hi)
        )  # fmt: skip

    @property
    def longest_solved(self) -> int | None:
        return self.lens[self.lo] if self.lo >= 0 else None

    @property
    def shortest_failed(self) -> int | None:
        return self.lens[self.hi] if self.hi < len(self.lens) else None

    def describe(self) -> str:
        """One line: ``copy gru none: T in [3, 5, 8] -> longest solved 5, shortest failed 8``."""
        opt = f" {self.optimizer}" if self.optimizer != "adam" else ""
        head = f"{self.task} {self.cell} {self.clip}{opt}: T in {self.lens}"
        if not self.probes:
            nxt = self.next_probe()
            return f"{head} -> round 1 probes T = {nxt.seq_len}" if nxt else head
        ls = self.longest_solved
        sf = self.shortest_failed
        text = (
            f"longest solved {ls if ls is not None else f'none (< {self.lens[0]})'}, "
            f"shortest failed {sf if sf is not None else f'none (<= {self.lens[-1]} all solved)'}"
        )
        if self.stopped_at is not None:
            state = self.probes[self.stopped_at] or "no finished run"
            text += f"; stopped: T = {self.stopped_at} {state}"
        if self.non_monotone:
            text += f"; NOT MONOTONE at T = {', '.join(map(str, self.non_monotone))}"
        return f"{head} -> {text}"


def max_rounds(n_lens: int) -> int:
    """Rounds a bisection over ``n_lens`` lengths takes at most: ceil(log2(n + 1))."""
    return math.ceil(math.log2(n_lens + 1))


def _state(result) -> str | None:
    """A probe's state from what ``evaluate`` returned: a state string or an ``Outcome``."""
    return getattr(result, "state", result)


def bisect(
    brackets: list[Bracket],
    evaluate: Callable[[list[Probe]], dict],
    on_round: Callable[[int, list[Probe], list[Bracket]], None] | None = None,
) -> int:
    """Bisect every bracket; all open brackets probe their midpoints in the same round.

    Args:
        brackets: updated in place.
        evaluate: ``probes -> {probe: state}`` for one round (state: ``"solved"``,
            ``"failed"``, ``"undecided"``, ``None`` for no finished run; or an object with a
            ``state`` attribute such as ``suite.findings.outcomes.Outcome``). A probe missing
            from the answer counts as ``None``.
        on_round: called after each round with ``(round, probes, brackets)``.

    Returns:
        The number of rounds run.
    """
    round_no = 0
    while open_ := [b for b in brackets if not b.done]:
        round_no += 1
        probes = [b.next_probe() for b in open_]
        results = evaluate(probes)
        for b, p in zip(open_, probes, strict=True):
            b.record(p.seq_len, _state(results.get(p)), round_no)
        if on_round is not None:
            on_round(round_no, probes, brackets)
    return round_no


def check_monotone(brackets: list[Bracket], evaluate: Callable[[list[Probe]], dict]) -> list[Probe]:
    """One more round after the bisection: every bracket's unprobed neighbours
    (:meth:`Bracket.neighbours`), judged like any probe and kept apart in ``checks`` (they
    never move a bound). Returns the probes it ran."""
    probes = [p for b in brackets for p in b.neighbours()]
    if not probes:
        return []
    results = evaluate(probes)
    for p in probes:
        b = next(b for b in brackets if b.key == (p.task, p.cell, p.clip, p.optimizer))
        b.checks[p.seq_len] = _state(results.get(p))
    return probes


# ----- a spec's brackets ---------------------------------------------------------------------


def probe_configs(spec: SweepSpec) -> dict[Probe, list[TrainConfig]]:
    """Every possible probe of the spec -> its configs (one per seed), in grid order."""
    out: dict[Probe, list[TrainConfig]] = {}
    for c in spec.grid():
        probe = Probe(c.task, c.cell, c.treatment, c.seq_len, c.optimizer_label)
        out.setdefault(probe, []).append(c)
    return out


def check_critical(spec: SweepSpec) -> None:
    """A spec a critical sweep can bisect: at least two lengths for every task."""
    for task in spec.tasks:
        lens = sorted(set(spec.overrides.get(task, {}).get("seq_lens", spec.seq_lens)))
        if len(lens) < 2:
            raise SpecError(
                f"--critical bisects T over seq_lens, but spec {spec.origin} gives task "
                f"{task!r} only {lens}; list at least two lengths (e.g. seq_lens = [10, 20, 50, 100])."
            )


def make_brackets(spec: SweepSpec) -> list[Bracket]:
    """One bracket per (task, cell, clip, optimizer) of the spec, over that task's lengths."""
    check_critical(spec)
    lens: dict[tuple, set[int]] = {}
    for p in probe_configs(spec):
        lens.setdefault((p.task, p.cell, p.clip, p.optimizer), set()).add(p.seq_len)
    return [
        Bracket(task, cell, clip, sorted(ts), optimizer=opt)
        for (task, cell, clip, opt), ts in lens.items()
    ]


def plan_text(spec: SweepSpec, brackets: list[Bracket]) -> list[str]:
    """The bracket plan: what bisects over what, the first round, the worst case."""
    seeds = len(spec.seeds)
    worst = sum(min(max_rounds(len(b.lens)), len(b.lens)) for b in brackets) * seeds
    rounds = max(max_rounds(len(b.lens)) for b in brackets)
    lines = [
        f"critical length: {len(brackets)} brackets (task x cell x clip), {seeds} seed(s) per "
        f"probe, at most {rounds} rounds and {worst} runs (the full grid: {len(spec.grid())})"
    ]
    lines += [f"  {b.describe()}" for b in brackets]
    return lines


def artifact(spec: SweepSpec, brackets: list[Bracket], configs, rounds: int) -> dict:
    """The ``critical.json`` record of a critical parent run: per bracket, its lengths and
    its probes (with the config hashes a report reads the outcomes back from)."""
    return {
        "mode": MODE,
        "spec": spec.name,
        "seeds": list(spec.seeds),
        "rounds": rounds,
        "complete": all(b.done for b in brackets),
        "brackets": [
            {
                "task": b.task,
                "cell": b.cell,
                "clip": b.clip,
                "optimizer": b.optimizer,
                "lens": b.lens,
                "probes": [
                    {
                        "seq_len": T,
                        "round": b.rounds.get(T, 0),
                        "state": state,
                        "hashes": [c.config_hash() for c in configs[b.probe(T)]],
                    }
                    for T, state in b.probes.items()
                ],
                "checks": [
                    {
                        "seq_len": T,
                        "state": state,
                        "hashes": [c.config_hash() for c in configs[b.probe(T)]],
                    }
                    for T, state in b.checks.items()
                ],
                "non_monotone": b.non_monotone,
                "longest_solved": b.longest_solved,
                "shortest_failed": b.shortest_failed,
                "stopped_at": b.stopped_at,
                "done": b.done,
            }
            for b in brackets
        ],
    }


# ----- running it ----------------------------------------------------------------------------


@dataclass
class CriticalOutcome:
    parent_run_id: str | None
    brackets: list[Bracket]
    rounds: int = 0
    trained: int = 0  # runs trained by this invocation (0 on a complete resume)
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False


class _Interrupted(Exception):
    pass


def run_critical(
    spec: SweepSpec,
    tracking_uri: str,
    experiment: str,
    judge: Callable[[dict[Probe, list[str]]], dict],
    workers: int,
    executor: str = "local",
    ray_address: str | None = None,
    device: str = "auto",
    console=None,
    pool=None,
    population: int = 1,
    resume: bool = True,
    check: bool = False,
) -> CriticalOutcome:
    """Bisect every bracket of ``spec``, each round one batch of the sweep executor.

    Args:
        judge: ``{probe: config hashes} -> {probe: outcome}`` read from the store after a
            round (``suite.findings.critical.probe_outcomes`` bound to the store).
        pool: a started ``LocalPool`` (reused by every round), else as ``run_sweep``.
        check: after the bisection, one more round probing every bracket's neighbours
            (:func:`check_monotone`); the record and the report flag non-monotone outcomes.
        Other arguments: as ``suite.study.sweep.run_sweep``.
    """
    import mlflow

    from suite.study.sweep import plan_sweep, run_sweep
    from tracking import CRITICAL_ARTIFACT

    configs = probe_configs(spec)
    brackets = make_brackets(spec)
    out = CriticalOutcome(None, brackets)
    client = mlflow.MlflowClient(tracking_uri)

    def evaluate(probes: list[Probe]) -> dict:
        grid = [c for p in probes for c in configs[p]]
        plan = plan_sweep(spec, tracking_uri, experiment, resume, grid=grid, mode=MODE)
        plan.label = f"{spec.name} critical round {out.rounds + 1}"
        if out.parent_run_id:
            plan.parent_run_id = out.parent_run_id
        if plan.todo or plan.parent_run_id is None or plan.stale:
            got = run_sweep(
                plan, tracking_uri, experiment, workers, executor, ray_address, device,
                console, pool, population,
            )  # fmt: skip
            out.parent_run_id = got.parent_run_id
            out.failed += got.failed
            out.trained += len(got.results)
            if got.interrupted:
                raise _Interrupted
        else:
            out.parent_run_id = plan.parent_run_id
        return judge({p: [c.config_hash() for c in configs[p]] for p in probes})

    def on_round(round_no: int, probes, brackets) -> None:
        out.rounds = round_no
        record = artifact(spec, brackets, configs, round_no)
        client.log_text(out.parent_run_id, json.dumps(record, indent=1), CRITICAL_ARTIFACT)

    try:
        bisect(brackets, evaluate, on_round)
        if check and check_monotone(brackets, evaluate):
            on_round(out.rounds, [], brackets)
    except _Interrupted:
        out.interrupted = True
        if out.parent_run_id:
            on_round(out.rounds, [], brackets)  # what the finished rounds decided
        return out
    if out.parent_run_id:
        client.set_terminated(out.parent_run_id, "FAILED" if out.failed else "FINISHED")
    return out
