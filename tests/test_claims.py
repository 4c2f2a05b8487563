"""The claims (suite.findings.analysis): hand-logged MLflow runs in a real sqlite store, with real
grad_profile.json artifacts and varied gradient norms, where changing the numbers alone moves
each claim through SUPPORTED, REFUTED, MIXED and NOT TESTABLE."""

from __future__ import annotations

import math

import pytest
from conftest import decay_profile, log_fake_run, run_cli

N, C, V = "none", "global_clipnorm=1", "clipvalue=0.1"
CAP = {"stop_reason": "max_seconds reached", "run_steps": 700, "max_steps": 3000}
SPIKY = {"curves": {"grad_norm": [1, 1, 1, 1], "grad_norm_max": [100, 2, 30, 2]}}
# the first window's 100x would look like a spike: the rule leaves the first window out
CALM = {"curves": {"grad_norm": [1, 1, 1, 1], "grad_norm_max": [100, 2, 3, 2]}}


def _sweep(uri, rows, name="s", seeds=(0, 1, 2)):
    """rows: (task, T, cell, clip, status, **log_fake_run options) for each seed; loaded back."""
    import mlflow

    from suite.findings.report import load_sweep

    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment(name)
    parent = client.create_run(
        exp_id, run_name=f"sweep-{name}", tags={"rnnbench.kind": "sweep"}
    ).info.run_id
    client.log_param(parent, "spec", name)
    for task, T, cell, clip, status, *kw in rows:
        for seed in seeds:
            st = status[seed] if isinstance(status, list) else status
            log_fake_run(
                client, exp_id, parent, task, T, cell, clip, seed, st, **(kw[0] if kw else {})
            )
    client.set_terminated(parent, "FINISHED")
    return load_sweep(uri, name)


def _claims(data):
    from suite.findings.claims import check_claims

    return {c.number: c for c in check_claims(data)}


def _prof(T, slope, scale=1.0):
    return {"profiles": [decay_profile(T, slope, scale)]}


# ----- small statistics -------------------------------------------------------------------


def test_wilson_and_fisher_match_known_values():
    from suite.findings.analysis import fisher_greater, improved, wilson

    lo, hi = wilson(0, 3)
    assert lo == 0 and hi == pytest.approx(0.5615, abs=1e-4)
    lo, hi = wilson(3, 3)
    assert hi == 1 and lo == pytest.approx(0.4385, abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0, 0))
    assert fisher_greater(3, 3, 0, 3) == pytest.approx(1 / 20)
    assert fisher_greater(6, 6, 0, 6) == pytest.approx(1 / 924)
    assert fisher_greater(0, 3, 3, 3) == pytest.approx(1.0)
    assert improved(3, 3, 0, 3)[0] is False  # p = 0.05 is not < 0.05
    assert improved(6, 6, 0, 6)[0] is True
    assert improved(60, 100, 45, 100)[0] is True  # 15 points, p ≈ 0.02
    assert improved(540, 1000, 500, 1000)[0] is False  # p < 0.05 but only 4 points


def test_copy_slope_leaves_out_recall_positions_and_zeros():
    from suite.core.train import grad_decay_slope
    from suite.findings.analysis import task_slope

    T = 10  # copy@10 reads 30 steps: 20 before the recall positions, 10 recall positions
    head = decay_profile(20, -10.0)
    head[0] = 0.0  # an exact zero the profile floors to 1e-30
    prof = head + [1e3] * 10
    assert task_slope(prof, "copy", T, 30) == pytest.approx(-10.0, abs=1e-6)
    assert abs(grad_decay_slope(prof) + 10.0) > 5  # the raw slope is far off
    assert task_slope(decay_profile(50, -4.0), "adding", 50) == pytest.approx(-4.0)
    assert math.isnan(task_slope([0.0, 0.0, 1.0], "adding", 3))


# ----- claim 1 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "with_c, with_v, expected",
    [
        ("solved", "solved", "SUPPORTED"),
        ("diverged", "diverged", "REFUTED"),
        ("solved", "diverged", "MIXED"),  # per clip setting: one rescues, one does not
        ("capped", "capped", "NOT TESTABLE"),  # the only partners were cut by the time cap
    ],
)
def test_claim1(sqlite_uri, with_c, with_v, expected):
    def row(clip, st):
        return ("adding", 10, "irnn", clip, "unsolved", CAP) if st == "capped" else (
            "adding", 10, "irnn", clip, st)  # fmt: skip

    data = _sweep(
        sqlite_uri, [("adding", 10, "irnn", N, "diverged"), row(C, with_c), row(V, with_v)]
    )
    c = _claims(data)[1]
    assert c.finding == expected, c.evidence
    if expected == "MIXED":
        assert f"{C} rescued 3/3 (100%)" in c.evidence and f"{V} rescued 0/3 (0%)" in c.evidence
    if expected == "NOT TESTABLE":
        assert c.excluded == 6 and "6 time-capped run(s) excluded" in c.evidence


