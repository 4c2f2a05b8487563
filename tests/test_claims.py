"""The findings (suite.findings): hand-logged MLflow runs in a real sqlite store, with real
grad_profile.json artifacts and varied curves, where changing the numbers alone moves each claim
through SUPPORTED, REFUTED, MIXED and NOT TESTABLE; and each rigor rule of issue 21 on the case
that broke it (significance, missing seeds, "cannot", clip settings probed at other lengths)."""

from __future__ import annotations

import math

import pytest
from conftest import decay_profile, log_fake_run, run_cli

N, C, V = "none", "global_clipnorm=1", "clipvalue=0.1"
CAP = {"stop_reason": "max_seconds reached", "run_steps": 700, "max_steps": 3000}
SPIKY = {"curves": {"grad_norm": [1, 1, 1, 1], "grad_norm_max": [100, 2, 30, 2]}}
# the first window's 100x would look like a spike: the rule leaves the first window out
CALM = {"curves": {"grad_norm": [1, 1, 1, 1], "grad_norm_max": [100, 2, 3, 2]}}
FLAT = [0.95, 0.95, 0.95, 0.95, 0.95]  # a plateaued failure: conclusive
FALLING = [0.9, 0.8, 0.7, 0.6, 0.5]  # a budget-limited failure: still improving
SGD = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
SIX = tuple(range(6))


def _log(client, exp_id, parent, task, T, cell, clip, seed, status, kw):
    """One seed as ``status`` says: solved | unsolved (plateaued) | falling (budget-limited) |
    diverged | capped (time-capped) | crashed (a FAILED run that logged nothing) | absent."""
    kw = dict(kw)
    if status == "absent":
        return
    if status == "crashed":
        extra = kw.get("params") or {}
        run = client.create_run(
            exp_id, run_name=f"{task}-T{T}-{cell}-{clip}-s{seed}",
            tags={"mlflow.parentRunId": parent, "rnnbench.config_hash":
                  f"{task}{T}{cell}{clip}{seed}" + "".join(f"{k}{v}" for k, v in extra.items())},
        )  # fmt: skip
        client.set_terminated(run.info.run_id, "FAILED")
        return
    curves = dict(kw.pop("curves", {}))
    if status == "capped":
        status, kw = "unsolved", {**CAP, **kw}
    elif status == "falling":
        status, curves = "unsolved", {"val_loss_ratio": FALLING, **curves}
    elif status == "unsolved":
        curves = {"val_loss_ratio": FLAT, **curves}
    log_fake_run(client, exp_id, parent, task, T, cell, clip, seed, status, curves=curves, **kw)


def _sweep(uri, rows, name="s", seeds=(0, 1, 2)):
    """rows: (task, T, cell, clip, status or [status per seed], **log_fake_run options); the
    parent logs the spec's seeds as `rnnbench sweep` does; loaded back."""
    import mlflow

    from suite.findings.data import load_sweep

    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment(name)
    parent = client.create_run(
        exp_id, run_name=f"sweep-{name}", tags={"rnnbench.kind": "sweep"}
    ).info.run_id
    client.log_param(parent, "spec", name)
    client.log_param(parent, "seeds", ",".join(map(str, seeds)))
    for task, T, cell, clip, status, *kw in rows:
        for i, seed in enumerate(seeds):
            st = status[i] if isinstance(status, list) else status
            _log(client, exp_id, parent, task, T, cell, clip, seed, st, kw[0] if kw else {})
    client.set_terminated(parent, "FINISHED")
    return load_sweep(uri, name)


def _claims(data):
    from suite.findings.claims import check_claims

    return {c.number: c for c in check_claims(data)}


def _prof(T, slope, scale=1.0):
    return {"profiles": [decay_profile(T, slope, scale)]}


# ----- statistics: one significance rule --------------------------------------------------


