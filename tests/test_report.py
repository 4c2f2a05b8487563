"""`rnnbench report`: from a tiny real sweep, and verdict logic on hand-logged runs."""

from __future__ import annotations

import pytest
from conftest import log_fake_run, run_cli

TINY_SWEEP = """
name = "tinyreport"
tasks = ["adding", "delayed_recall"]
seq_lens = [6]
cells = ["simple_rnn", "gru"]
clips = ["none", "clipvalue=0.5"]
seeds = [0]

[train]
hidden = 4
batch_size = 8
max_steps = 10
eval_every = 5
val_size = 16
profile_size = 8

[overrides.adding]
optimizer = "sgd"   # a huge learning rate: these runs diverge
lr = 1000.0
"""


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    (root / "tiny.toml").write_text(TINY_SWEEP)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # one config crashes (a real segfault drill): the report must still render, marking the gap
    sweep = run_cli(
        "sweep", "tiny.toml", "--tracking-uri", uri, "--workers", "2", cwd=root,
        env={"RNNBENCH_CRASH_DRILL": "delayed_recall-T6-gru-clipvalue=0.5-s0"},
    )  # fmt: skip
    assert sweep.returncode == 1, sweep.stderr[-3000:]
    out = run_cli("report", "--tracking-uri", uri, "--out", "rep", cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    return root, uri, out


def test_report_table_counts_and_figures(tiny_report):
    root, uri, out = tiny_report
    md = (root / "rep" / "report.md").read_text()
    assert "| cell | clip | adding@6 | delayed_recall@6 |" in md
    rows = {
        ln.split("|")[1].strip() + " " + ln.split("|")[2].strip(): ln
        for ln in md.splitlines()
        if ln.startswith("| ")
    }
    for cell in ("simple_rnn", "gru"):
        for clip in ("none", "clipvalue=0.5"):
            row = rows[f"{cell} {clip}"]
            adding, recall = (c.strip() for c in row.split("|")[3:5])
            assert "1 diverged" in adding and adding.startswith("FAIL 0/1")
            if (cell, clip) == ("gru", "clipvalue=0.5"):
                assert recall == "no finished run"  # the crashed config is a visible gap
                continue
            assert recall.startswith("FAIL 0/1 (best ")  # 10 steps: unsolved, not diverged
            assert "diverged" not in recall
    for png in (
        "solve_rate.png",
        "learning_curves.png",
        "gradient_decay.png",
        "exploding_gradients.png",
    ):
        data = (root / "rep" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png
        assert f"]({png})" in md
    verdict = md.split("## Verdict")[1].split("## Solve table")[0]
    for cell in ("simple_rnn", "gru"):
        assert cell in verdict
    assert "Only 1 seed(s)" in verdict
    assert "No run solved" in verdict
    assert "Divergence: 2/4 runs without clipping diverged" in verdict
    assert "1 failed/killed/unfinished" in md
    assert "Report:" in out.stdout and "mlflow ui --backend-store-uri" in out.stdout


def test_report_artifacts_attached_to_parent(tiny_report):
    import mlflow

    _, uri, _ = tiny_report
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnbench")
    parents = client.search_runs([exp.experiment_id], "tags.`rnnbench.kind` = 'sweep'")
    assert len(parents) == 1
    names = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report/report.md", "report/solve_rate.png", "report/gradient_decay.png"} <= names


def _fake_sweep(uri, clipped_tanh_solves: bool):
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("fake")
    parent = client.create_run(
        exp_id, run_name="sweep-fake", tags={"rnnbench.kind": "sweep"}
    ).info.run_id
    client.log_param(parent, "spec", "fake")
    for seed in (0, 1, 2):
        for clip in ("none", "global_clipnorm=1"):
            log_fake_run(
                client, exp_id, parent, "adding", 10, "simple_rnn", clip, seed, "solved", 500
            )
            log_fake_run(client, exp_id, parent, "adding", 10, "lstm", clip, seed, "solved", 900)
            log_fake_run(client, exp_id, parent, "adding", 50, "lstm", clip, seed, "solved", 1500)
        tanh_clip = "solved" if clipped_tanh_solves else "unsolved"
        log_fake_run(
            client,
            exp_id,
            parent,
            "adding",
            50,
            "simple_rnn",
            "none",
            seed,
            "diverged",
            ratio=float("inf"),
        )
        log_fake_run(
            client,
            exp_id,
            parent,
            "adding",
            50,
            "simple_rnn",
            "global_clipnorm=1",
            seed,
            tanh_clip,
            1800,
        )
    client.set_terminated(parent, "FINISHED")
    return parent


@pytest.mark.parametrize("clipped_tanh_solves", [True, False])
def test_verdict_follows_the_numbers(sqlite_uri, clipped_tanh_solves):
    from suite.report import load_sweep, verdict

    _fake_sweep(sqlite_uri, clipped_tanh_solves)
    sentences = verdict(load_sweep(sqlite_uri, "fake"))
    text = "\n".join(sentences)
    assert "Only" not in text  # three seeds: no small-sample caveat
    assert (
        "Divergence: 3/12 runs without clipping diverged (simple_rnn), 0/12 with clipping." in text
    )
    if clipped_tanh_solves:
        assert "Clipping helped tanh SimpleRNN: with global_clipnorm=1 it solved adding@50" in text
        assert "simple_rnn T = 50 (global_clipnorm=1)" in text
    else:
        assert (
            "No clipping setting made tanh SimpleRNN solve a length it failed without clipping"
            in text
        )
        assert "simple_rnn T = 10" in text
        assert "Ranking of cells by share of runs solved: lstm (12/12) > simple_rnn (6/12)." in text


def test_report_without_runs_is_one_line_exit_2(sqlite_uri, tmp_path):
    import mlflow

    mlflow.MlflowClient(sqlite_uri).create_experiment("rnnbench")
    out = run_cli("report", "--tracking-uri", sqlite_uri, cwd=tmp_path)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no sweep" in lines[0]
    assert not (tmp_path / "reports").exists()