def test_claim1_needs_enough_pairs(sqlite_uri):
    # one seed diverged without clipping, and clipping "rescued" it: 1/1 decides nothing
    data = _sweep(
        sqlite_uri,
        [("adding", 10, "irnn", N, ["diverged", "unsolved", "unsolved"]),
         ("adding", 10, "irnn", C, "unsolved")],
    )  # fmt: skip
    c = _claims(data)[1]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert f"{C} rescued 1/1 (100%) (too few pairs to decide" in c.evidence


def test_claim1_needs_a_divergence(sqlite_uri):
    data = _sweep(
        sqlite_uri, [("adding", 10, "irnn", N, "unsolved"), ("adding", 10, "irnn", C, "diverged")]
    )
    c = _claims(data)[1]
    assert c.finding == "NOT TESTABLE" and "no run diverged without clipping" in c.evidence


# ----- claim 2 ----------------------------------------------------------------------------


def _copy_prof(slope, recall, zero=False):
    head = decay_profile(20, slope)
    if zero:
        head[0] = 0.0
    return {"profiles": [head + [recall] * 10], "input_length": 30}


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim2(sqlite_uri, expected):
    # copy@10: tanh fails without clipping; the clipped profile has the same decay at another
    # scale (clipping rescales) but other recall values and a floored zero: only the trimmed
    # slope sees them as the same
    clip_solves = expected == "REFUTED"
    same = expected in ("SUPPORTED", "NOT TESTABLE")
    rows = [
        ("copy", 10, "simple_rnn", N, "unsolved", _copy_prof(-10.0, 1e3)),
        (
            "copy", 10, "simple_rnn", C, "solved" if clip_solves else "unsolved",
            _copy_prof(-10.0 if same else -2.0, 1.0, zero=True),
        ),
        ("copy", 10, "lstm", N, "unsolved" if expected == "NOT TESTABLE" else "solved"),
    ]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows))[2]
    assert c.finding == expected, c.evidence
    if expected == "SUPPORTED":
        assert "the same in 1/1 pairs" in c.evidence and "-10 without vs -10 with" in c.evidence
    if expected == "NOT TESTABLE":
        assert "no cell solved" in c.evidence and "copy@10" in c.evidence


def test_claim2_ignores_task_T_no_cell_solved(sqlite_uri):
    """adding@50: nothing solved it, so it is no evidence; adding@10 decides the claim."""
    rows = [
        ("adding", 10, "simple_rnn", N, "unsolved"),
        ("adding", 10, "simple_rnn", C, "solved"),
        ("adding", 10, "lstm", N, "solved"),
        ("adding", 50, "simple_rnn", N, "unsolved"),
        ("adding", 50, "simple_rnn", C, "unsolved"),
        ("adding", 50, "lstm", N, "unsolved"),
    ]
    c = _claims(_sweep(sqlite_uri, rows))[2]
    assert c.finding == "REFUTED", c.evidence
    assert "Not counted: adding@50 (no cell solved them)" in c.evidence


# ----- claim 3 ----------------------------------------------------------------------------


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim3(sqlite_uri, expected):
    lstm50 = "solved" if expected in ("SUPPORTED", "MIXED") else "unsolved"
    tanh10 = "unsolved" if expected == "NOT TESTABLE" else "solved"
    lstm10 = "unsolved" if expected == "NOT TESTABLE" else "solved"
    s_lstm, s_tanh = {"SUPPORTED": (-1, -10), "REFUTED": (-10, -10), "MIXED": (-10, -1)}.get(
        expected, (None, None)
    )
    rows = [
        ("adding", 10, "simple_rnn", N, tanh10),
        ("adding", 10, "lstm", N, lstm10),
        ("adding", 50, "simple_rnn", N, "unsolved", _prof(50, s_tanh) if s_tanh else {}),
        ("adding", 50, "lstm", N, lstm50, _prof(50, s_lstm) if s_lstm else {}),
    ]
    c = _claims(_sweep(sqlite_uri, rows))[3]
    assert c.finding == expected, c.evidence
    if expected == "MIXED":
        assert "[adding length: holds]" in c.evidence and "[adding profile: fails]" in c.evidence