def test_wilson_fisher_and_rank_sum_match_known_values():
    from suite.findings.stats import fisher_greater, rank_sum_greater, wilson

    lo, hi = wilson(0, 3)
    assert lo == 0 and hi == pytest.approx(0.5615, abs=1e-4)
    lo, hi = wilson(3, 3)
    assert hi == 1 and lo == pytest.approx(0.4385, abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0, 0))
    assert fisher_greater(3, 3, 0, 3) == pytest.approx(1 / 20)
    assert fisher_greater(6, 6, 0, 6) == pytest.approx(1 / 924)
    assert fisher_greater(0, 3, 3, 3) == pytest.approx(1.0)
    # the rank-sum test is Fisher's permutation test for continuous values: same floor
    assert rank_sum_greater([3, 4, 5], [0, 1, 2]) == pytest.approx(1 / 20)
    assert rank_sum_greater([-1] * 6, [-10] * 6) == pytest.approx(1 / 924)
    assert rank_sum_greater([0, 1, 2], [3, 4, 5]) == pytest.approx(1.0)


def test_the_significance_rule_says_indicative_without_significance():
    from suite.findings.stats import compare

    assert (compare(3, 3, 0, 3).holds, compare(3, 3, 0, 3).text) == (None, "indicative (p = 0.05)")
    assert compare(2, 3, 0, 3).text == "indicative (p = 0.2)"
    assert compare(2, 3, 1, 3).holds is None and compare(2, 3, 1, 3).text == "indicative (p = 0.5)"
    assert (compare(6, 6, 0, 6).holds, compare(6, 6, 0, 6).text) == (True, "p = 0.0011")
    assert compare(60, 100, 45, 100).holds is True  # 15 points, p ≈ 0.02
    big = compare(540, 1000, 500, 1000)  # p < 0.05 but only 4 points: below the margin
    assert big.holds is False and "below the 10%-point margin" in big.text
    assert compare(0, 3, 0, 3).holds is False
    # lacking runs: significant on the counted runs, but 4 lacking runs could overturn it
    shaky = compare(6, 6, 0, 6, lack2=4)
    assert shaky.holds is True  # 6/6 vs 4/10 is still significant
    assert compare(4, 4, 0, 4, lack2=2).holds is None
    assert "could overturn it" in compare(4, 4, 0, 4, lack2=2).text


def test_grad_decay_is_logged_with_the_report_slope_rule():
    """Item 10: the metric training logs and the report's slope are one function."""
    from suite.core.train import grad_decay_slope
    from suite.findings.runs import task_slope
    from tasks import get_task

    T = 10  # copy@10 reads 30 steps: 20 before the recall positions, 10 recall positions
    head = decay_profile(20, -10.0)
    head[0] = 0.0  # an exact zero the profile floors to 1e-30
    prof = head + [1e3] * 10
    assert task_slope(prof, "copy", T, 30) == pytest.approx(-10.0, abs=1e-6)
    assert grad_decay_slope(prof, get_task("copy", seq_len=T)) == pytest.approx(-10.0, abs=1e-6)
    assert task_slope(decay_profile(50, -4.0), "adding", 50) == pytest.approx(-4.0)
    assert math.isnan(task_slope([0.0, 0.0, 1.0], "adding", 3))


def test_copy_slope_with_task_options_cuts_its_own_recall_positions():
    from suite.findings.runs import task_slope

    prof = decay_profile(13, -10.0) + [1e3] * 3  # copy@10 recalling 3 symbols reads 16 steps
    assert task_slope(prof, "copy", 10, 16, {"num_recall": 3}) == pytest.approx(-10.0, abs=1e-6)
    assert abs(task_slope(prof, "copy", 10, 16) + 10.0) > 5  # without its options: not cut


# ----- outcomes: every seed accounted for -------------------------------------------------


def test_one_solved_and_two_crashed_seeds_leave_a_configuration_undecided(sqlite_uri):
    """Item 3: crashed seeds count like incomplete runs, not as nothing."""
    from suite.findings.outcomes import outcomes

    rows = [("adding", 10, "lstm", N, ["solved", "crashed", "crashed"]),
            ("adding", 10, "gru", N, ["solved", "solved", "absent"]),
            ("adding", 10, "irnn", N, ["unsolved", "unsolved", "crashed"])]  # fmt: skip
    outs = outcomes(_sweep(sqlite_uri, rows))
    lstm, gru, irnn = (outs[("adding", 10, c, N, "adam")] for c in ("lstm", "gru", "irnn"))
    assert (lstm.state, lstm.solved, lstm.missing, lstm.expected) == ("undecided", 1, 2, 3)
    assert (gru.state, gru.missing) == ("solved", 1)  # 2 of 3: solved whatever seed 2 does
    assert (irnn.state, irnn.missing) == ("failed", 1)  # 0 + 1 of 3: failed whatever it does


