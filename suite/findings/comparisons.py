"""The comparisons the claims and the verdict draw between configurations, each one through
the significance rule (:func:`suite.findings.stats.compare`):

- :func:`helped`: a treatment's share of runs (solved, or not diverged) against "none", over
  the configurations both ran;
- :func:`beyond`: one cell solves a length another cannot with any of its settings;
- :func:`beats`: one cell ranks above another on a task (share solved in a grid sweep,
  critical length in a critical one).

Each returns a :class:`Result`: ``ok`` True (significant), False (the direction fails) or None
(not testable, or only indicative), and the text that says which.

Example:
    >>> r = beyond(data, "copy", ["ortho_rnn"], ["simple_rnn"])         # doctest: +SKIP
    >>> r.ok, r.text                                                     # doctest: +SKIP
    (None, 'copy: ortho_rnn T = 50, simple_rnn T = 10; ... indicative (p = 0.05)')
"""

from __future__ import annotations

from dataclasses import dataclass

from suite.findings.data import SweepData
from suite.findings.outcomes import (
    FAILED,
    SOLVED,
    UNDECIDED,
    at_length,
    fmt_T,
    groups,
    longest,
    longest_solved,
    outcomes,
    setting_text,
    settings,
)
from suite.findings.stats import Comparison, compare, fmt_p

ORDER_MARGIN = 0.20  # a cell "beats" another on a task by >= 20 points of solve share


@dataclass(frozen=True)
class Result:
    """``ok`` True / False / None; ``open`` True when a None comes from a comparison that was
    drawn (indicative, or lacking runs decide it) rather than from data that cannot test it."""

    ok: bool | None
    text: str
    p: float = float("nan")
    open: bool = False


def tally(data: SweepData, keys, keep) -> tuple[int, int, int]:
    """(runs ``keep`` accepts, counted runs, lacking seeds) over the configurations ``keys``."""
    outs, g = outcomes(data), groups(data)
    k = n = lack = 0
    for key in keys:
        counted = [r for r in g.get(key, []) if r.counted]
        k += sum(bool(keep(r)) for r in counted)
        n += len(counted)
        lack += outs[key].lacking if key in outs else 0
    return k, n, lack


def helped(data: SweepData, cells, clip: str, keep, base: str = "none") -> Comparison | None:
    """Clipping "helped" a set of cells when, over the configurations (task, T, cell,
    optimizer) that ran both with the clip setting and without clipping, the share of counted
    runs solved (or not diverged) with it beats the share without it by the significance rule
    (rule "Significance"); nothing is compared when no configuration ran both."""
    g = groups(data)
    pairs = []
    for t, T, c, k, o in g:
        if c in cells and k == clip and (t, T, c, base, o) in g:
            pairs.append(((t, T, c, k, o), (t, T, c, base, o)))
    if not pairs:
        return None
    k1, n1, l1 = tally(data, [a for a, _ in pairs], keep)
    k2, n2, l2 = tally(data, [b for _, b in pairs], keep)
    return compare(k1, n1, k2, n2, lack1=l1, lack2=l2)


def _deciding(comps):
    """The comparison that decides a set of them: a failing one, else the weakest."""
    for state in (False, None, True):
        some = [x for x in comps if x[-1].holds is state]
        if some:
            return max(some, key=lambda x: x[-1].p)
    raise ValueError("no comparison")


def _name(cells) -> str:
    return " / ".join(cells)


