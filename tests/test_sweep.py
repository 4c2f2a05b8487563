"""Sweeps on a real sqlite store: nested layout, resume, kill -9, workers, Ray, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib

import pytest
from conftest import JAX_ALONE, TINY_SPEC, new_store, run_cli

from suite.study.spec import load_spec

TINY = TINY_SPEC


def _runs(uri, experiment="rnnbench"):
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _children(runs):
    return [r for r in runs if r.data.tags.get("rnnbench.kind") != "sweep"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.toml").write_text(TINY)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    out = run_cli("sweep", "tiny.toml", "--tracking-uri", uri, "--workers", "2", cwd=root)
    return root, uri, out


def test_nested_layout(tiny_sweep):
    import mlflow

    root, uri, out = tiny_sweep
    assert out.returncode == 0, out.stderr[-2000:]
    runs = _runs(uri)
    parents = [r for r in runs if r.data.tags.get("rnnbench.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["spec"] == "tiny" and parent.data.params["grid_size"] == "4"
    arts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(parent.info.run_id)}
    assert "sweep.toml" in arts
    children = _children(runs)
    grid = load_spec(str(root / "tiny.toml")).grid()
    assert sorted(r.info.run_name for r in children) == sorted(c.run_name for c in grid)
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
    for cell in ("simple_rnn", "gru"):
        assert cell in out.stdout


def test_resume_skips_finished_configs(tiny_sweep):
    root, uri, _ = tiny_sweep
    before = {r.info.run_id for r in _runs(uri)}
    dry = run_cli("sweep", "tiny.toml", "--tracking-uri", uri, "--dry-run", cwd=root)
    assert dry.returncode == 0
    assert dry.stdout.count("skip (finished)") == 4 and "0 to run" in dry.stdout
    # one worker: nothing is left to run (each TensorFlow worker costs ~13 s of CPU to start)
    again = run_cli("sweep", "tiny.toml", "--tracking-uri", uri, "--workers", "1", cwd=root)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {r.info.run_id for r in _runs(uri)} == before  # no new child, parent reused
    fresh = run_cli(
        "sweep",
        "tiny.toml",
        "--tracking-uri",
        uri,
        "--no-resume",
        "--dry-run",
        "--workers",
        "2",
        cwd=root,
    )
    assert fresh.stdout.count("\nrun ") + fresh.stdout.startswith("run ") == 4
    # the summary first, with a wall time estimated from the finished runs of these configs
    head = fresh.stdout.splitlines()[:2]
    assert head[0].startswith("4 configs") and "4 to run" in head[0], head
    assert head[1].startswith("estimated wall time on 2 worker(s): about "), head


def test_dry_run_on_a_fresh_store_writes_nothing(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    out = run_cli("sweep", "tiny.toml", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("4 configs"), out.stdout
    assert "estimated wall time: no finished run" in out.stdout.splitlines()[1]
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.jax
def test_kill_9_then_resume_finishes_without_loss_or_duplicates(tmp_path):
    spec = TINY.replace("seeds = [0]", "seeds = [0, 1]").replace("max_steps = 10", "max_steps = 40")
    (tmp_path / "k.toml").write_text(spec)
    uri = new_store(tmp_path / "mlflow.db")  # the store exists before the sweep polls it
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [
        sys.executable,
        "-m",
        "suite.cli",
        "sweep",
        "k.toml",
        "--tracking-uri",
        uri,
        "--workers",
        "1",
        *JAX_ALONE,
    ]
    err = open(tmp_path / "sweep.err", "wb")  # read by the failure message below
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
    finished_before: set[str] = set()
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if (tmp_path / "mlflow.db").exists():
                try:
                    done = {
                        r.info.run_id for r in _children(_runs(uri)) if r.info.status == "FINISHED"
                    }
                except Exception:  # the store is being created
                    continue
                if len(done) >= 2:
                    finished_before = done
                    break
        assert proc.poll() is None, (
            "sweep ended early: " + (tmp_path / "sweep.err").read_text()[-2000:]
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1)  # the worker dies with its parent (PR_SET_PDEATHSIG)
    out = run_cli("sweep", "k.toml", "--tracking-uri", uri, "--workers", "1", *JAX_ALONE,
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    children = _children(_runs(uri))
    by_hash: dict[str, list] = {}
    for r in children:
        by_hash.setdefault(r.data.tags["rnnbench.config_hash"], []).append(r)
    grid = load_spec(str(tmp_path / "k.toml")).with_backend("jax").grid()
    assert len(grid) == 8
    for c in grid:
        statuses = [r.info.status for r in by_hash[c.config_hash()]]
        assert statuses.count("FINISHED") == 1, (c.run_name, statuses)
        assert set(statuses) <= {"FINISHED", "KILLED"}
    assert finished_before <= {r.info.run_id for r in children if r.info.status == "FINISHED"}


def test_two_workers_match_one_worker(tiny_sweep, tmp_path):
    root, uri2, _ = tiny_sweep
    (tmp_path / "tiny.toml").write_text(TINY)
    uri1 = f"sqlite:///{tmp_path / 'one.db'}"
    out = run_cli("sweep", "tiny.toml", "--tracking-uri", uri1, "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]

    def summary(uri):
        return {
            r.info.run_name: (r.data.tags["rnnbench.status"], r.data.metrics["val_loss_ratio"])
            for r in _children(_runs(uri))
            if r.info.status == "FINISHED"
        }

    one, two = summary(uri1), summary(uri2)
    assert one.keys() == two.keys() and len(one) == 4
    for name in one:
        assert one[name][0] == two[name][0]
        assert one[name][1] == pytest.approx(two[name][1], rel=1e-5)


@pytest.mark.jax
def test_ray_executor_trains_a_population_on_a_local_cluster(tmp_path):
    """Ray receives a population (2 seeds of one config) as one task; each member is its own
    finished child run of the sweep, tagged with the population's size."""
    pytest.importorskip("ray")
    pytest.importorskip("jax")
    spec = TINY.replace('cells = ["simple_rnn", "gru"]', 'cells = ["simple_rnn"]')
    spec = spec.replace('clips = ["none", "global_clipnorm=1"]', 'clips = ["none"]')
    (tmp_path / "r.toml").write_text(spec.replace("seeds = [0]", "seeds = [0, 1]"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli(
        "sweep", "r.toml", "--tracking-uri", uri, "--executor", "ray",
        "--backend", "jax", "--population", "2", cwd=tmp_path, timeout=400,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    runs = _runs(uri)
    parent = [r for r in runs if r.data.tags.get("rnnbench.kind") == "sweep"][0]
    children = _children(runs)
    assert sorted(r.info.run_name for r in children) == [
        "adding-T6-simple_rnn-none-h4-s0", "adding-T6-simple_rnn-none-h4-s1"
    ]  # fmt: skip
    assert all(r.info.status == "FINISHED" for r in children)
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert all(r.data.tags.get("rnnbench.population") == "2" for r in children)
    assert all(r.data.params["backend"] == "jax" for r in children)


def test_show_prints_the_preset():
    out = run_cli("sweep", "--show", "quick")
    assert out.returncode == 0
    data = tomllib.loads(out.stdout)
    assert set(data["cells"]) == {"simple_rnn", "irnn", "lstm", "gru"}
    assert "none" in data["clips"] and "global_clipnorm=1" in data["clips"]


BAD_SPECS = [
    ("nope", None, "Unknown preset 'nope'"),
    ("missing.toml", None, "not found"),
    ("s.toml", 'tasks = ["adding"\n', "TOML syntax error"),
    ("s.toml", TINY + "\ncolour = 1\n", "'colour'"),
    ("s.toml", TINY.replace("hidden = 4", "hiddn = 4"), "'hiddn' in [train] (line 10)"),
    ("s.toml", TINY.replace('"adding"', '"nope"'), "Unknown task 'nope'"),
    ("s.toml", TINY.replace('"gru"', '"mamba"'), "mamba"),
    ("s.toml", TINY.replace('"none"', '"clipnorm"'), "Invalid clip spec 'clipnorm'"),
    ("s.toml", TINY.replace("seq_lens = [6]", "seq_lens = [1]"), "seq_len=1"),
    ("s.toml", TINY.replace('cells = ["simple_rnn", "gru"]', "cells = []"), "empty grid"),
]


@pytest.mark.parametrize(("target", "text", "named"), BAD_SPECS, ids=[b[2] for b in BAD_SPECS])
def test_bad_specs_exit_2_with_one_line(tmp_path, target, text, named):
    if text is not None:
        (tmp_path / target).write_text(text)
    out = run_cli("sweep", target, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and named in lines[0], out.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--workers", "0"], "--workers"),
        (["--tracking-uri", "http://127.0.0.1:9"], "http://127.0.0.1:9"),
        (["--executor", "ray", "--ray-address", "10.1.2.3:6379"], "tracking-uri"),
        (["--executor", "dask"], "dask"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, args, named):
    (tmp_path / "tiny.toml").write_text(TINY)
    out = run_cli("sweep", "tiny.toml", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and named in lines[0], out.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.jax
def test_a_segfaulting_worker_fails_only_its_run(tmp_path):
    # two configs, the victim first: the sweep goes on past the crash (a fresh worker)
    (tmp_path / "tiny.toml").write_text(TINY.replace('"none", "global_clipnorm=1"', '"none"'))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    victim = "adding-T6-simple_rnn-none-h4-s0"
    grid = load_spec(str(tmp_path / "tiny.toml")).with_backend("jax").grid()
    assert [c.run_name for c in grid] == [victim, "adding-T6-gru-none-h4-s0"]
    out = run_cli(
        "sweep", "tiny.toml", "--tracking-uri", uri, "--workers", "1", *JAX_ALONE, cwd=tmp_path,
        env={"RNNBENCH_CRASH_DRILL": victim},
    )  # fmt: skip
    assert out.returncode == 1  # runs FAILED: non-zero, but the sweep went on
    assert "FAILED" in out.stderr and "signal 11" in out.stderr
    children = {r.info.run_name: r for r in _children(_runs(uri))}
    assert children[victim].info.status == "FAILED"
    assert "signal 11" in children[victim].data.tags["rnnbench.error"]
    others = [r for name, r in children.items() if name != victim]
    assert len(others) == 1 and all(r.info.status == "FINISHED" for r in others)
    # resume re-runs only the failed config (without the drill it now finishes)
    again = run_cli("sweep", "tiny.toml", "--tracking-uri", uri, "--workers", "1", *JAX_ALONE,
                    cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    finished = [r for r in _children(_runs(uri)) if r.info.status == "FINISHED"]
    assert sorted(r.info.run_name for r in finished) == sorted(children)


@pytest.mark.jax
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    spec = TINY.replace("seeds = [0]", "seeds = [0, 1]").replace(
        "max_steps = 10",
        "max_steps = 4000",  # still running when Ctrl-C comes, even under load
    )
    (tmp_path / "c.toml").write_text(spec)
    uri = new_store(tmp_path / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [
        sys.executable,
        "-m",
        "suite.cli",
        "sweep",
        "c.toml",
        "--tracking-uri",
        uri,
        "--workers",
        "2",
        *JAX_ALONE,
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            if any(r.info.status == "RUNNING" for r in _children(_runs(uri))):
                break
        except Exception:
            continue
    assert proc.poll() is None, "the sweep ended before Ctrl-C"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "resume with: rnnbench sweep c.toml" in err
    runs = _runs(uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]  # children KILLED, parent KILLED
    assert any(r.info.status == "KILLED" for r in _children(runs))
    parent = [r for r in runs if r.data.tags.get("rnnbench.kind") == "sweep"][0]
    assert parent.info.status == "KILLED"