def test_a_finding_says_how_many_runs_it_lacks(sqlite_uri):
    rows = [("adding", 10, "ortho_rnn", N, ["solved", "crashed", "capped"]),
            ("adding", 10, "simple_rnn", N, "unsolved")]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows))[7]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert (c.capped, c.missing) == (1, 1)
    assert "lacks 2 run(s): 1 time-capped, 1 missing" in c.evidence


def test_adam_and_sgd_runs_never_merge_and_treatments_carry_omega(sqlite_uri):
    from suite.findings.data import is_clip_setting
    from suite.findings.outcomes import outcomes

    rows = [("adding", 10, "irnn", N, "diverged"),
            ("adding", 10, "irnn", N, "solved", {"params": SGD}),
            ("adding", 10, "irnn", C, "solved", {"params": {"omega": 2.0}}),
            ("adding", 10, "irnn", "normalize=1", "solved")]  # fmt: skip
    data = _sweep(sqlite_uri, rows)
    keys = set(outcomes(data))
    assert ("adding", 10, "irnn", N, "adam") in keys
    assert ("adding", 10, "irnn", N, "sgd(lr=0.01,momentum=0.9)") in keys
    assert ("adding", 10, "irnn", "global_clipnorm=1+omega=2", "adam") in keys
    assert outcomes(data)[("adding", 10, "irnn", N, "adam")].state == "failed"
    assert not is_clip_setting("global_clipnorm=1+omega=2") and not is_clip_setting("normalize=1")
    # claim 1 compares "none" with clip settings only: omega and normalize are not clip settings
    c = _claims(data)[1]
    assert c.finding == "NOT TESTABLE" and "needs runs both with and without clipping" in c.evidence


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
    rows = [("adding", 10, "irnn", N, "diverged"), ("adding", 10, "irnn", C, with_c),
            ("adding", 10, "irnn", V, with_v)]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[1]
    assert c.finding == expected, c.evidence
    if expected == "MIXED":
        assert f"{C} rescued 6/6 (100%)" in c.evidence and f"{V} rescued 0/6 (0%)" in c.evidence
        assert "not diverged 6/6 with it vs 0/6 without (p = 0.0011)" in c.evidence
    if expected == "NOT TESTABLE":
        assert c.excluded == 12 and "lacks 12 run(s): 12 time-capped" in c.evidence


def test_claim1_on_three_seeds_is_only_indicative(sqlite_uri):
    """Item 4: 3/3 rescued vs 0/3 is p = 0.05: indicative, so not SUPPORTED."""
    rows = [("adding", 10, "irnn", N, "diverged"), ("adding", 10, "irnn", C, "solved")]
    c = _claims(_sweep(sqlite_uri, rows))[1]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert "rescued 3/3 (100%)" in c.evidence and "indicative (p = 0.05)" in c.evidence


def test_claim1_needs_a_divergence(sqlite_uri):
    rows = [("adding", 10, "irnn", N, "unsolved"), ("adding", 10, "irnn", C, "diverged")]
    c = _claims(_sweep(sqlite_uri, rows))[1]
    assert c.finding == "NOT TESTABLE" and "no run diverged without clipping" in c.evidence


def test_claim1_is_decided_per_optimizer(sqlite_uri):
    rows = [("adding", 10, "irnn", N, "diverged"), ("adding", 10, "irnn", C, "solved"),
            ("adding", 10, "irnn", N, "diverged", {"params": SGD}),
            ("adding", 10, "irnn", C, "diverged", {"params": SGD})]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[1]
    assert c.finding == "MIXED", c.evidence
    assert f"[adam: {C}: holds]" in c.evidence
    assert f"[sgd(lr=0.01,momentum=0.9): {C}: fails]" in c.evidence


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
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[2]
    assert c.finding == expected, c.evidence
    if expected == "SUPPORTED":
        assert "the same in 1/1 pairs" in c.evidence and "-10 (with" in c.evidence
    if expected == "REFUTED":
        assert (
            "clipping rescued tanh SimpleRNN: global_clipnorm=1: copy@10 (p = 0.0011)" in c.evidence
        )
    if expected == "NOT TESTABLE":
        assert "no cell solved" in c.evidence and "copy@10" in c.evidence


