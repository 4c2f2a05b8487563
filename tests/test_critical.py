"""Critical length (`rnnbench sweep --critical`): the bisection on fake solvers (no training),
the store read back and the report section from hand-logged runs, one tiny real sweep."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import JAX_ALONE, log_fake_run, new_store, run_cli

from suite.study.critical import (
    Bracket,
    Probe,
    bisect,
    make_brackets,
    max_rounds,
    probe_configs,
)
from suite.study.spec import SpecError, SweepSpec

LENS = [10, 20, 50, 100, 200, 500]


def _solver(threshold, undecided=(), missing=()):
    """A fake solver: solves T <= threshold (a pure function of T), records every call."""
    calls = []

    def evaluate(probes):
        calls.append(list(probes))
        out = {}
        for p in probes:
            if p.seq_len in missing:
                continue  # no finished run: left out of the answer
            out[p] = (
                "undecided"
                if p.seq_len in undecided
                else "solved"
                if p.seq_len <= threshold
                else "failed"
            )
        return out

    return evaluate, calls


# ----- the bisection, on fake solvers --------------------------------------------------------


@pytest.mark.parametrize("lens", [[3, 5], [3, 5, 8], LENS, list(range(1, 14))])
def test_bisection_finds_every_threshold(lens):
    for threshold in [lens[0] - 1, *lens]:
        b = Bracket("adding", "gru", "none", lens)
        evaluate, calls = _solver(threshold)
        rounds = bisect([b], evaluate)
        want_lo = max((T for T in lens if T <= threshold), default=None)
        want_hi = min((T for T in lens if T > threshold), default=None)
        assert (b.longest_solved, b.shortest_failed) == (want_lo, want_hi), threshold
        assert b.done and b.closed and b.stopped_at is None
        assert rounds == len(calls) == len(b.probes) <= max_rounds(len(lens))
        assert all(len(c) == 1 for c in calls)
        # only lengths inside the bracket as it was were probed, each once
        assert len(set(b.probes)) == len(b.probes)


def test_everything_solved_and_nothing_solved():
    every = Bracket("copy", "lstm", "none", LENS)
    bisect([every], _solver(10**9)[0])
    assert every.longest_solved == 500 and every.shortest_failed is None and every.closed
    assert 500 in every.probes and every.describe().endswith("(<= 500 all solved)")
    none = Bracket("copy", "simple_rnn", "none", LENS)
    bisect([none], _solver(0)[0])
    assert none.longest_solved is None and none.shortest_failed == 10 and none.closed
    assert 10 in none.probes and "none (< 10)" in none.describe()


def test_all_brackets_probe_their_midpoints_in_the_same_round():
    thresholds = {"simple_rnn": 0, "irnn": 20, "gru": 10**9}
    brackets = [Bracket("adding", cell, "none", LENS) for cell in thresholds]
    calls = []

    def evaluate(probes):
        calls.append(probes)
        return {p: "solved" if p.seq_len <= thresholds[p.cell] else "failed" for p in probes}

    seen = []
    rounds = bisect(brackets, evaluate, on_round=lambda k, probes, bs: seen.append((k, probes)))
    assert rounds == len(calls) == max_rounds(len(LENS)) == 3
    assert [k for k, _ in seen] == [1, 2, 3]
    # round 1: every bracket probes the same midpoint, in one batch
    assert calls[0] == [Probe("adding", c, "none", 50) for c in thresholds]
    assert [(b.longest_solved, b.shortest_failed) for b in brackets] == [
        (None, 10),
        (20, 50),
        (500, None),
    ]
    # a bracket that closed stops probing while the others go on
    assert [len(c) for c in calls] == [3, 3, 2]


@pytest.mark.parametrize("how", ["undecided", "missing"])
def test_an_undecided_probe_ends_its_bracket_with_the_uncertainty(how):
    stuck = Bracket("adding", "irnn", "none", LENS)  # solves everything, but T = 200 is unsure
    other = Bracket("adding", "gru", "none", LENS)  # solves T <= 100
    calls = []

    def evaluate(probes):
        calls.append(probes)
        out = {}
        for p in probes:
            if p.cell == "irnn" and p.seq_len == 200:
                if how == "undecided":
                    out[p] = "undecided"
                continue  # missing: no finished run, left out of the answer
            out[p] = "solved" if p.cell == "irnn" or p.seq_len <= 100 else "failed"
        return out

    assert bisect([stuck, other], evaluate) == 3
    # round 1: both at 50 (solved); round 2: both at 200; round 3: only gru, at 100
    assert [[p.seq_len for p in c] for c in calls] == [[50, 50], [200, 200], [100]]
    assert stuck.stopped_at == 200 and stuck.done and not stuck.closed
    assert stuck.probes[200] == (None if how == "missing" else "undecided")
    assert (stuck.longest_solved, stuck.shortest_failed) == (50, None)
    assert "stopped: T = 200" in stuck.describe()
    assert other.closed and (other.longest_solved, other.shortest_failed) == (100, 200)


def test_an_undecided_first_probe_stops_at_once():
    b = Bracket("copy", "gru", "none", [3, 5, 8])
    evaluate, calls = _solver(8, undecided=(5,))
    assert bisect([b], evaluate) == 1
    assert b.stopped_at == 5 and b.longest_solved is None and b.shortest_failed is None


def test_evaluate_may_answer_with_outcomes():
    from suite.findings.outcomes import Outcome

    b = Bracket("copy", "gru", "none", [3, 5, 8])
    bisect(
        [b],
        lambda ps: {p: Outcome("solved" if p.seq_len < 8 else "failed", 1, 1, 0, 0, 1) for p in ps},
    )
    assert (b.longest_solved, b.shortest_failed) == (5, 8)


# ----- a spec's brackets -------------------------------------------------------------------


def _spec(**kw):
    base = dict(
        name="c",
        tasks=["adding", "copy"],
        seq_lens=[3, 5, 8],
        cells=["simple_rnn", "gru"],
        clips=["none", "global_clipnorm=1.0"],
        seeds=[0, 1],
        train={"hidden": 4, "max_steps": 10},
        origin="c.toml",
    )
    return SweepSpec(**{**base, **kw})


def test_brackets_of_a_spec_follow_per_task_lengths():
    spec = _spec(overrides={"copy": {"seq_lens": [20, 10]}})
    brackets = make_brackets(spec)
    assert len(brackets) == 2 * 2 * 2
    assert {tuple(b.lens) for b in brackets if b.task == "copy"} == {(10, 20)}
    assert {b.clip for b in brackets} == {"none", "global_clipnorm=1"}  # canonical spelling
    configs = probe_configs(spec)
    p = brackets[0].next_probe()
    assert [c.seed for c in configs[p]] == [0, 1] and {c.seq_len for c in configs[p]} == {5}


def test_one_length_cannot_be_bisected():
    with pytest.raises(SpecError, match=r"--critical.*'copy' only \[10\]"):
        make_brackets(_spec(overrides={"copy": {"seq_lens": [10]}}))


# ----- the store read back, the report section (hand-logged runs, no training) -------------


def _hand_logged_critical(
    uri, thresholds, undecided=None, seeds=(0, 1), cells=("simple_rnn", "gru"), kw=None,
    elsewhere=(), check=False, solves=None,
):  # fmt: skip
    """A critical sweep whose probes are hand-logged runs of a fake solver; the real judge
    (suite.findings.critical.probe_outcomes) and critical.json. ``kw``: cell -> more
    log_fake_run options; ``elsewhere``: cells whose runs another sweep trained (resume reused
    them: not children of this parent); ``check``: the end check of monotonicity;
    ``solves(cell, T)``: the solver, instead of ``T <= thresholds[cell]``."""
    import mlflow

    from suite.findings.critical import probe_outcomes
    from suite.study.critical import artifact, check_monotone
    from tracking import CRITICAL_ARTIFACT, KIND_TAG, MODE_TAG

    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("rnnbench")
    other = client.create_run(exp_id, run_name="sweep-other", tags={KIND_TAG: "sweep"}).info.run_id
    parent = client.create_run(
        exp_id, run_name="sweep-c", tags={KIND_TAG: "sweep", MODE_TAG: "critical"}
    ).info.run_id
    client.log_param(parent, "spec", "c")
    spec = _spec(
        tasks=["adding"], seq_lens=LENS, clips=["none"], seeds=list(seeds), cells=list(cells)
    )
    solves = solves or (lambda cell, T: T <= thresholds[cell])
    # the judge reads runs back by config hash: here log_fake_run's hash of each run
    hashes = {
        p: [f"{p.task}{p.seq_len}{p.cell}{p.clip}{c.seed}" for c in cs]
        for p, cs in probe_configs(spec).items()
    }
    configs = {
        p: [SimpleNamespace(config_hash=lambda h=h: h) for h in hs] for p, hs in hashes.items()
    }

    def evaluate(probes):
        for p in probes:
            for seed in spec.seeds:
                status = "solved" if solves(p.cell, p.seq_len) else "unsolved"
                extra = dict((kw or {}).get(p.cell, {}))
                if status == "unsolved":  # plateaued failures: conclusive
                    extra.setdefault("curves", {"val_loss_ratio": [0.95] * 5})
                if (p.cell, p.seq_len) == undecided and seed == 0:  # cut by the time cap
                    extra = {"stop_reason": "max_seconds reached", "run_steps": 7, "max_steps": 10}
                owner = other if p.cell in elsewhere else parent
                log_fake_run(
                    client, exp_id, owner, p.task, p.seq_len, p.cell, p.clip, seed, status, **extra
                )
        return probe_outcomes(uri, "rnnbench", {p: hashes[p] for p in probes})

    brackets = make_brackets(spec)

    def on_round(k, probes, bs):
        doc = artifact(spec, bs, configs, k)
        client.log_text(parent, json.dumps(doc), CRITICAL_ARTIFACT)

    rounds = bisect(brackets, evaluate, on_round)
    if check and check_monotone(brackets, evaluate):
        on_round(rounds, [], brackets)
    client.set_terminated(parent, "FINISHED")
    return parent, brackets


def test_store_read_back_and_report_section(sqlite_uri, tmp_path):
    from suite.findings.critical import critical_rows, row_texts
    from suite.findings.data import load_sweep
    from suite.findings.report import write_report

    parent, brackets = _hand_logged_critical(sqlite_uri, {"simple_rnn": 20, "gru": 10**9})
    rows = critical_rows(sqlite_uri, parent)
    got = {r.cell: (r.longest_solved, r.shortest_failed, r.closed) for r in rows}
    assert got == {"simple_rnn": (20, 50, True), "gru": (500, None, True)}
    # the store agrees with the bisection that ran
    for b in brackets:
        assert got[b.cell][:2] == (b.longest_solved, b.shortest_failed)
    texts = {r.cell: row_texts(r) for r in rows}
    assert texts["simple_rnn"]["longest"] == "20" and texts["simple_rnn"]["bracket"] == "[20, 50)"
    assert "T = 20: 2/2 (CI 0.34–1)" in texts["simple_rnn"]["probes"]
    assert "T = 50: 0/2 (CI 0–0.66)" in texts["simple_rnn"]["probes"]
    assert texts["gru"]["longest"] == "500 (all solved)" and texts["gru"]["bracket"] == "[500, –)"

    data = load_sweep(sqlite_uri, "rnnbench")
    assert data.parent_run_id == parent
    md = write_report(data, tmp_path / "rep").read_text()
    assert "## Critical length" in md and "### adding (T in 10, 20, 50, 100, 200, 500)" in md
    assert "| simple_rnn | none | 20 | [20, 50) |" in md
    assert (tmp_path / "rep" / "critical_length.png").stat().st_size > 5000


def test_undecided_probe_is_reported_open(sqlite_uri, tmp_path):
    from suite.findings.critical import critical_rows, row_texts
    from suite.findings.report import critical_markdown, fig_critical

    # gru at T = 50 (round 1): seed 0 time-capped, seed 1 unsolved -> 0 solved of 1 counted,
    # 1 incomplete: 2(0 + 1) >= 2 -> undecided (outcomes.outcome); the bracket stops there
    parent, brackets = _hand_logged_critical(
        sqlite_uri, {"simple_rnn": 0, "gru": 0}, undecided=("gru", 50)
    )
    gru = next(b for b in brackets if b.cell == "gru")
    assert gru.stopped_at == 50 and list(gru.probes) == [50] and gru.probes[50] == "undecided"
    rows = critical_rows(sqlite_uri, parent)
    row = next(r for r in rows if r.cell == "gru")
    assert row.unresolved == [50] and row.longest_solved is None
    t = row_texts(row)
    assert t["bracket"] == "[–, –) open: T = 50 undecided"
    assert t["probes"] == "T = 50: 0/1 (CI 0–0.79) · 1 time-capped"
    assert "1 time-capped" in t["probes"]
    rnn = next(r for r in rows if r.cell == "simple_rnn")
    assert row_texts(rnn)["longest"] == "none (< 10)" and rnn.shortest_failed == 10
    assert "open: T = 50 undecided" in critical_markdown(rows)
    fig_critical(rows, tmp_path / "c.png")
    assert (tmp_path / "c.png").exists()


def test_a_grid_sweep_has_no_critical_section(sqlite_uri):
    import mlflow

    from suite.findings.critical import critical_rows

    client = mlflow.MlflowClient(sqlite_uri)
    exp_id = client.create_experiment("rnnbench")
    parent = client.create_run(exp_id, tags={"rnnbench.kind": "sweep"}).info.run_id
    assert critical_rows(sqlite_uri, parent) is None


# ----- issue 21: the critical findings read what the table reads -----------------------------


def test_one_solved_seed_and_crashes_do_not_move_a_bracket(sqlite_uri):
    """Item 3: 1 solved + 1 crashed + 1 never-run seed is undecided: the bracket stops there."""
    import mlflow

    from suite.findings.critical import probe_outcomes

    client = mlflow.MlflowClient(sqlite_uri)
    exp = client.create_experiment("rnnbench")
    parent = client.create_run(exp, tags={"rnnbench.kind": "sweep"}).info.run_id
    log_fake_run(client, exp, parent, "adding", 50, "gru", "none", 0, "solved")
    crashed = client.create_run(
        exp, run_name="adding-T50-gru-none-s1", tags={"rnnbench.config_hash": "adding50grunone1"}
    )
    client.set_terminated(crashed.info.run_id, "FAILED")
    p = Probe("adding", "gru", "none", 50)
    hashes = ["adding50grunone0", "adding50grunone1", "adding50grunone2"]
    got = probe_outcomes(sqlite_uri, "rnnbench", {p: hashes})
    assert got[p].state == "undecided" and (got[p].solved, got[p].missing) == (1, 2)
    b = Bracket("adding", "gru", "none", [20, 50, 100])
    bisect([b], lambda probes: got)
    assert b.stopped_at == 50 and b.longest_solved is None


def test_claims_read_the_runs_the_critical_table_reads(sqlite_uri):
    """Item 8: gru's probes were trained by another sweep (resume reused them), so they are not
    children of the critical parent; the table and the claims both read them, by hash."""
    from suite.findings.claims import check_claims
    from suite.findings.critical import rows_of
    from suite.findings.data import load_sweep
    from suite.findings.outcomes import outcomes

    parent, _ = _hand_logged_critical(
        sqlite_uri, {"simple_rnn": 20, "gru": 10**9}, elsewhere=("gru",)
    )
    data = load_sweep(sqlite_uri, "rnnbench", parent)
    rows = {r.cell: r for r in rows_of(data)}
    assert rows["gru"].longest_solved == 500
    outs = outcomes(data)
    for row in rows.values():  # one outcome per probe, from one set of runs
        for T, o in row.probes.items():
            assert outs[("adding", T, row.cell, "none", "adam")] == o
    named = {h for b in data.critical["brackets"] for p in b["probes"] for h in p["hashes"]}
    assert {r.config_hash for r in data.runs} == named
    c3 = {c.number: c for c in check_claims(data)}[3]
    assert "gated T = 500, tanh T = 20" in c3.evidence  # the reused runs are evidence
    assert "indicative (p = 0.17)" in c3.evidence  # 2 seeds: 2/2 vs 0/2 decides nothing


def test_critical_verdict_ranks_by_critical_length_and_claim3_reads_a_common_probe(sqlite_uri):
    """Items 6 and 7: in a critical sweep cells rank by critical length (share solved ranks
    nothing there), and claim 3's profile clause reads the longest T both brackets probed."""
    from conftest import decay_profile

    from suite.findings.claims import check_claims
    from suite.findings.data import load_sweep
    from suite.findings.verdict import verdict

    kw = {"gru": {"profiles": [decay_profile(50, -1.0)]},
          "simple_rnn": {"profiles": [decay_profile(50, -10.0)]}}  # fmt: skip
    parent, _ = _hand_logged_critical(
        sqlite_uri, {"simple_rnn": 20, "gru": 10**9}, seeds=range(6), kw=kw
    )
    data = load_sweep(sqlite_uri, "rnnbench", parent)
    text = "\n".join(verdict(data))
    assert "Ranking of cells on adding by critical length" in text
    assert "gru (500) > [p = 0.0011] simple_rnn (20)" in text
    assert "share of runs solved" not in text
    assert (
        "simple_rnn T = 20 (none, bracket [20, 50)); gru T = 500 (none, bracket [500, –))" in text
    )
    c3 = {c.number: c for c in check_claims(data)}[3]
    assert c3.finding == "SUPPORTED" and c3.label == "SUPPORTED", c3.evidence
    assert "decay at adding@50" in c3.evidence  # probed by both brackets; 500 by gru only


