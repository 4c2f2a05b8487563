"""The six claims the suite exists to test, each checked against a sweep's runs.

``shared/notes/claims-to-test.md`` lists the common answers to "can clipping make a vanilla
RNN learn long-range dependencies?". :func:`check_claims` gives each one a finding computed
from the runs (nothing hand-written) and the evidence behind it:

- ``SUPPORTED``: the data agree with the claim;
- ``REFUTED``: the data contradict it;
- ``MIXED``: it holds in part (on some tasks, or one half of a two-part claim);
- ``NOT TESTABLE``: the sweep lacks what the claim needs (say, no run diverged without clipping).

A configuration counts as solving a task@T when at least half of its seeds solved it (the
rule of :func:`suite.report.solved_set`); "longest T solved" takes the best clip setting.

Example:
    >>> from suite.report import load_sweep                        # doctest: +SKIP
    >>> for c in check_claims(load_sweep("sqlite:///mlflow.db", "rnnbench")):  # doctest: +SKIP
    ...     print(c.number, c.finding, c.evidence)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

SUPPORTED, REFUTED, MIXED, UNTESTABLE = "SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"
GATED = ("lstm", "gru")
SPIKE_RATIO = 10.0  # a gradient "spike": a window max >= 10x the median window-mean norm
RESCUE_SHARE = 0.75  # clipping "prevents" divergence when >= 75 % of diverging configs are rescued
HELP_MARGIN = 0.05  # clipping "helps" a cell when its solve share rises by more than 5 points
SLOPE_SAME = 0.25  # profiles "the same" when slopes differ by < 25 % (clipping only rescales)

CLAIMS = {
    1: "Clipping bounds exploding gradients: runs that diverge without it train stably with it.",
    2: "Clipping does nothing for vanishing gradients: a tanh RNN that fails at some T "
    "without clipping still fails with it.",
    3: "Gating (LSTM, GRU) mitigates vanishing gradients: gated cells solve longer T, with "
    "flatter gradient profiles.",
    4: "Gating does not remove exploding gradients: gated cells still see gradient spikes, "
    "so clipping can still help them.",
    5: "IRNN (ReLU + identity) matches LSTM on the adding problem where tanh fails, but needs "
    "clipping to stay stable.",
    6: "None of this is universal: the outcome depends on the task.",
}


@dataclass
class Claim:
    number: int
    text: str
    finding: str  # SUPPORTED | REFUTED | MIXED | NOT TESTABLE
    evidence: str


def _share(runs, status: str) -> float:
    return sum(r.status == status for r in runs) / len(runs) if runs else math.nan


def _slope(run) -> float:
    """grad_decay (log10 per 100 steps) of the profile at the run's first evaluation."""
    from suite.train import grad_decay_slope

    return grad_decay_slope(run.profile_first) if run.profile_first else math.nan


def _median(xs) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return statistics.median(xs) if xs else math.nan


def _longest(data, task: str, cells) -> int:
    """Longest T of ``task`` solved by any of ``cells`` with its best clip setting; 0: none."""
    from suite.report import longest_solved

    return max(
        (T or 0 for (t, cell, _), T in longest_solved(data).items() if t == task and cell in cells),
        default=0,
    )


def _fmt_T(T: int) -> str:
    return f"T = {T}" if T else "no length"


def _claim1(data) -> Claim:
    fin = data.finished
    none = [r for r in fin if r.clip == "none"]
    clipped = [r for r in fin if r.clip != "none"]
    if not none or not clipped:
        return Claim(1, CLAIMS[1], UNTESTABLE, "needs runs both with and without clipping.")
    div_none = {(r.task, r.seq_len, r.cell, r.seed) for r in none if r.status == "diverged"}
    if not div_none:
        return Claim(
            1,
            CLAIMS[1],
            UNTESTABLE,
            f"no run diverged without clipping (0/{len(none)}), so there was nothing for clipping "
            f"to prevent; {sum(r.status == 'diverged' for r in clipped)}/{len(clipped)} clipped runs diverged.",
        )
    rescued = total = 0
    per_clip = []
    for clip in sorted({r.clip for r in clipped}):
        pair = [
            r for r in clipped if r.clip == clip and (r.task, r.seq_len, r.cell, r.seed) in div_none
        ]
        still = sum(r.status == "diverged" for r in pair)
        rescued += len(pair) - still
        total += len(pair)
        per_clip.append(f"{still}/{len(pair)} with {clip}")
    cells = sorted({c for _, _, c, _ in div_none})
    evidence = (
        f"{len(div_none)}/{len(none)} runs diverged without clipping ({', '.join(cells)}); "
        f"the same configurations still diverged {', '.join(per_clip)}."
    )
    if not total:
        return Claim(1, CLAIMS[1], UNTESTABLE, evidence + " No clipped run pairs with them.")
    share = rescued / total
    finding = SUPPORTED if share >= RESCUE_SHARE else REFUTED if share <= 0.25 else MIXED
    return Claim(
        1, CLAIMS[1], finding, evidence + f" Clipping rescued {rescued}/{total} ({share:.0%})."
    )