def test_claim2_rescue_on_three_seeds_is_indicative(sqlite_uri):
    rows = [("adding", 10, "simple_rnn", N, "unsolved"), ("adding", 10, "simple_rnn", C, "solved"),
            ("adding", 10, "lstm", N, "solved")]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows))[2]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert "only indicatively" in c.evidence and "indicative (p = 0.05)" in c.evidence


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
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[2]
    assert c.finding == "REFUTED", c.evidence
    assert "Not counted: adding@50 (no cell solved them)" in c.evidence
    assert c.label == "REFUTED, 1 of 2 clauses testable"  # no profile logged


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
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[3]
    assert c.finding == expected, c.evidence
    if expected == "MIXED":
        assert "[adding length: holds]" in c.evidence and "[adding profile: fails]" in c.evidence
    if expected == "SUPPORTED":
        assert "gated solved T = 50 (lstm none 6/6) that tanh cannot" in c.evidence
        assert c.label == "SUPPORTED"  # both clauses tested


def test_claim3_says_how_many_clauses_it_could_test(sqlite_uri, tmp_path):
    """Item 6: SUPPORTED on 1 of 4 clauses is said so, in the finding and the claims table."""
    from suite.findings.report import write_report

    rows = [("adding", 10, "simple_rnn", N, "unsolved"), ("adding", 10, "lstm", N, "solved"),
            ("copy", 10, "simple_rnn", N, "unsolved"), ("copy", 10, "lstm", N, "unsolved")]  # fmt: skip
    data = _sweep(sqlite_uri, rows, seeds=SIX)
    c = _claims(data)[3]
    assert c.finding == "SUPPORTED" and c.label == "SUPPORTED, 1 of 4 clauses testable", c.evidence
    assert "(1 of 4 clauses testable;" in c.evidence
    md = write_report(data, tmp_path, log_to_mlflow=False).read_text()
    assert "**SUPPORTED**, 1 of 4 clauses testable" in md


# ----- claim 4 ----------------------------------------------------------------------------


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim4(sqlite_uri, expected):
    spiky = expected in ("SUPPORTED", "MIXED")
    none_kw = dict(SPIKY if spiky else CALM)
    none_st = "unsolved"
    if expected == "NOT TESTABLE":  # every unclipped run cut by the time cap, one window each
        none_kw, none_st = {}, "capped"
    clip_st = "solved" if expected == "SUPPORTED" else "unsolved"
    rows = [("adding", 10, "lstm", N, none_st, none_kw), ("adding", 10, "lstm", C, clip_st)]
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[4]
    assert c.finding == expected, c.evidence
    if expected == "REFUTED":
        assert "0/6 unclipped LSTM/GRU runs spiked" in c.evidence  # the first window is left out
    if expected == "SUPPORTED":
        assert "6/6 unclipped" in c.evidence and "solved 6/6 vs 0/6 (p = 0.0011)" in c.evidence
    if expected == "NOT TESTABLE":
        assert c.excluded == 6


def test_claim4_spikes_must_be_in_most_runs(sqlite_uri):
    status = ["unsolved"] * 6
    import mlflow

    from suite.findings.data import load_sweep

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
    irnn_none = {"SUPPORTED": "diverged", "REFUTED": "unsolved", "MIXED": "unsolved"}
    irnn_none = irnn_none.get(expected, "capped")
    irnn_clip = "solved" if expected in ("SUPPORTED", "MIXED") else "unsolved"
    lstm = "unsolved" if expected == "NOT TESTABLE" else "solved"
    rows = [
        ("adding", 10, "irnn", N, irnn_none),
        ("adding", 10, "irnn", C, irnn_clip),
        ("adding", 10, "lstm", N, lstm),
        ("adding", 10, "simple_rnn", N, "unsolved"),
    ]
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[5]
    assert c.finding == expected, c.evidence
    if expected == "SUPPORTED":
        assert "irnn T = 10, lstm T = 10, simple_rnn no length" in c.evidence
        assert "irnn not diverged 6/6 vs 0/6 without (p = 0.0011)" in c.evidence


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
    f = _claims(_sweep(sqlite_uri, rows, seeds=SIX))
    assert f[6].finding == expected, f[6].evidence
    if expected == "MIXED":
        assert f[3].finding == "MIXED"  # claim 3 mixed alone does not make claim 6 SUPPORTED
    if expected == "NOT TESTABLE":  # nothing solved anywhere
        assert f[3].finding == "NOT TESTABLE" and "neither solved any length" in f[3].evidence