def beyond(
    data: SweepData, task: str, cells, rivals, name: str | None = None, rival: str | None = None,
    mine=None, theirs=None,
) -> Result:  # fmt: skip
    """Whether ``cells`` go further than ``rivals`` on ``task``: a length T that a cell
    solved (its best setting) while the rivals *cannot* solve it with any setting they ran on
    the task — each setting read at T, or, where it has no decided result at T, by
    monotonicity in T (solved at a longer T: solved; cannot at a shorter T: cannot) — and the
    cell's share solved at T beats every rival setting's by the significance rule. The clause
    holds when there is such a length; it fails when every length a cell solved is solved by
    some rival setting too (or the cells solved none while the rivals solved some), or the
    shares differ by less than the margin; it is NOT TESTABLE when neither solved any length,
    when a rival setting is undecided, failed only inconclusively (budget-limited: rule
    "Conclusive failures") or has no result at such a T, or when the difference is only
    indicative.

    ``mine`` / ``theirs``: optional ``(treatment, optimizer) -> bool`` filters on the settings
    each side may use (e.g. one cell with Ω against the same cell with clipping alone).
    """
    name, rival = name or _name(cells), rival or _name(rivals)
    outs = outcomes(data)
    nopt = len(data.optimizers)
    keep_mine, keep_theirs = mine or (lambda k, o: True), theirs or (lambda k, o: True)
    mine = [s for s in settings(data, task, cells) if keep_mine(s[1], s[2])]
    theirs = [s for s in settings(data, task, rivals) if keep_theirs(s[1], s[2])]
    ls = longest_solved(data)
    L_cell = max((ls.get((task, *s)) or 0 for s in mine), default=0)
    L_rival = max((ls.get((task, *s)) or 0 for s in theirs), default=0)
    head = f"{task}: {name} {fmt_T(L_cell)}, {rival} {fmt_T(L_rival)}"
    if not mine or not theirs:
        return Result(None, f"{head} (not both ran on {task})")
    if not (L_cell or L_rival):
        return Result(None, f"{head} (neither solved any length)")
    mine_set = set(mine)
    won = sorted({T for (t, T, c, k, o), out in outs.items()
                  if t == task and (c, k, o) in mine_set and out.state == SOLVED})  # fmt: skip
    sig, weak, opened, matched = [], [], [], []
    for T in reversed(won):
        best_key, best = max(
            ((key, o) for key, o in outs.items()
             if key[0] == task and key[1] == T and key[2:] in mine_set and o.state == SOLVED),
            key=lambda kv: (kv[1].rate, kv[1].counted),
        )  # fmt: skip
        at = {(c, k, o): at_length(outs, task, c, k, o, T) for c, k, o in theirs}
        solved_by = [s for s, a in at.items() if a.state == SOLVED]
        if solved_by:
            c, k, o = solved_by[0]
            where = "" if at[solved_by[0]].source == T else f" (by T = {at[solved_by[0]].source})"
            matched.append(f"T = {T} also solved by {c} {setting_text(k, o, nopt)}{where}")
            continue
        unknown = {s: a for s, a in at.items() if a.state != "cannot"}
        if unknown:
            why = []
            for (c, k, o), a in unknown.items():
                label = (
                    f"{c} {setting_text(k, o, nopt)}"
                    if len(rivals) > 1
                    else setting_text(k, o, nopt)
                )
                if a.state == FAILED:
                    why.append(f"{label} failed T = {T} inconclusively "
                               f"({a.outcome.budget_limited} failure(s) budget-limited or too short to tell)")  # fmt: skip
                elif a.state == UNDECIDED:
                    why.append(
                        f"{label} undecided at T = {T} ({a.outcome.lacking} seed(s) lacking)"
                    )
                else:
                    why.append(f"{label} has no result at T = {T}")
            opened.append(f"{rival}: " + "; ".join(why))
            continue
        comps = []
        for (c, k, o), a in at.items():
            r = a.outcome
            comps.append(((c, k, o), a, compare(best.solved, best.counted, r.solved, r.counted,
                                                lack1=best.lacking, lack2=r.lacking)))  # fmt: skip
        worst = _deciding(comps)
        oks = [cmp.holds for *_, cmp in comps]
        detail = ", ".join(
            f"{(c + ' ') if len(rivals) > 1 else ''}{setting_text(k, o, nopt)} "
            f"{a.outcome.solved}/{a.outcome.counted}"
            + ("" if a.source == T else f" at T = {a.source} (monotone in T)")
            for (c, k, o), a, _ in comps
        )
        mine_txt = (f"{best_key[2]} {setting_text(best_key[3], best_key[4], nopt)}"
                    f" {best.solved}/{best.counted}")  # fmt: skip
        line = (f"{name} solved T = {T} ({mine_txt}) that {rival} cannot with any setting "
                f"({detail}): {worst[2].text}")  # fmt: skip
        if all(ok is True for ok in oks):
            sig.append((T, line, worst[2].p))
        elif any(ok is False for ok in oks):
            matched.append(f"T = {T}: {worst[2].text}")
        else:
            weak.append((T, line, worst[2].p))
    if sig:
        T, line, p = sig[0]
        return Result(True, f"{head}; {line}", p)
    if weak or opened:
        parts = [line for _, line, _ in weak] + opened
        p = min((p for _, _, p in weak), default=float("nan"))
        return Result(None, f"{head}; " + "; ".join(parts), p, open=True)
    if not won:
        return Result(False, f"{head}; {name} solved no length")
    return Result(
        False, f"{head}; {name} solved no length that {rival} cannot ({'; '.join(matched)})"
    )