def _claim2(data) -> Claim:
    from suite.report import solved_set

    fin = [r for r in data.finished if r.cell == "simple_rnn"]
    clips = sorted({r.clip for r in fin if r.clip != "none"})
    if not any(r.clip == "none" for r in fin) or not clips:
        return Claim(2, CLAIMS[2], UNTESTABLE, "needs simple_rnn runs with and without clipping.")
    base = solved_set(data, "simple_rnn", "none")
    failed = sorted({(r.task, r.seq_len) for r in fin if r.clip == "none"} - base)
    if not failed:
        return Claim(
            2,
            CLAIMS[2],
            UNTESTABLE,
            "tanh SimpleRNN solved every task@T it was given without clipping: nothing to rescue.",
        )
    gained = {c: sorted(solved_set(data, "simple_rnn", c) & set(failed)) for c in clips}
    wins = {c: g for c, g in gained.items() if g}
    # The profile at the longest T of each task: clipping rescales the gradient, not its decay.
    slopes = []
    for task in sorted({t for t, _ in failed}):
        T = max(T for t, T in failed if t == task)
        at = [r for r in fin if r.task == task and r.seq_len == T]
        s_none = _median(_slope(r) for r in at if r.clip == "none")
        s_clip = _median(_slope(r) for r in at if r.clip != "none")
        if math.isfinite(s_none) and math.isfinite(s_clip):
            slopes.append(f"{task}@{T} {s_none:.2g} without vs {s_clip:.2g} with clipping")
    slope_txt = (
        f" Gradient decay at the first evaluation (log10 per 100 steps): {'; '.join(slopes)}."
        if slopes
        else ""
    )
    failed_txt = ", ".join(f"{t}@{T}" for t, T in failed)
    if wins:
        got = "; ".join(f"{c}: {', '.join(f'{t}@{T}' for t, T in g)}" for c, g in wins.items())
        return Claim(
            2,
            CLAIMS[2],
            REFUTED,
            f"clipping made tanh SimpleRNN solve what it failed without ({got}).{slope_txt}",
        )
    return Claim(
        2,
        CLAIMS[2],
        SUPPORTED,
        f"tanh SimpleRNN failed {failed_txt} without clipping and still failed them with "
        f"{', '.join(clips)}.{slope_txt}",
    )


def _claim3(data) -> Claim:
    fin = data.finished
    cells = {r.cell for r in fin}
    if "simple_rnn" not in cells or not cells & set(GATED):
        return Claim(3, CLAIMS[3], UNTESTABLE, "needs simple_rnn and at least one gated cell.")
    held, failed, parts = [], [], []
    for task in sorted({r.task for r in fin}):
        L_tanh = _longest(data, task, ["simple_rnn"])
        L_gate = _longest(data, task, [c for c in GATED if c in cells])
        T = max(r.seq_len for r in fin if r.task == task)
        at = [r for r in fin if r.task == task and r.seq_len == T]
        s_tanh = _median(_slope(r) for r in at if r.cell == "simple_rnn")
        s_gate = _median(_slope(r) for r in at if r.cell in GATED)
        flat = (
            f"; decay at {task}@{T} {s_gate:.2g} (gated) vs {s_tanh:.2g} (tanh)"
            if math.isfinite(s_tanh) and math.isfinite(s_gate)
            else ""
        )
        parts.append(f"{task}: gated {_fmt_T(L_gate)}, tanh {_fmt_T(L_tanh)}{flat}")
        if L_gate > L_tanh:
            held.append(task)
        elif L_tanh > L_gate or (L_tanh == L_gate and L_tanh):
            failed.append(task)  # tanh went as far (or further): gating showed no advantage
    evidence = "longest T solved — " + "; ".join(parts) + "."
    if not held and not failed:
        return Claim(3, CLAIMS[3], UNTESTABLE, evidence + " Neither solved any length.")
    finding = SUPPORTED if not failed else REFUTED if not held else MIXED
    if finding == MIXED:
        evidence += f" Holds on {', '.join(held)}; not on {', '.join(failed)}."
    return Claim(3, CLAIMS[3], finding, evidence)