# ----- claim 4 ----------------------------------------------------------------------------


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim4(sqlite_uri, expected):
    spiky = expected in ("SUPPORTED", "MIXED")
    none_kw = dict(SPIKY if spiky else CALM)
    if expected == "NOT TESTABLE":  # every unclipped run cut by the time cap, one window each
        none_kw = CAP
    clip_st = "solved" if expected == "SUPPORTED" else "unsolved"
    rows = [("adding", 10, "lstm", N, "unsolved", none_kw), ("adding", 10, "lstm", C, clip_st)]
    c = _claims(_sweep(sqlite_uri, rows, seeds=range(6)))[4]
    assert c.finding == expected, c.evidence
    if expected == "REFUTED":
        assert "0/6 unclipped LSTM/GRU runs spiked" in c.evidence  # the first window is left out
    if expected == "SUPPORTED":
        assert "6/6 unclipped" in c.evidence and "solved 6/6 (p = 0.0011)" in c.evidence
    if expected == "NOT TESTABLE":
        assert c.excluded == 6


def test_claim4_spikes_must_be_in_most_runs(sqlite_uri):
    status = ["unsolved"] * 6
    import mlflow

    from suite.findings.report import load_sweep

    # 2 of 6 unclipped runs spike: not "most runs"
    client = mlflow.MlflowClient(sqlite_uri)
    exp = client.create_experiment("few")
    parent = client.create_run(exp, tags={"rnnbench.kind": "sweep"}).info.run_id
    for seed in range(6):
        kw = SPIKY if seed < 2 else CALM
        log_fake_run(client, exp, parent, "adding", 10, "lstm", N, seed, status[seed], **kw)
        log_fake_run(client, exp, parent, "adding", 10, "lstm", C, seed, "unsolved")
    c = _claims(load_sweep(sqlite_uri, "few"))[4]
    assert c.finding == "REFUTED" and "2/6 unclipped" in c.evidence, c.evidence


# ----- claim 5 ----------------------------------------------------------------------------


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim5(sqlite_uri, expected):
    irnn_none = {"SUPPORTED": ("diverged",), "REFUTED": ("unsolved",), "MIXED": ("unsolved",)}
    irnn_none = irnn_none.get(expected, ("unsolved", CAP))
    irnn_clip = "solved" if expected in ("SUPPORTED", "MIXED") else "unsolved"
    lstm = "unsolved" if expected == "NOT TESTABLE" else "solved"
    rows = [
        ("adding", 10, "irnn", N, *irnn_none),
        ("adding", 10, "irnn", C, irnn_clip),
        ("adding", 10, "lstm", N, lstm),
        ("adding", 10, "simple_rnn", N, "unsolved"),
    ]
    c = _claims(_sweep(sqlite_uri, rows, seeds=range(6)))[5]
    assert c.finding == expected, c.evidence
    if expected == "SUPPORTED":
        assert "irnn T = 10, lstm T = 10, tanh no length" in c.evidence
        assert "irnn diverged 6/6 without clipping" in c.evidence


# ----- claim 6 ----------------------------------------------------------------------------


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim6(sqlite_uri, expected):
    recall = {
        "SUPPORTED": ("unsolved", "solved"),  # delayed_recall: tanh beats lstm (a reversal)
        "REFUTED": ("solved", "unsolved"),  # lstm on top everywhere, claim 3 holds everywhere
        "MIXED": ("solved", "solved"),  # a tie: no reversal, but claim 3 fails there
        "NOT TESTABLE": ("unsolved", "unsolved"),
    }[expected]
    adding_lstm = "unsolved" if expected == "NOT TESTABLE" else "solved"
    rows = [
        ("adding", 10, "lstm", N, adding_lstm),
        ("adding", 10, "simple_rnn", N, "unsolved"),
        ("delayed_recall", 10, "lstm", N, recall[0]),
        ("delayed_recall", 10, "simple_rnn", N, recall[1]),
    ]
    f = _claims(_sweep(sqlite_uri, rows))
    assert f[6].finding == expected, f[6].evidence
    if expected == "MIXED":
        assert f[3].finding == "MIXED"  # claim 3 mixed alone does not make claim 6 SUPPORTED
    if expected == "NOT TESTABLE":  # nothing solved anywhere
        assert f[3].finding == "NOT TESTABLE" and "neither gated nor tanh" in f[3].evidence