def beats(data: SweepData, task: str, x: str, y: str) -> Result:
    """Cell ``x`` ranks above cell ``y`` on ``task``. In a grid sweep: over the lengths and
    settings both ran, ``x``'s share of runs solved beats ``y``'s by at least
    {ORDER_MARGIN:.0%} (percentage points) under the significance rule. In a critical-length sweep, where
    the bisection probes longer T for better cells so shares solved rank nothing: ``x`` goes
    further than ``y`` (rule "Beyond")."""
    if data.is_critical:
        return beyond(data, task, [x], [y])
    g = groups(data)
    both = {(T, k, o) for (t, T, c, k, o) in g if t == task and c == x} & {
        (T, k, o) for (t, T, c, k, o) in g if t == task and c == y
    }
    if not both:
        return Result(None, f"{x} and {y} share no length and setting on {task}")
    kx, nx, lx = tally(data, [(task, T, x, k, o) for T, k, o in both], lambda r: r.status == SOLVED)
    ky, ny, ly = tally(data, [(task, T, y, k, o) for T, k, o in both], lambda r: r.status == SOLVED)
    cmp = compare(kx, nx, ky, ny, ORDER_MARGIN, lx, ly)
    text = f"{x} {kx}/{nx} vs {y} {ky}/{ny} solved on {task} ({cmp.text})"
    return Result(cmp.holds, text, cmp.p, open=cmp.holds is None and bool(nx and ny))


def rank_cells(data: SweepData, task: str) -> tuple[list[str], str]:
    """The cells of ``task`` best first, and how the report names the top: by share of runs
    solved in a grid sweep, by critical length (longest T solved, best setting) in a critical
    sweep; ``[]`` when nothing was solved."""
    from suite.findings.data import cell_key

    fin = [r for r in data.finished if r.task == task]
    cells = sorted({r.cell for r in fin}, key=cell_key)
    if data.is_critical:
        score = {c: longest(data, task, [c]) for c in cells}
        top = max(score.values(), default=0)
        best = [c for c in cells if score[c] == top] if top else []
        return best, (" = ".join(best) + f" (critical length T = {top})") if best else "none solved"
    g = groups(data)
    score = {}
    for c in cells:
        keys = [k for k in g if k[0] == task and k[2] == c]
        k, n, _ = tally(data, keys, lambda r: r.status == SOLVED)
        score[c] = k / n if n else 0.0
    top = max(score.values(), default=0)
    best = [c for c in cells if score[c] == top] if top > 0 else []
    return best, (" = ".join(best) + f" ({top:.0%} of runs solved)") if best else "none solved"


def p_text(p: float) -> str:
    return f"p = {fmt_p(p)}"