def test_end_check_reprobes_neighbours_and_flags_non_monotone_outcomes(sqlite_uri, tmp_path):
    """Item 11: simple_rnn fails T = 10 and T = 50 but solves T = 20, which the bisection never
    probes; the end check probes the bracket's neighbour T = 20 and flags it."""
    from suite.findings.critical import row_texts, rows_of
    from suite.findings.data import load_sweep
    from suite.findings.report import write_report
    from suite.findings.verdict import verdict

    parent, brackets = _hand_logged_critical(
        sqlite_uri, {}, check=True, solves=lambda cell, T: cell == "gru" or T == 20
    )
    rnn = next(b for b in brackets if b.cell == "simple_rnn")
    gru = next(b for b in brackets if b.cell == "gru")
    assert (rnn.longest_solved, rnn.shortest_failed) == (None, 10)  # checks never move a bound
    assert rnn.checks == {20: "solved"} and rnn.non_monotone == [20]
    assert gru.checks == {} and "NOT MONOTONE at T = 20" in rnn.describe()
    data = load_sweep(sqlite_uri, "rnnbench", parent)
    record = next(b for b in data.critical["brackets"] if b["cell"] == "simple_rnn")
    assert record["non_monotone"] == [20] and [c["seq_len"] for c in record["checks"]] == [20]
    row = next(r for r in rows_of(data) if r.cell == "simple_rnn")
    assert row.non_monotone == [(10, 20)]
    assert "NOT MONOTONE: failed T = 10 but solved T = 20" in row_texts(row)["checks"]
    assert any("Not monotone in T: simple_rnn none solved adding@20 but failed adding@10" in s
               for s in verdict(data))  # fmt: skip
    md = write_report(data, tmp_path / "rep", log_to_mlflow=False).read_text()
    assert "| end check |" in md and "NOT MONOTONE" in md