def test_claim6_reversal_on_three_seeds_is_only_indicative(sqlite_uri):
    """Item 4: 3/3 vs 0/3 each way does not make a reversal."""
    rows = [("adding", 10, "lstm", N, "solved"), ("adding", 10, "simple_rnn", N, "unsolved"),
            ("delayed_recall", 10, "lstm", N, "unsolved"),
            ("delayed_recall", 10, "simple_rnn", N, "solved")]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows))[6]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert "only indicatively" in c.evidence and "indicative (p = 0.05)" in c.evidence


def test_nothing_solved_leaves_claims_2_and_6_untestable_and_no_ranking(sqlite_uri):
    from suite.findings.verdict import verdict

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


# ----- claims 7 and 8 (orthogonal RNN vs tanh, chrono vs default LSTM) ---------------------


@pytest.mark.parametrize(
    "number, cell, rival", [(7, "ortho_rnn", "simple_rnn"), (8, "chrono_lstm", "lstm")]
)
@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claims_7_and_8(sqlite_uri, number, cell, rival, expected):
    # adding: both solve T = 10; at T = 20 the cell solves and the rival does (not)
    rival_20 = {"SUPPORTED": "unsolved", "REFUTED": "solved", "MIXED": "unsolved",
                "NOT TESTABLE": "capped"}[expected]  # fmt: skip
    rows = [
        ("adding", 10, cell, N, "solved"),
        ("adding", 10, rival, N, "solved"),
        ("adding", 20, cell, N, "solved"),
        ("adding", 20, rival, N, rival_20),
        ("adding", 20, rival, C, "unsolved"),  # every clip setting of the rival counts
    ]
    if expected == "MIXED":  # on a second task the rival goes further
        rows += [("copy", 10, cell, N, "unsolved"), ("copy", 10, rival, N, "solved")]
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[number]
    assert c.finding == expected, c.evidence
    if expected == "SUPPORTED":
        assert (f"{cell} solved T = 20 ({cell} none 6/6) that {rival} cannot with any setting "
                f"(none 0/6, {C} 0/6): p = 0.0011") in c.evidence  # fmt: skip
    if expected == "NOT TESTABLE":
        assert f"{rival}: none undecided at T = 20 (6 seed(s) lacking)" in c.evidence
        assert c.excluded == 6


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim_12_identity_init(sqlite_uri, expected):
    """relu_rnn (ReLU, orthogonal init) vs irnn vs leaky_rnn (leaky ReLU, identity init) on
    adding: the data alone moves claim 12 through its four findings."""
    relu_20, leaky_20 = {"SUPPORTED": ("unsolved", "solved"), "REFUTED": ("solved", "unsolved"),
                         "MIXED": ("unsolved", "unsolved"),
                         "NOT TESTABLE": ("capped", "capped")}[expected]  # fmt: skip
    rows = [
        ("adding", 10, "irnn", N, "solved"),
        ("adding", 10, "relu_rnn", N, "solved"),
        ("adding", 10, "leaky_rnn", N, "solved"),
        ("adding", 20, "irnn", N, "solved"),
        ("adding", 20, "relu_rnn", N, relu_20),
        ("adding", 20, "leaky_rnn", N, leaky_20),
    ]
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[12]
    assert c.finding == expected, c.evidence
    assert [x.name for x in c.clauses] == ["relu needs identity", "leaky matches irnn"]
    if expected == "SUPPORTED":
        assert "irnn solved T = 20 (irnn none 6/6) that relu_rnn cannot" in c.evidence
    if expected == "NOT TESTABLE":
        assert c.excluded == 12  # both rivals' seeds at T = 20 were time-capped