def _claim4(data) -> Claim:
    fin = [r for r in data.finished if r.cell in GATED]
    none = [r for r in fin if r.clip == "none"]
    clipped = [r for r in fin if r.clip != "none"]
    if not none or not clipped:
        return Claim(4, CLAIMS[4], UNTESTABLE, "needs gated runs with and without clipping.")
    means = [v for r in none for _, v in r.curves.get("grad_norm", []) if math.isfinite(v)]
    maxima = [v for r in none for _, v in r.curves.get("grad_norm_max", []) if math.isfinite(v)]
    if not means or not maxima:
        return Claim(4, CLAIMS[4], UNTESTABLE, "no gradient norms were logged.")
    med, top = statistics.median(means), max(maxima)
    spikes = top >= SPIKE_RATIO * med
    from suite.report import _mean_curve

    fired = _median(
        _mean_curve(r, "clip_fraction") for r in clipped if r.curves.get("clip_fraction")
    )
    solve_none, solve_clip = _share(none, "solved"), _share(clipped, "solved")
    div_none, div_clip = _share(none, "diverged"), _share(clipped, "diverged")
    helped = solve_clip > solve_none + HELP_MARGIN or div_clip < div_none
    evidence = (
        f"unclipped LSTM/GRU: largest pre-clip norm {top:.3g}, {top / med:.0f}x the median window "
        f"mean {med:.3g}"
        + (f"; clipping fired on {fired:.0%} of steps (median run)" if math.isfinite(fired) else "")
        + f"; solved {solve_none:.0%} of runs without clipping vs {solve_clip:.0%} with"
        + (f", diverged {div_none:.0%} vs {div_clip:.0%}" if div_none or div_clip else "")
        + "."
    )
    finding = SUPPORTED if spikes and helped else REFUTED if not spikes and not helped else MIXED
    if finding == MIXED:
        evidence += (
            " Spikes seen, but clipping did not improve the gated cells' results."
            if spikes
            else f" No spike >= {SPIKE_RATIO:g}x the median, yet clipping helped."
        )
    return Claim(4, CLAIMS[4], finding, evidence)


def _claim5(data) -> Claim:
    fin = [r for r in data.finished if r.task == "adding"]
    cells = {r.cell for r in fin}
    if not {"irnn", "lstm"} <= cells:
        return Claim(5, CLAIMS[5], UNTESTABLE, "needs irnn and lstm runs on the adding task.")
    L_irnn = _longest(data, "adding", ["irnn"])
    L_lstm = _longest(data, "adding", ["lstm"])
    L_tanh = _longest(data, "adding", ["simple_rnn"]) if "simple_rnn" in cells else 0
    matches = L_irnn >= L_lstm and L_irnn > L_tanh
    irnn = [r for r in fin if r.cell == "irnn"]
    none = [r for r in irnn if r.clip == "none"]
    clipped = [r for r in irnn if r.clip != "none"]
    needs = bool(none and clipped) and (
        _share(none, "diverged") > _share(clipped, "diverged")
        or _share(clipped, "solved") > _share(none, "solved") + HELP_MARGIN
    )
    evidence = (
        f"adding, longest T solved: irnn {_fmt_T(L_irnn)}, lstm {_fmt_T(L_lstm)}, "
        f"tanh {_fmt_T(L_tanh)}"
    )
    if none and clipped:
        evidence += (
            f"; irnn without clipping solved {_share(none, 'solved'):.0%} and diverged "
            f"{_share(none, 'diverged'):.0%} of runs, with clipping {_share(clipped, 'solved'):.0%} "
            f"and {_share(clipped, 'diverged'):.0%}"
        )
    evidence += "."
    finding = SUPPORTED if matches and needs else REFUTED if not matches and not needs else MIXED
    if finding == MIXED:
        evidence += (
            " It matched LSTM, but clipping did not make it more stable."
            if matches
            else " Clipping stabilised it, but it did not match LSTM's length."
        )
    return Claim(5, CLAIMS[5], finding, evidence)


def _claim6(data, claim3: Claim) -> Claim:
    fin = data.finished
    tasks = sorted({r.task for r in fin})
    if len(tasks) < 2:
        return Claim(6, CLAIMS[6], UNTESTABLE, "needs at least two tasks.")
    best = {}
    for task in tasks:
        share = {}
        for cell in sorted({r.cell for r in fin if r.task == task}):
            share[cell] = _share([r for r in fin if r.task == task and r.cell == cell], "solved")
        top = max(share.values())
        best[task] = sorted(c for c, s in share.items() if s == top) if top > 0 else []
    named = "; ".join(f"{t}: {' = '.join(c) if c else 'none solved'}" for t, c in best.items())
    differs = len({tuple(c) for c in best.values() if c}) > 1
    finding = SUPPORTED if differs or claim3.finding == MIXED else REFUTED
    evidence = f"best cell by share of runs solved — {named}." + (
        " Claim 3 holds on some tasks only." if claim3.finding == MIXED else ""
    )
    if finding == REFUTED:
        evidence += " The same cell(s) came out on top on every task."
    return Claim(6, CLAIMS[6], finding, evidence)


def check_claims(data) -> list[Claim]:
    """Each claim of ``CLAIMS`` with a finding and its evidence, from ``data`` (a SweepData)."""
    if not data.finished:
        return [Claim(n, t, UNTESTABLE, "no run finished.") for n, t in CLAIMS.items()]
    c3 = _claim3(data)
    return [_claim1(data), _claim2(data), c3, _claim4(data), _claim5(data), _claim6(data, c3)]


def claims_markdown(claims: list[Claim]) -> str:
    lines = [
        "## Claims",
        "",
        "The common answers to the question, each checked against this sweep's runs "
        "(a configuration solves a task@T when at least half its seeds do).",
        "",
        "| # | claim | finding | evidence |",
        "|---|---|---|---|",
    ]
    for c in claims:
        lines.append(f"| {c.number} | {c.text} | **{c.finding}** | {c.evidence} |")
    return "\n".join(lines)
