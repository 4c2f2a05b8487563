"""The report's figures (suite.findings.figures), drawn from a hand-built sweep: several
cells, treatments, two optimizers, three seeds, undecided and never-run configurations, and a
diverged run whose gradient norm lies far above the drawing cap. Each figure is read back
from its matplotlib artists before saving (labels, lines, notes) and written as a PNG."""

from __future__ import annotations

import itertools
import math
import struct

import pytest

from suite.findings.data import TIME_CAP, RunInfo, SweepData

N, C = "none", "global_clipnorm=1"
SGD = "sgd(lr=0.01, momentum=0.9)"
SEEDS = (0, 1, 2)
OUTLIER = 2.5e6  # the diverged IRNN's gradient norm: above figures.NORM_CAP


def _profile(length: int, slope: float) -> list[float]:
    """‖∂L/∂x_t‖ falling by ``-slope`` in log10 per 100 steps of distance."""
    return [10 ** (slope * (length - 1 - t) / 100) for t in range(length)]


def _run(task, T, cell, clip, seed, status, opt="adam", **kw):
    """One run as load_sweep reads it back: curves at evaluations 100, 200, ... and a first
    and a last gradient profile (the model's input length: copy reads T + 2·10 steps)."""
    from tasks import get_task

    length = get_task(task, seq_len=T).length
    ratios = {
        "solved": [0.8, 0.3, 0.04, 0.004],
        "unsolved": [0.99, 0.97, 0.96, 0.96, 0.96],
        "diverged": [0.9, 5.0, math.inf],
    }.get(status, [])
    ratios = [v * (1 + 0.15 * seed) * (0.8 if cell == "lstm" else 1.0) for v in ratios]
    gmax = kw.pop("gmax", None) or [2.0 + seed] * len(ratios)
    steps = [100 * (i + 1) for i in range(len(ratios))]
    slope = {"simple_rnn": -20.0, "irnn": -12.0}.get(cell, -2.0) * (1.3 if clip == C else 1.0)
    finished = status in ("solved", "unsolved", "diverged")
    return RunInfo(
        run_id=f"{task}{T}-{cell}-{clip}-{opt}-s{seed}", task=task, seq_len=T, cell=cell,
        clip=clip, seed=seed, status=status, metrics=kw.pop("metrics", {}), optimizer=opt,
        curves={
            "val_loss_ratio": list(zip(steps, ratios, strict=True)),
            "grad_norm_max": list(zip(steps, gmax, strict=True)),
            "grad_norm": [(s, 1.0) for s in steps],
            "clip_fraction": [(s, 0.0 if clip == N else 0.3) for s in steps],
        },
        profiles=[_profile(length, slope), _profile(length, slope / 2)] if finished else [],
        input_length=length, **kw,
    )  # fmt: skip


def _sweep(last_profile: bool = True) -> SweepData:
    """adding@{10, 50} and copy@10; simple_rnn, irnn, lstm, none and clipped, under Adam;
    simple_rnn also under SGD on adding@10. irnn clipped at adding@50 is undecided (one seed
    solved, one time-capped, one crashed), lstm none at copy@10 has no counted run (one
    time-capped, two never ran), and an irnn seed at adding@50 without clipping diverges
    with a gradient norm of 2.5e6."""
    from tasks import get_task

    runs = []
    capped = dict(stop_reason=TIME_CAP, max_steps=3000, metrics={"steps": 700})
    for (task, T), cell, clip in itertools.product(
        [("adding", 10), ("adding", 50), ("copy", 10)], ["simple_rnn", "irnn", "lstm"], [N, C]
    ):
        for seed in SEEDS:
            if (task, T, cell, clip) == ("adding", 50, "irnn", C):
                st = ["solved", "capped", "failed"][seed]
            elif (task, T, cell, clip) == ("copy", 10, "lstm", N):
                st = ["capped", "missing", "missing"][seed]
            elif (task, T, cell, clip) == ("adding", 50, "irnn", N) and seed == 0:
                st = "diverged"
            elif cell == "lstm" or (T == 10 and clip == C):
                st = "solved"
            else:
                st = "unsolved" if seed else "solved"
            kw = {}
            if st == "capped":
                st, kw = "unsolved", dict(capped)
            if st == "diverged":
                kw["gmax"] = [5.0, 800.0, OUTLIER]
            runs.append(_run(task, T, cell, clip, seed, st, **kw))
    for clip, seed in itertools.product([N, C], SEEDS):
        runs.append(_run("adding", 10, "simple_rnn", clip, seed, "unsolved", opt=SGD))
    if not last_profile:
        for r in runs:
            r.profiles = r.profiles[:1]
    baselines = {(t, T): get_task(t, seq_len=T).baseline_loss for t, T in
                 [("adding", 10), ("adding", 50), ("copy", 10)]}  # fmt: skip
    return SweepData("parent", "figs", runs, baselines, "sqlite:///unused.db", seeds=SEEDS)


@pytest.fixture(scope="module")
def data():
    return _sweep()


