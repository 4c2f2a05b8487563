"""The claims check (suite.claims): hand-logged MLflow runs in a real sqlite store, where
flipping the numbers must flip each claim's finding."""

from __future__ import annotations

import pytest
from conftest import log_fake_run, run_cli


def _sweep(uri, name, rows):
    """rows: (task, T, cell, clip, status[, gmax]) logged for seeds 0, 1, 2."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment(name)
    parent = client.create_run(
        exp_id, run_name=f"sweep-{name}", tags={"rnnbench.kind": "sweep"}
    ).info.run_id
    client.log_param(parent, "spec", name)
    for row in rows:
        for seed in (0, 1, 2):
            task, T, cell, clip, status, *gmax = row
            log_fake_run(
                client, exp_id, parent, task, T, cell, clip, seed, status, None, None, *gmax
            )
    client.set_terminated(parent, "FINISHED")


def _findings(uri, name):
    from suite.claims import check_claims
    from suite.report import load_sweep

    return {c.number: c for c in check_claims(load_sweep(uri, name))}


@pytest.mark.parametrize("claims_hold", [True, False])
def test_claims_follow_the_numbers(sqlite_uri, claims_hold):
    C, N = "global_clipnorm=1", "none"
    h = claims_hold
    rows = [
        # short T: everything learns
        *[("adding", 10, cell, clip, "solved") for cell in ("simple_rnn", "irnn", "lstm") for clip in (N, C)],
        # tanh at T = 50: fails without clipping; with clipping it fails (claims hold) or solves
        ("adding", 50, "simple_rnn", N, "unsolved"),
        ("adding", 50, "simple_rnn", C, "unsolved" if h else "solved"),
        # IRNN diverges without clipping; clipping rescues it (claims hold) or does not
        ("adding", 50, "irnn", N, "diverged"),
        ("adding", 50, "irnn", C, "solved" if h else "diverged"),
        # LSTM: spikes and fails without clipping (claims hold), or calm and solves either way
        ("adding", 50, "lstm", N, "unsolved" if h else "solved", 50.0 if h else 1.5),
        ("adding", 50, "lstm", C, "solved"),
    ]  # fmt: skip
    _sweep(sqlite_uri, "claims", rows)
    f = _findings(sqlite_uri, "claims")
    expected = "SUPPORTED" if h else "REFUTED"
    for n in (1, 2, 3, 4, 5):
        assert f[n].finding == expected, (n, f[n].evidence)
    assert f[6].finding == "NOT TESTABLE"  # one task only
    assert "rescued 3/3 (100%)" in f[1].evidence if h else "rescued 0/3 (0%)" in f[1].evidence
    assert ("50x the median" if h else "2x the median") in f[4].evidence
    assert (
        "irnn T = 50, lstm T = 50, tanh T = 10" in f[5].evidence
        if h
        else "irnn T = 10" in f[5].evidence
    )


@pytest.mark.parametrize("task_dependent", [True, False])
def test_task_dependence_claim(sqlite_uri, task_dependent):
    rows = [
        ("adding", 10, "lstm", "none", "solved"),
        ("adding", 10, "simple_rnn", "none", "unsolved"),
        ("delayed_recall", 10, "lstm", "none", "unsolved" if task_dependent else "solved"),
        ("delayed_recall", 10, "simple_rnn", "none", "solved" if task_dependent else "unsolved"),
    ]
    _sweep(sqlite_uri, "tasks", rows)
    f = _findings(sqlite_uri, "tasks")
    assert f[6].finding == ("SUPPORTED" if task_dependent else "REFUTED"), f[6].evidence
    assert f[3].finding == ("MIXED" if task_dependent else "SUPPORTED"), f[3].evidence
    assert "delayed_recall: " + ("simple_rnn" if task_dependent else "lstm") in f[6].evidence
    # no clipped runs: the clipping claims say so instead of guessing
    assert f[1].finding == f[2].finding == f[4].finding == "NOT TESTABLE"


def test_report_has_the_claims_table(sqlite_uri, tmp_path):
    from suite.report import load_sweep, write_report

    _sweep(sqlite_uri, "md", [("adding", 10, "lstm", "none", "solved")])
    md = write_report(load_sweep(sqlite_uri, "md"), tmp_path, log_to_mlflow=False).read_text()
    table = md.split("## Claims")[1].split("## Solve table")[0]
    assert table.count("**NOT TESTABLE**") == 6  # one cell, no clipping: nothing can be tested


def test_solve_table_marks_time_capped_runs(sqlite_uri):
    """A FAIL ended by the training-time cap says so, with the steps it got."""
    import mlflow

    from suite.report import load_sweep, solve_table

    _sweep(sqlite_uri, "capped", [("adding", 10, "lstm", "none", "unsolved")])
    client = mlflow.MlflowClient(sqlite_uri)
    exp = client.get_experiment_by_name("capped")
    children = client.search_runs([exp.experiment_id], "tags.`rnnbench.status` = 'unsolved'")
    for run, steps in zip(children[:2], (700, 900), strict=True):
        client.set_tag(run.info.run_id, "rnnbench.stop_reason", "max_seconds reached")
        client.log_metric(run.info.run_id, "steps", steps)
    _, _, table = solve_table(load_sweep(sqlite_uri, "capped"))
    text = table["cells"][(("adding", 10), ("lstm", "none"))]
    assert text.startswith("FAIL 0/3") and text.endswith("2 time-capped at ~800 steps"), text


def test_report_over_a_real_mlflow_server(mlflow_server, tmp_path):
    """`rnnbench report --tracking-uri http://...` reads the runs and attaches the report there."""
    import mlflow

    rows = [
        ("adding", 10, "lstm", "none", "solved"),
        ("adding", 10, "simple_rnn", "none", "unsolved"),
        ("adding", 10, "simple_rnn", "global_clipnorm=1", "unsolved"),
    ]
    _sweep(mlflow_server, "served-report", rows)  # the server is shared by the session
    out = run_cli(
        "report", "--tracking-uri", mlflow_server, "--experiment", "served-report", "--out", "rep",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| simple_rnn | global_clipnorm=1 | FAIL 0/3" in md
    assert "tanh SimpleRNN failed adding@10 without clipping and still failed" in md
    assert f"MLflow UI: {mlflow_server}" in out.stdout
    client = mlflow.MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("served-report")
    parent = client.search_runs([exp.experiment_id], "tags.`rnnbench.kind` = 'sweep'")[0]
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/solve_rate.png"} <= names