def test_claim_12_needs_its_cells(sqlite_uri):
    c = _claims(_sweep(sqlite_uri, [("adding", 10, "irnn", N, "solved")]))[12]
    assert c.finding == "NOT TESTABLE"
    assert c.reason == "needs irnn and relu_rnn or leaky_rnn runs on the adding task."


@pytest.mark.parametrize("expected", ["SUPPORTED", "REFUTED", "MIXED", "NOT TESTABLE"])
def test_claim_13_attention(sqlite_uri, expected):
    """The transformer against every recurrent cell, per task: the data alone moves claim 13
    through its four findings."""
    lstm_20 = {"SUPPORTED": "unsolved", "REFUTED": "solved", "MIXED": "unsolved",
               "NOT TESTABLE": "capped"}[expected]  # fmt: skip
    rows = [
        ("adding", 10, "transformer", N, "solved"),
        ("adding", 10, "lstm", N, "solved"),
        ("adding", 20, "transformer", N, "solved"),
        ("adding", 20, "lstm", N, lstm_20),
        ("adding", 20, "simple_rnn", N, "unsolved"),
    ]
    if expected == "MIXED":  # on copy a recurrent cell goes as far
        rows += [("copy", 10, "transformer", N, "solved"), ("copy", 10, "gru", N, "solved")]
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[13]
    assert c.finding == expected, c.evidence
    if expected == "SUPPORTED":
        assert (
            "transformer solved T = 20 (transformer none 6/6) that every recurrent cell cannot"
            in c.evidence
        )


def test_beyond_on_three_seeds_is_indicative_not_supported(sqlite_uri):
    """Item 4: the README's 3/3 vs 0/3 contrast is p = 0.05: indicative."""
    rows = [("adding", 20, "ortho_rnn", N, "solved"), ("adding", 20, "simple_rnn", N, "unsolved"),
            ("adding", 20, "simple_rnn", C, "unsolved")]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows))[7]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert "indicative (p = 0.05)" in c.evidence


def test_beyond_2_of_3_against_1_of_3_does_not_count():
    from suite.findings.stats import compare

    assert compare(2, 3, 1, 3).holds is None  # p = 0.5: no "beats"


def test_cannot_needs_failures_that_plateaued(sqlite_uri):
    """Item 5: tanh's failures at copy@50 were still improving: not "cannot"."""
    rows = [("copy", 50, "ortho_rnn", N, "solved"), ("copy", 50, "simple_rnn", N, "falling"),
            ("copy", 50, "simple_rnn", C, "unsolved")]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[7]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert "none failed T = 50 inconclusively (6 failure(s) budget-limited" in c.evidence
    # the same failures plateaued: "cannot", and 6/6 vs 0/6 is significant
    rows[1] = ("copy", 50, "simple_rnn", N, "unsolved")
    assert _claims(_sweep(sqlite_uri, rows, name="flat", seeds=SIX))[7].finding == "SUPPORTED"


def test_clip_settings_probed_at_other_lengths_give_no_false_every_setting(sqlite_uri):
    """Item 1: simple_rnn solved T = 100 with clipping (never run at T = 20), ortho_rnn only
    T = 20: by monotonicity simple_rnn solves T = 20 with clipping too."""
    rows = [("adding", 20, "ortho_rnn", N, "solved"), ("adding", 100, "ortho_rnn", N, "unsolved"),
            ("adding", 20, "simple_rnn", N, "unsolved"),
            ("adding", 100, "simple_rnn", C, "solved")]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[7]
    assert c.finding == "REFUTED", c.evidence
    assert "every clip setting" not in c.evidence and "cannot with any setting" not in c.evidence
    assert f"T = 20 also solved by simple_rnn {C} (by T = 100)" in c.evidence