# ----- the CLI: errors, dry run, one tiny real sweep ------------------------------------------

TINY = """
name = "crit"
tasks = ["adding"]
seq_lens = [3, 5, 8]
cells = ["simple_rnn", "gru"]
clips = ["none"]
seeds = [0]

[train]
hidden = 4
batch_size = 8
max_steps = 150
eval_every = 10
val_size = 16
profile_size = 8
"""  # 150 steps: long enough for the SIGKILL test to catch a run in training


@pytest.mark.parametrize(
    ("text", "args", "named"),
    [
        (TINY.replace("[3, 5, 8]", "[5]"), ["--critical"], "only [5]"),
        (TINY.replace("[3, 5, 8]", "[5]").replace('name = "crit"', 'name = "crit"\ncritical = true'), [], "only [5]"),
        (TINY.replace('name = "crit"', 'name = "crit"\ncritical = "yes"'), ["--critical"], "'critical'"),
    ],
)  # fmt: skip
def test_bad_critical_input_exits_2_and_writes_nothing(tmp_path, text, args, named):
    (tmp_path / "s.toml").write_text(text)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli("sweep", "s.toml", *args, "--tracking-uri", uri, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and named in lines[0], out.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tiny critical sweep (T in {3, 5, 8}, two cells, one seed, real training on JAX,
    each run alone: half TensorFlow's worker start-up CPU) run once, uninterrupted, with two
    workers, after its dry run: the end-to-end test goes on from it, the SIGKILL test compares
    its brackets with it (workers do not change results:
    test_sweep.py::test_two_workers_match_one_worker)."""
    root = tmp_path_factory.mktemp("critical")
    (root / "crit.toml").write_text(TINY)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    args = ("sweep", "crit.toml", "--critical", "--tracking-uri", uri, "--workers", "2", *JAX_ALONE)
    dry = run_cli(*args, "--dry-run", cwd=root)
    dry_made_a_store = (root / "mlflow.db").exists()
    out = run_cli(*args, cwd=root)
    record = _critical_record(uri, root, "first")[0] if out.returncode == 0 else None
    return SimpleNamespace(root=root, uri=uri, args=args, dry=dry,
                           dry_made_a_store=dry_made_a_store, out=out, record=record)  # fmt: skip


@pytest.mark.jax
def test_critical_sweep_end_to_end(uninterrupted):
    import mlflow

    from tracking import MODE_TAG

    tmp_path, uri, args = uninterrupted.root, uninterrupted.uri, uninterrupted.args
    dry = uninterrupted.dry
    assert dry.returncode == 0, dry.stderr
    assert "adding gru none: T in [3, 5, 8] -> round 1 probes T = 5" in dry.stdout
    assert "run              adding-T5-gru-none-h4-s0" in dry.stdout
    assert "adding-T3" not in dry.stdout and not uninterrupted.dry_made_a_store

    out = uninterrupted.out
    assert out.returncode == 0, out.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnbench")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("rnnbench.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].data.tags[MODE_TAG] == "critical"
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.params["mode"] == "critical"
    children = [r for r in runs if r is not parents[0] and "rnnbench.config_hash" in r.data.tags]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    record = json.loads(
        open(client.download_artifacts(parent.info.run_id, "critical.json", str(tmp_path))).read()
    )
    assert record["complete"] and record["rounds"] == 2
    probed = {(b["cell"], p["seq_len"]) for b in record["brackets"] for p in b["probes"]}
    trained = {(r.data.params["cell"], int(r.data.params["seq_len"])) for r in children}
    assert trained == probed and len(children) == len(probed) == 4  # 2 rounds x 2 cells, not 6
    for b in record["brackets"]:  # a closed bracket per cell
        lo, hi = b["longest_solved"], b["shortest_failed"]
        i = b["lens"].index(lo) if lo is not None else -1
        j = b["lens"].index(hi) if hi is not None else len(b["lens"])
        assert j - i == 1
    assert "longest T solved" in out.stdout and "4 runs trained now" in out.stdout

    # resume: the bisection replays from finished runs (one worker: nothing is left to train)
    again = run_cli(*args, "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 runs trained now" in again.stdout
    assert len(client.search_runs([exp.experiment_id], max_results=1000)) == len(runs)

    # the end check (issue 21, item 11): the bisection replays, then one round of neighbours
    check = run_cli(*args, "--check-monotone", cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-3000:]
    (tmp_path / "c").mkdir()
    record = json.loads(
        open(
            client.download_artifacts(parent.info.run_id, "critical.json", str(tmp_path / "c"))
        ).read()
    )
    checked = [(b["cell"], c["seq_len"]) for b in record["brackets"] for c in b["checks"]]
    for b in record["brackets"]:
        assert not {c["seq_len"] for c in b["checks"]} & {p["seq_len"] for p in b["probes"]}
    assert f"{len(checked)} runs trained now" in check.stdout

    rep = run_cli("report", "--tracking-uri", uri, "--out", "rep", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr[-3000:]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Critical length" in md and "| simple_rnn | none |" in md
    assert (tmp_path / "rep" / "critical_length.png").exists()


def test_brackets_of_one_cell_and_clip_under_two_optimizers_stay_apart():
    """The optimizer axis: adam and sgd brackets of the same task, cell and clip bisect and
    end-check separately (each probe carries its optimizer)."""
    from suite.study.critical import Bracket, bisect, check_monotone

    sgd = "sgd(lr=0.01,momentum=0.9)"
    adam_b = Bracket("adding", "irnn", "none", [10, 20, 50, 100, 200])
    sgd_b = Bracket("adding", "irnn", "none", [10, 20, 50, 100, 200], optimizer=sgd)
    assert adam_b.key != sgd_b.key

    def solves(p):  # both solve up to T = 20; only sgd, non-monotone, also T = 100
        ok = p.seq_len <= 20 or (p.optimizer == sgd and p.seq_len == 100)
        return "solved" if ok else "failed"

    bisect([adam_b, sgd_b], lambda probes: {p: solves(p) for p in probes})
    for b in (adam_b, sgd_b):
        assert (b.longest_solved, b.shortest_failed) == (20, 50)
    ran = check_monotone([adam_b, sgd_b], lambda probes: {p: solves(p) for p in probes})
    assert sorted((p.optimizer, p.seq_len) for p in ran) == [("adam", 100), (sgd, 100)]
    assert sgd_b.checks == {100: "solved"} and sgd_b.non_monotone == [100]
    assert adam_b.checks == {100: "failed"} and adam_b.non_monotone == []


def _critical_record(uri, tmp_path, sub):
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnbench")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parent = [r for r in runs if r.data.tags.get("rnnbench.kind") == "sweep"][0]
    (tmp_path / sub).mkdir()
    path = client.download_artifacts(parent.info.run_id, "critical.json", str(tmp_path / sub))
    children = [r for r in runs if "rnnbench.config_hash" in r.data.tags]
    return json.loads(open(path).read()), children


def _brackets(record):
    return sorted(
        (b["cell"], b["longest_solved"], b["shortest_failed"],
         tuple(sorted(p["seq_len"] for p in b["probes"])))
        for b in record["brackets"]
    )  # fmt: skip


@pytest.mark.jax
def test_critical_sweep_killed_mid_round_with_sigkill_reruns_to_the_same_brackets(
    uninterrupted, tmp_path
):
    """SIGKILL after the first run of round 2 (one of its two probes finished, the other
    training), then the same command: the brackets of an uninterrupted sweep, and no config
    with two FINISHED runs (issue 25)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import mlflow

    (tmp_path / "crit.toml").write_text(TINY)
    base = ("sweep", "crit.toml", "--critical", "--workers", "1", *JAX_ALONE, "--tracking-uri")
    ref_record = uninterrupted.record
    assert ref_record is not None, uninterrupted.out.stderr[-3000:]

    uri = new_store(tmp_path / "mlflow.db")  # the store exists before the sweep polls it
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    err = open(tmp_path / "sweep.err", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "suite.cli", *base, uri], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    client = mlflow.MlflowClient(uri)
    deadline, finished = time.time() + 300, 0
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            exp = client.get_experiment_by_name("rnnbench")
            if exp is None:
                continue
            runs = client.search_runs([exp.experiment_id], max_results=100)
            kids = [r for r in runs if "rnnbench.config_hash" in r.data.tags]
            finished = sum(r.info.status == "FINISHED" for r in kids)
            if finished >= 3:  # round 1 (2 probes) and one probe of round 2 done
                break
        assert proc.poll() is None, "ended early: " + (tmp_path / "sweep.err").read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert finished == 3
    time.sleep(1)  # the worker dies with its parent
    again = run_cli(*base, uri, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 runs trained now" in again.stdout  # only the probe the kill interrupted
    record, children = _critical_record(uri, tmp_path, "run")
    assert _brackets(record) == _brackets(ref_record)
    finished_per_hash: dict[str, int] = {}
    for r in children:
        if r.info.status == "FINISHED":
            h = r.data.tags["rnnbench.config_hash"]
            finished_per_hash[h] = finished_per_hash.get(h, 0) + 1
    assert set(finished_per_hash.values()) == {1} and len(finished_per_hash) == 4