def _png_size(path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", raw[16:24])


def _fits(fig) -> None:
    """The title, the legend and its caption lie inside the figure's width (wrapped, not
    cut, not grown past it)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    width = fig.bbox.width
    texts = [fig._suptitle, *fig.legends] + [leg.get_title() for leg in fig.legends]
    for t in texts:
        box = t.get_window_extent(r)
        assert box.x0 >= 0 and box.x1 <= width, f"{t!r} is wider than the figure"


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# ----- every figure -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["sweep", "one task, one optimizer"])
def test_every_figure_is_written_as_a_png_of_sane_size(data, tmp_path, which):
    from suite.findings.figures import FIGURES

    d = (
        data
        if which == "sweep"
        else data.where(lambda r: r.task == "adding" and r.optimizer == "adam")
    )
    for name, fn in FIGURES.items():
        fn(d, tmp_path / name)
        w, h = _png_size(tmp_path / name)
        assert 500 <= w <= 4000 and 250 <= h <= 4000, (name, w, h)


def test_titles_and_captions_fit_and_say_what_is_shown(data):
    from suite.findings import figures as F

    plt = F._plt()
    for make in (F.solve_rate_figure, F.learning_curves_figure, F.gradient_decay_figure,
                 F.exploding_figure):  # fmt: skip
        for d in (data, data.where(lambda r: r.task == "adding" and r.optimizer == "adam")):
            fig = make(d)
            _fits(fig)
            assert len(fig._suptitle.get_text()) > 30
            plt.close(fig)


def test_an_empty_sweep_still_draws_every_figure(tmp_path):
    from suite.findings.figures import FIGURES

    empty = SweepData("p", "e", [_run("adding", 10, "gru", N, 0, "failed")], {}, "sqlite:///x")
    for name, fn in FIGURES.items():
        fn(empty, tmp_path / name)
        assert _png_size(tmp_path / name)[0] >= 400


# ----- solve rate: the heat map -----------------------------------------------------------


def test_heat_map_labels_are_the_outcomes_k_over_n(data):
    from suite.findings import figures as F
    from suite.findings.outcomes import SOLVED, UNDECIDED, outcomes

    fig = F.solve_rate_figure(data)
    ax = next(a for a in fig.axes if a.get_gid() == "solve-rate")
    rows, cols, _ = F.solve_rate_grid(data)
    outs = outcomes(data)
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(T) for _, T in cols]
    ylabels = [t.get_text() for t in ax.get_yticklabels()]
    assert f"simple_rnn · none · {SGD}" in ylabels and "lstm · global_clipnorm=1 · adam" in ylabels
    seen = {}
    for t in ax.texts:
        i, j = (round(v) for v in t.get_position()[::-1])
        assert (i, j) not in seen, "two labels in one square"
        seen[(i, j)] = t
    assert set(seen) == {(i, j) for i in range(len(rows)) for j in range(len(cols))}
    hatched = 0
    for (i, j), t in seen.items():
        (cell, clip, opt), (task, T) = rows[i], cols[j]
        o = outs.get((task, T, cell, clip, opt))
        assert ylabels[i] == " · ".join([cell, clip, opt])
        want = f"{o.solved}/{o.counted}" if o is not None and o.counted else "—"
        assert t.get_text() == want, (rows[i], cols[j])
        assert (t.get_fontweight() == "bold") == (o is not None and o.state == SOLVED)
        hatched += o is not None and (o.state == UNDECIDED or not o.counted)
    # what the sweep holds, by hand: 2/3 solved simple_rnn none adding@10, 1/1 undecided irnn
    # clipped adding@50, no counted run for lstm none copy@10, SGD only on adding@10
    where = {(rows[i], cols[j]): t.get_text() for (i, j), t in seen.items()}
    assert where[(("simple_rnn", N, "adam"), ("adding", 10))] == "1/3"
    assert where[(("irnn", C, "adam"), ("adding", 50))] == "1/1"
    assert where[(("lstm", N, "adam"), ("copy", 10))] == "—"
    assert where[(("simple_rnn", C, SGD), ("copy", 10))] == "—"
    assert where[(("lstm", C, "adam"), ("adding", 50))] == "3/3"
    assert hatched == 2
    assert sum(p.get_gid() == "lacking" for p in ax.patches) == hatched
    assert any(a.get_label() == "<colorbar>" for a in fig.axes)
    F._plt().close(fig)


def test_heat_map_has_no_optimizer_in_rows_of_a_one_optimizer_sweep(data):
    from suite.findings import figures as F

    d = data.where(lambda r: r.optimizer == "adam")
    fig = F.solve_rate_figure(d)
    ax = next(a for a in fig.axes if a.get_gid() == "solve-rate")
    assert "lstm · none" in [t.get_text() for t in ax.get_yticklabels()]
    F._plt().close(fig)


# ----- learning curves --------------------------------------------------------------------


def test_learning_curves_draw_every_seed_and_the_solved_threshold(data):
    from suite.findings import figures as F

    fig = F.learning_curves_figure(data)
    gids = {ln.get_gid() for ax in fig.axes for ln in ax.lines}
    # the middle length: adding@50 of (10, 50), copy@10
    drawn_at = {(r.task, r.seq_len) for r in data.finished}
    assert drawn_at == {("adding", 10), ("adding", 50), ("copy", 10)}
    want = {
        f"seed:{r.run_id}"
        for r in data.finished
        if (r.task, r.seq_len) in {("adding", 50), ("copy", 10)}
    }
    assert want and want <= gids
    assert not {g for g in gids if g and g.startswith("seed:") and "adding10" in g}
    assert {"median:simple_rnn:adam", "median:lstm:adam"} <= gids
    # adding is solved on val MSE <= 0.01: the line is 0.01 / baseline (1/6) = 0.06
    adding = [ax for ax in fig.axes if ax.get_title().startswith("adding@50")]
    lines = [ln for ax in adding for ln in ax.lines if ln.get_gid() == "solved-line"]
    assert lines and all(ln.get_ydata()[0] == pytest.approx(0.06) for ln in lines)
    # copy is solved on recall accuracy: no line, a note saying so
    copy = [ax for ax in fig.axes if ax.get_title().startswith("copy@10")]
    assert not [ln for ax in copy for ln in ax.lines if ln.get_gid() == "solved-line"]
    assert all("solved: val accuracy >= 0.99 (no line" in ax.get_title() for ax in copy)
    assert all("(= 0.06 × baseline)" in ax.get_title() for ax in adding)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "one seed" in legend and "median over seeds" in legend
    F._plt().close(fig)


def test_learning_curves_tell_optimizers_apart():
    from suite.findings import figures as F

    d = _sweep().where(lambda r: r.task == "adding" and r.seq_len == 10)
    fig = F.learning_curves_figure(d)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "optimizer adam" in legend and f"optimizer {SGD}" in legend
    styles = {ln.get_gid(): ln.get_linestyle() for ax in fig.axes for ln in ax.lines}
    assert styles["median:simple_rnn:adam"] != styles[f"median:simple_rnn:{SGD}"]
    F._plt().close(fig)


# ----- gradient decay ---------------------------------------------------------------------


def test_decay_figure_shows_first_and_last_evaluation(data):
    from suite.findings import figures as F

    fig = F.gradient_decay_figure(data)
    assert "first and last evaluation" in fig._suptitle.get_text()
    gids = {ln.get_gid() for ax in fig.axes for ln in ax.lines}
    assert {"first evaluation:lstm", "last evaluation:lstm"} <= gids
    caption = fig.legends[0].get_title().get_text()
    assert "claims 2 and 3" in caption.replace("\n", " ")
    F._plt().close(fig)

    fig = F.gradient_decay_figure(_sweep(last_profile=False))
    assert "at initialisation (first evaluation)" in fig._suptitle.get_text().replace("\n", " ")
    assert not any((ln.get_gid() or "").startswith("last") for ax in fig.axes for ln in ax.lines)
    F._plt().close(fig)


# ----- exploding gradients ------------------------------------------------------------------


def test_exploding_figure_counts_what_the_cap_hides(data):
    from suite.findings import figures as F

    assert OUTLIER > F.NORM_CAP
    fig = F.exploding_figure(data)
    notes = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "cap-note"]
    assert len(notes) == 1
    assert "1 window maximum above the cap 1e4" in notes[0] and "max 2.5e+06" in notes[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"simple_rnn", "irnn", "lstm"} <= set(legend)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "none\nsgd(lr=0.01,\nmomentum=0.9)" in ticks and "none\nadam" in ticks
    F._plt().close(fig)

    calm = data.where(lambda r: r.status != "diverged")
    fig = F.exploding_figure(calm)
    assert not [t for ax in fig.axes for t in ax.texts if t.get_gid() == "cap-note"]
    F._plt().close(fig)


# ----- critical length --------------------------------------------------------------------


def test_critical_figure_tick_labels_do_not_overlap(tmp_path):
    from suite.findings import figures as F
    from suite.findings.critical import CriticalRow
    from suite.findings.outcomes import Outcome

    lens = [10, 20, 50, 100, 200, 500, 1000]
    ok, bad = Outcome("solved", 3, 3, 0, 0, 3), Outcome("failed", 0, 3, 0, 0, 3)
    rows = [
        CriticalRow("adding", cell, clip, lens, opt, {50: ok, 100: bad})
        for cell in ("simple_rnn", "irnn", "ortho_rnn", "lstm", "chrono_lstm", "gru")
        for clip in (N, C, "clipvalue=0.1+omega=2")
        for opt in ("adam", SGD)
    ] + [CriticalRow("copy", "gru", N, [10, 20, 50], "adam", {20: ok, 50: bad})]
    fig = F.critical_figure(rows)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            boxes = [t.get_window_extent(r) for t in ticks if t.get_text()]
            assert boxes
            assert not any(_overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    _fits(fig)
    F._plt().close(fig)
    F.fig_critical(rows, tmp_path / F.CRITICAL_FIGURE)
    assert _png_size(tmp_path / F.CRITICAL_FIGURE)[1] > 500