def test_nothing_solved_leaves_claims_2_and_6_untestable_and_no_ranking(sqlite_uri):
    from suite.findings.analysis import verdict

    rows = [
        (task, 10, cell, clip, "unsolved")
        for task in ("adding", "delayed_recall")
        for cell in ("simple_rnn", "lstm")
        for clip in (N, C)
    ]
    data = _sweep(sqlite_uri, rows)
    f = _claims(data)
    assert f[2].finding == "NOT TESTABLE" and "no cell solved" in f[2].evidence
    assert f[6].finding == "NOT TESTABLE"
    text = "\n".join(verdict(data))
    assert "No run solved" in text and "Ranking" not in text
    assert "best cell depends" not in text


# ----- report.md --------------------------------------------------------------------------


def test_report_prints_claims_and_rules(sqlite_uri, tmp_path):
    from suite.findings.analysis import CLAIMS, HELP_MARGIN, SPIKE_RATIO
    from suite.findings.report import write_report

    data = _sweep(sqlite_uri, [("adding", 10, "lstm", N, "solved")], name="md")
    md = write_report(data, tmp_path, log_to_mlflow=False).read_text()
    table = md.split("## Claims")[1].split("## Solve table")[0]
    assert table.count("**NOT TESTABLE**") == len(CLAIMS)  # one cell, no clipping: nothing testable
    rules = md.split("## How each finding is decided")[1]
    for n in CLAIMS:
        assert f"**Claim {n}.**" in rules
    assert f">= {SPIKE_RATIO:g}" in rules and f"at least {HELP_MARGIN:.0%}" in rules
    assert "{" not in rules  # every margin filled in


def test_solve_table_counts_capped_runs_apart(sqlite_uri):
    """Time-capped runs are not counted; a run that used its whole budget is, whatever its tag."""
    import mlflow

    from suite.findings.report import load_sweep, solve_table

    client = mlflow.MlflowClient(sqlite_uri)
    exp = client.create_experiment("capped")
    parent = client.create_run(exp, tags={"rnnbench.kind": "sweep"}).info.run_id
    client.log_param(parent, "spec", "capped")
    falling = {"curves": {"val_loss_ratio": [0.9, 0.8, 0.7, 0.6, 0.5]}}
    flat = {"curves": {"val_loss_ratio": [0.9, 0.8, 0.8, 0.8, 0.8]}}
    for seed, kw in enumerate([{**CAP, "run_steps": 700}, {**CAP, "run_steps": 900}, falling]):
        log_fake_run(client, exp, parent, "adding", 10, "lstm", N, seed, "unsolved", **kw)
    # stop reason says time cap, but all 3000 steps ran: complete, counted as a failure
    full = {**CAP, "run_steps": 3000, **flat}
    for seed in range(3):
        log_fake_run(client, exp, parent, "adding", 10, "gru", N, seed, "unsolved", **full)
    _, _, table = solve_table(load_sweep(sqlite_uri, "capped"))
    lstm = table["cells"][(("adding", 10), ("lstm", N))]
    assert lstm.startswith("FAIL 0/1 (CI 0–0.79; best 0.5)"), lstm
    assert "undecided" in lstm and "1 budget-limited" in lstm
    assert lstm.endswith("2 time-capped at ~800 steps, not counted"), lstm
    gru = table["cells"][(("adding", 10), ("gru", N))]
    assert gru.startswith("FAIL 0/3 (CI 0–0.56") and "3 plateaued" in gru, gru
    assert "time-capped" not in gru and "undecided" not in gru