def test_a_rival_setting_that_only_crashed_is_missing_not_evidence(sqlite_uri):
    """Item 2: simple_rnn's clipped runs at T = 20 all crashed: no result, not a failure."""
    rows = [("adding", 20, "ortho_rnn", N, "solved"), ("adding", 20, "simple_rnn", N, "unsolved"),
            ("adding", 20, "simple_rnn", C, "crashed")]  # fmt: skip
    c = _claims(_sweep(sqlite_uri, rows, seeds=SIX))[7]
    assert c.finding == "NOT TESTABLE", c.evidence
    assert (
        f"{C} has no result at T = 20" in c.evidence and "lacks 6 run(s): 6 missing" in c.evidence
    )


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

    from suite.findings.data import load_sweep
    from suite.findings.verdict import verdict

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
    assert {(r.task, r.seq_len, r.cell, r.clip, r.optimizer, r.status) for r in data.runs} == {
        ("adding", 10, "ortho_rnn", C, "adam", "failed"),
        ("adding", 10, "ortho_rnn", C, "adam", "killed"),
    }  # fmt: skip
    claims = _claims(data)
    assert {c.finding for c in claims.values()} == {"NOT TESTABLE"}
    assert verdict(data) == ["No run finished, so the data supports no statement yet."]


# ----- verdict ----------------------------------------------------------------------------


def test_verdict_warns_about_fewer_than_three_seeds_and_reads_final_gradient_norm(sqlite_uri):
    from suite.findings.data import RunInfo
    from suite.findings.runs import run_max_grad
    from suite.findings.verdict import verdict

    data = _sweep(sqlite_uri, [("adding", 10, "lstm", N, "solved")], seeds=(0,))
    assert verdict(data)[0].startswith("Only 1 seed(s) per configuration")
    # no stepped gradient norms: the run's final grad_norm_max metric stands in
    r = RunInfo("r", "adding", 10, "lstm", N, 0, "solved", {"grad_norm_max": 7.0})
    assert run_max_grad(r) == 7.0
    r.metrics = {}
    assert math.isnan(run_max_grad(r))


def test_verdict_flags_outcomes_not_monotone_in_T(sqlite_uri):
    """Item 11 (grid): solved at T = 50 but failed at T = 20 is said, not assumed away."""
    from suite.findings.verdict import verdict

    rows = [("adding", 20, "gru", N, "unsolved"), ("adding", 50, "gru", N, "solved")]
    text = "\n".join(verdict(_sweep(sqlite_uri, rows)))
    assert "Not monotone in T: gru none solved adding@50 but failed adding@20" in text


# ----- report.md --------------------------------------------------------------------------


def test_report_prints_claims_and_rules(sqlite_uri, tmp_path):
    from suite.findings.claims import CLAIMS
    from suite.findings.report import write_report
    from suite.findings.runs import SPIKE_RATIO
    from suite.findings.stats import HELP_MARGIN

    data = _sweep(sqlite_uri, [("adding", 10, "lstm", N, "solved")], name="md")
    md = write_report(data, tmp_path, log_to_mlflow=False).read_text()
    # one cell, no clipping: nothing testable; each claim listed apart with its reason
    assert "## Claims decided" not in md
    apart = md.split("## Not testable in this sweep")[1].split("## Verdict")[0]
    assert apart.count("\n- ") == len(CLAIMS) and apart.count("Why not: ") == len(CLAIMS)
    assert "Why not: needs runs both with and without clipping." in apart
    rules = md.split("## How each finding is decided")[1]
    for c in CLAIMS:
        assert f"**Claim {c.number}.**" in rules
    assert f">= {SPIKE_RATIO:g}" in rules and f"at least {HELP_MARGIN:.0%}" in rules
    assert "**Significance.**" in rules and "indicative (p = …)" in rules
    assert "{" not in rules  # every margin filled in


def test_solve_table_counts_capped_and_missing_runs_apart(sqlite_uri):
    """Time-capped runs are not counted; a run that used its whole budget is, whatever its tag;
    a seed the spec lists with no finished run is missing."""
    from suite.findings.report import solve_table

    full = {**CAP, "run_steps": 3000, "curves": {"val_loss_ratio": [0.9, 0.8, 0.8, 0.8, 0.8]}}
    rows = [
        ("adding", 10, "lstm", N, ["capped", "capped", "falling"]),
        # stop reason says time cap, but all 3000 steps ran: complete, counted as a failure
        ("adding", 10, "gru", N, "unsolved", full),
        ("adding", 10, "irnn", N, ["unsolved", "crashed", "absent"]),
    ]
    _, _, table = solve_table(_sweep(sqlite_uri, rows, name="capped"))
    lstm = table["cells"][(("adding", 10), ("lstm", N, "adam"))]
    assert lstm.startswith("FAIL 0/1 (CI 0–0.79; best 0.5)"), lstm
    assert "undecided" in lstm and "1 budget-limited" in lstm
    assert lstm.endswith("2 time-capped at ~700 steps, not counted"), lstm
    gru = table["cells"][(("adding", 10), ("gru", N, "adam"))]
    assert gru.startswith("FAIL 0/3 (CI 0–0.56") and "3 plateaued" in gru, gru
    assert "time-capped" not in gru and "undecided" not in gru
    irnn = table["cells"][(("adding", 10), ("irnn", N, "adam"))]
    assert "2 missing" in irnn and "undecided" in irnn, irnn


