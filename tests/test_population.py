"""Populations (JAX): members are the runs they would be alone, independent, tracked alike.

Each scenario runs in a fresh JAX process (``tests/backend_probe.py``). Needs the jax extra
(``tox -e jax``); skipped without it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import new_store, run_cli
from test_backends import probe

pytest.importorskip("jax")
pytestmark = pytest.mark.jax


@pytest.fixture(scope="module")
def pop():
    return probe("population", "jax")


@pytest.mark.parametrize("scenario", ["solve", "diverge"])
def test_members_match_the_same_runs_trained_alone(pop, scenario):
    together, alone = pop[scenario]["population"], pop[scenario]["alone"]
    for t, a in zip(together, alone, strict=True):
        assert t["status"] == a["status"]
        assert t["steps"] == a["steps"] and t["steps_to_solve"] == a["steps_to_solve"]
        assert t["evals"] == a["evals"]  # a member is evaluated until it ends, no longer
        assert t["first_loss"] == pytest.approx(a["first_loss"], rel=1e-6)
        assert t["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
        if t["status"] != "diverged":  # the whole loss curve, and the final (frozen) weights
            assert t["curve"] == pytest.approx(a["curve"], rel=1e-4)
            for wt, wa in zip(t["weights"], a["weights"], strict=True):
                assert np.allclose(wt, wa, rtol=1e-4, atol=1e-6)


def test_members_end_independently(pop):
    solve_steps = {m["steps"] for m in pop["solve"]["population"]}
    assert len(solve_steps) > 1  # some solved at an earlier evaluation and were frozen
    statuses = [m["status"] for m in pop["diverge"]["population"]]
    assert "diverged" in statuses and "diverged" != statuses[0]  # NaN in some, not all
    assert any(
        m["status"] != "diverged" and m["steps"] == 100 for m in pop["diverge"]["population"]
    )


def test_a_frozen_member_does_not_move(pop):
    assert pop["mask"]["live_moved"]
    assert not pop["mask"]["frozen_moved"]
    assert pop["mask"]["frozen_window_steps"] == 0.0


def test_the_cpu_and_gpu_layouts_of_a_population_step_agree(pop):
    """A CPU runs the members one after another in the compiled step, a GPU vmaps them all
    (``members_per_call``); chunks in between too: the same states to float rounding."""
    layouts = pop["layouts"]
    assert (layouts["cpu_chunk"], layouts["gpu_chunk"]) == (1, 16)
    assert layouts["moved"]  # the steps trained: the comparison is not of untouched weights
    assert layouts["max_diff"] < 1e-5, layouts


def test_sweep_trains_populations_tracks_members_and_resumes_per_member(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "pop"\ntasks = ["adding"]\nseq_lens = [10]\ncells = ["gru"]\n'
        'clips = ["none"]\nseeds = [0, 1, 2]\n[train]\nhidden = 8\nmax_steps = 20\neval_every = 10\n'
    )
    args = ("--backend", "jax", "--population", "2", "--workers", "1", "--tracking-uri", uri)
    dry = run_cli("sweep", spec, "--dry-run", *args, cwd=tmp_path)
    assert "3 to run as 2 jobs (1 population of up to 2)" in dry.stdout, dry.stdout
    out = run_cli("sweep", spec, *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnbench")
    children = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("mlflow.parentRunId")
    ]
    assert len(children) == 3
    assert sorted(r.data.tags.get("rnnbench.population", "alone") for r in children) == [
        "2",
        "2",
        "alone",
    ]

    def keys(r):
        m = {k for k in r.data.metrics if not k.startswith("system/")}
        return set(r.data.params), m, set(r.data.tags) - {"rnnbench.population"}

    alone = next(r for r in children if "rnnbench.population" not in r.data.tags)
    for r in children:  # the same layout as a run trained alone
        assert keys(r) == keys(alone)
        assert r.info.status == "FINISHED"
        assert {"solved", "val_loss_ratio", "steps", "train_seconds"} <= set(r.data.metrics)
        assert r.data.params["backend"] == "jax"
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"grad_profile.json"} <= arts
    # a member lost (as if killed before it finished): only it runs again
    lost = next(r for r in children if r.info.run_name.endswith("-s1"))
    client.delete_run(lost.info.run_id)
    dry = run_cli("sweep", spec, "--dry-run", *args, cwd=tmp_path)
    assert "2 finished (skipped on resume); 1 to run" in dry.stdout, dry.stdout
    out = run_cli("sweep", spec, *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    again = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("mlflow.parentRunId")
    ]
    assert sorted(r.info.run_name for r in again) == sorted(r.info.run_name for r in children)


def test_population_needs_jax_and_a_valid_size(tmp_path):
    for value, needle in (("3", "JAX backend only"), ("zero", "auto, off or a number")):
        out = run_cli(
            "sweep", "quick", "--population", value, "--backend", "tensorflow", cwd=tmp_path
        )
        assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_population_sweep_killed_with_sigkill_then_rerun_finishes_each_config_once(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "k.toml").write_text(
        'name = "kill"\ntasks = ["adding"]\nseq_lens = [10]\ncells = ["gru"]\n'
        'clips = ["none", "global_clipnorm=1"]\nseeds = [0, 1, 2]\n'
        "[train]\nhidden = 8\nmax_steps = 600\neval_every = 50\n"
    )
    new_store(uri[len("sqlite:///") :])  # create the store first
    client = mlflow.MlflowClient(uri)
    args = ["--backend", "jax", "--population", "3", "--workers", "1", "--tracking-uri", uri]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "suite.cli", "sweep", "k.toml", *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip

    def children():
        exp = client.get_experiment_by_name("rnnbench")
        if exp is None:
            return []
        runs = client.search_runs([exp.experiment_id])
        return [r for r in runs if r.data.tags.get("mlflow.parentRunId")]

    deadline, seen_running = time.time() + 240, False
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                kids = children()
            except Exception:
                continue
            if any(r.info.status == "RUNNING" for r in kids):
                seen_running = True  # a population is training: kill the sweep now
                break
        assert seen_running and proc.poll() is None, "the sweep ended before a population ran"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1)  # the worker dies with its parent (PR_SET_PDEATHSIG)
    out = run_cli("sweep", "k.toml", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    finished: dict[str, int] = {}
    for r in children():
        if r.info.status == "FINISHED":
            finished[r.info.run_name] = finished.get(r.info.run_name, 0) + 1
    assert len(finished) == 6 and set(finished.values()) == {1}, finished


def test_a_population_refuses_max_seconds_in_one_line(tmp_path):
    """Issue 21, item 9: members share one clock, so a time cap would stop each at another
    step than alone: a population of more than one refuses it; --population auto trains such a
    spec's runs alone."""
    from suite.core.population import check_population
    from suite.core.train import TrainConfig

    configs = [
        TrainConfig(task="adding", seq_len=5, cell="gru", hidden=4, backend="jax", seed=s,
                    max_seconds=5.0)
        for s in range(2)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="shares one clock"):
        check_population(configs)
    check_population(configs[:1])  # alone: its own clock
    (tmp_path / "t.toml").write_text(
        'name = "capped"\ntasks = ["adding"]\nseq_lens = [5]\ncells = ["gru"]\nclips = ["none"]\n'
        "seeds = [0, 1]\n[train]\nhidden = 4\nmax_steps = 10\nmax_seconds = 5\n"
    )
    out = run_cli(
        "sweep", "t.toml", "--backend", "jax", "--population", "2", "--dry-run", cwd=tmp_path
    )
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1 and "max_seconds" in lines[0], out.stderr
    auto = run_cli(
        "sweep", "t.toml", "--backend", "jax", "--device", "gpu", "--population", "auto",
        "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    if auto.returncode == 0:  # a GPU here: auto would mean 64, the time cap makes it 1
        assert "populations of up to" not in auto.stdout, auto.stdout


def test_population_auto_on_a_cpu_leaves_a_job_per_worker_and_spares_time_capped_runs(tmp_path):
    """auto on JAX on a CPU: populations of up to 16 seeds, at least one job per worker; a
    spec with max_seconds trains every run alone; TensorFlow never groups."""
    spec = ('name = "auto"\ntasks = ["adding"]\nseq_lens = [5]\ncells = ["gru"]\nclips = ["none"]\n'
            "seeds = [0, 1, 2, 3]\n[train]\nhidden = 4\nmax_steps = 10\n")  # fmt: skip
    (tmp_path / "a.toml").write_text(spec)
    (tmp_path / "c.toml").write_text(spec + "max_seconds = 5\n")

    def head(name, *args):
        out = run_cli("sweep", name, "--dry-run", "--device", "cpu", *args, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.splitlines()[0]

    assert "as 2 jobs (2 populations of up to 2)" in head(
        "a.toml", "--backend", "jax", "--workers", "2"
    )
    assert "as 1 job (1 population of up to 4)" in head(
        "a.toml", "--backend", "jax", "--workers", "1"
    )
    assert "populations" not in head("c.toml", "--backend", "jax", "--workers", "1")
    assert "populations" not in head("a.toml", "--backend", "tensorflow", "--workers", "1")
    assert not (tmp_path / "mlflow.db").exists()  # a dry run writes nothing