def test_report_over_a_real_mlflow_server(mlflow_server, tmp_path):
    """`rnnbench report --tracking-uri http://...` reads the runs and attaches the report there."""
    import mlflow

    rows = [
        ("adding", 10, "lstm", N, "solved"),
        ("adding", 10, "simple_rnn", N, "unsolved"),
        ("adding", 10, "simple_rnn", C, "unsolved"),
    ]
    _sweep(mlflow_server, rows, name="served-report")  # the server is shared by the session
    out = run_cli(
        "report", "--tracking-uri", mlflow_server, "--experiment", "served-report", "--out", "rep",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"| simple_rnn | {C} | FAIL 0/3" in md
    assert "tanh SimpleRNN failed adding@10 without clipping (solved by another cell)" in md
    client = mlflow.MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("served-report")
    # the runs table, not MLflow 3's GenAI overview
    link = f"{mlflow_server}/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    assert f"MLflow UI: {link}" in out.stdout
    parent = client.search_runs([exp.experiment_id], "tags.`rnnbench.kind` = 'sweep'")[0]
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/solve_rate.png"} <= names


# ----- claims 7 and 8 (orthogonal RNN vs tanh, chrono vs default LSTM) ---------------------


@pytest.mark.parametrize(
    "number, cell, rival", [(7, "ortho_rnn", "simple_rnn"), (8, "chrono_lstm", "lstm")]
)
@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claims_7_and_8(sqlite_uri, number, cell, rival, expected):
    # adding: both solve T = 10; at T = 20 the cell solves and the rival does (not)
    rival_20 = {"SUPPORTED": ("unsolved",), "REFUTED": ("solved",), "MIXED": ("unsolved",),
                "NOT TESTABLE": ("unsolved", CAP)}[expected]  # fmt: skip
    rows = [
        ("adding", 10, cell, N, "solved"),
        ("adding", 10, rival, N, "solved"),
        ("adding", 20, cell, N, "solved"),
        ("adding", 20, rival, N, *rival_20),
        ("adding", 20, rival, C, "unsolved"),  # every clip setting of the rival counts
    ]
    if expected == "MIXED":  # on a second task the rival goes further
        rows += [("copy", 10, cell, N, "unsolved"), ("copy", 10, rival, N, "solved")]
    c = _claims(_sweep(sqlite_uri, rows))[number]
    assert c.finding == expected, c.evidence
    if expected == "SUPPORTED":
        assert f"{cell} solved T = 20 that {rival} failed with every clip setting" in c.evidence
    if expected == "NOT TESTABLE":
        assert f"{rival} undecided or not run at T = 20" in c.evidence and c.excluded == 3


def test_claims_7_and_8_need_both_cells(sqlite_uri):
    f = _claims(_sweep(sqlite_uri, [("adding", 10, "lstm", N, "solved")]))
    assert f[7].finding == f[8].finding == "NOT TESTABLE"
    assert "needs ortho_rnn and simple_rnn runs" in f[7].evidence


def test_beyond_is_untestable_when_neither_cell_solved_a_length(sqlite_uri):
    rows = [("adding", 10, "ortho_rnn", N, "unsolved"), ("adding", 10, "simple_rnn", N, "unsolved")]
    c = _claims(_sweep(sqlite_uri, rows))[7]
    assert c.finding == "NOT TESTABLE" and "neither solved any length" in c.evidence


def test_crashed_runs_only_make_every_claim_untestable(sqlite_uri):
    """Runs that crashed before logging params (FAILED / KILLED): read back from their names,
    counted as failed/killed, never as evidence."""
    import mlflow

    from suite.findings.analysis import verdict
    from suite.findings.report import load_sweep

    client = mlflow.MlflowClient(sqlite_uri)
    exp_id = client.create_experiment("crash")
    parent = client.create_run(exp_id, run_name="sweep-crash", tags={"rnnbench.kind": "sweep"})
    pid = parent.info.run_id
    for seed, end in ((0, "FAILED"), (1, "KILLED")):
        run = client.create_run(
            exp_id,
            run_name=f"adding-T10-ortho_rnn-global_clipnorm=1-s{seed}",
            tags={"mlflow.parentRunId": pid, "rnnbench.config_hash": f"h{seed}"},
        )
        client.set_terminated(run.info.run_id, end)
    data = load_sweep(sqlite_uri, "crash")
    assert {(r.task, r.seq_len, r.cell, r.clip, r.status) for r in data.runs} == {
        ("adding", 10, "ortho_rnn", C, "failed"), ("adding", 10, "ortho_rnn", C, "killed")
    }  # fmt: skip
    claims = _claims(data)
    assert {c.finding for c in claims.values()} == {"NOT TESTABLE"}
    assert verdict(data) == ["No run finished, so the data supports no statement yet."]


def test_verdict_warns_about_fewer_than_three_seeds_and_reads_final_gradient_norm(sqlite_uri):
    from suite.findings.analysis import RunInfo, run_max_grad, verdict

    data = _sweep(sqlite_uri, [("adding", 10, "lstm", N, "solved")], seeds=(0,))
    assert verdict(data)[0].startswith("Only 1 seed(s) per configuration")
    # no stepped gradient norms: the run's final grad_norm_max metric stands in
    r = RunInfo("r", "adding", 10, "lstm", N, 0, "solved", {"grad_norm_max": 7.0})
    assert run_max_grad(r) == 7.0
    r.metrics = {}
    assert math.isnan(run_max_grad(r))


def test_copy_slope_with_task_options_cuts_its_own_recall_positions():
    from suite.findings.analysis import task_slope

    prof = decay_profile(13, -10.0) + [1e3] * 3  # copy@10 recalling 3 symbols reads 16 steps
    assert task_slope(prof, "copy", 10, 16, {"num_recall": 3}) == pytest.approx(-10.0, abs=1e-6)
    assert abs(task_slope(prof, "copy", 10, 16) + 10.0) > 5  # without its options: not cut