def test_solve_table_shows_the_optimizer_only_when_there_are_several(sqlite_uri, tmp_path):
    from suite.findings.report import write_report

    rows = [
        ("adding", 10, "lstm", N, "solved"),
        ("adding", 10, "lstm", N, "unsolved", {"params": SGD}),
    ]
    md = write_report(_sweep(sqlite_uri, rows), tmp_path, log_to_mlflow=False).read_text()
    assert "| cell | clip | optimizer | adding@10 |" in md
    assert (
        "| lstm | none | adam | 3/3" in md
        and "| lstm | none | sgd(lr=0.01,momentum=0.9) | FAIL 0/3" in md
    )
    one = write_report(
        _sweep(sqlite_uri, rows[:1], name="one"), tmp_path / "one", log_to_mlflow=False
    )
    assert "| cell | clip | adding@10 |" in one.read_text()


def test_report_over_a_real_mlflow_server(mlflow_server, tmp_path):
    """`rnnbench report --tracking-uri http://...` reads the runs and attaches the report there."""
    import mlflow

    rows = [
        ("adding", 10, "lstm", N, "solved", _prof(10, -1.0)),
        ("adding", 10, "simple_rnn", N, "unsolved"),
        ("adding", 10, "simple_rnn", C, "unsolved"),
    ]
    data = _sweep(mlflow_server, rows, name="served-report")  # the server is shared by the session
    # the gradient profiles are read over HTTP from each run's artifact URI (mlflow-artifacts:/)
    lstm = [r for r in data.runs if r.cell == "lstm"]
    assert lstm and all(r.artifact_uri.startswith("mlflow-artifacts:/") for r in lstm)
    assert [r.profiles for r in lstm] == [[decay_profile(10, -1.0)]] * 3
    out = run_cli(
        "report", "--tracking-uri", mlflow_server, "--experiment", "served-report", "--out", "rep",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"| simple_rnn | {C} | FAIL 0/3" in md
    assert "tanh SimpleRNN failed adding@10 without clipping (solved by another cell)" in md
    assert "2. SUPPORTED, 1 of 2 clauses testable:" in out.stdout
    client = mlflow.MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("served-report")
    # the runs table, not MLflow 3's GenAI overview
    link = f"{mlflow_server}/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    assert f"MLflow UI: {link}" in out.stdout
    parent = client.search_runs([exp.experiment_id], "tags.`rnnbench.kind` = 'sweep'")[0]
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/solve_rate.png"} <= names


def test_beyond_can_compare_treatments_of_one_cell(sqlite_uri):
    """The building block for "clip + omega lets tanh solve lengths clipping alone cannot"."""
    from suite.findings.comparisons import beyond

    W = "global_clipnorm=1+omega=2"
    rows = [("adding", 20, "simple_rnn", C, "solved", {"params": {"omega": 2.0}}),  # clip + omega param
            ("adding", 20, "simple_rnn", N, "unsolved"), ("adding", 20, "simple_rnn", C, "unsolved")]  # fmt: skip
    data = _sweep(sqlite_uri, rows, seeds=SIX)
    assert {r.clip for r in data.runs} == {N, C, W}
    r = beyond(data, "adding", ["simple_rnn"], ["simple_rnn"], name="clip + omega",
               rival="clipping alone", mine=lambda k, o: "+omega=" in k,
               theirs=lambda k, o: "+omega=" not in k)  # fmt: skip
    assert r.ok is True, r.text
    assert "clip + omega solved T = 20" in r.text and "p = 0.0011" in r.text
