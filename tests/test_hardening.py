"""Bad stores and oversized configs: one line, exit 2, nothing written (issue [hardening])."""

from __future__ import annotations

import pytest
from conftest import JAX_ALONE, run_cli


def _one_line(out):
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize("cmd", [["train", "--max-steps", "1"], ["report"], ["sweep", "quick"]])
def test_a_file_that_is_not_a_database_is_named_and_left_alone(cmd, tmp_path):
    junk = tmp_path / "garbage.db"
    junk.write_bytes(b"\x00\x13not a database at all" * 200)
    before = junk.read_bytes()
    out = run_cli(*cmd, "--tracking-uri", f"sqlite:///{junk}", cwd=tmp_path)
    line = _one_line(out)
    assert "garbage.db" in line and "not an SQLite database" in line
    assert junk.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.db"]  # no mlruns/, no store


def test_a_folder_as_the_store_is_named(tmp_path):
    (tmp_path / "x.db").mkdir()
    out = run_cli(
        "train",
        "--max-steps",
        "1",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'x.db'}",
        cwd=tmp_path,
    )
    assert "is a folder" in _one_line(out)


def test_a_sweep_whose_config_cannot_fit_in_memory_exits_before_the_store(tmp_path):
    spec = tmp_path / "big.toml"
    spec.write_text(
        'name = "big"\ntasks = ["adding"]\nseq_lens = [10, 50000000]\ncells = ["lstm"]\n'
        'clips = ["none"]\nseeds = [0]\n'
    )
    line = _one_line(run_cli("sweep", str(spec), cwd=tmp_path))
    assert (
        "adding-T50000000-lstm-none-s0" in line and "GiB of memory" in line and "available" in line
    )
    assert not (tmp_path / "mlflow.db").exists()


def test_the_memory_estimate_grows_with_what_it_counts():
    from suite.core.memory import check_fits, estimate_bytes
    from suite.core.train import TrainConfig

    base = TrainConfig(task="adding", seq_len=100, cell="lstm", hidden=64)
    for bigger in (dict(hidden=128), dict(seq_len=200), dict(batch_size=128), dict(cell="gru")):
        grown = TrainConfig(**{**base.__dict__, **bigger})
        if bigger != dict(cell="gru"):
            assert estimate_bytes(grown) > estimate_bytes(base), bigger
    assert estimate_bytes(TrainConfig(cell="simple_rnn")) < estimate_bytes(TrainConfig(cell="lstm"))
    check_fits([base], available=10 * estimate_bytes(base))
    with pytest.raises(ValueError, match="needs at least"):
        check_fits([base], available=estimate_bytes(base) // 2)


def test_many_processes_may_open_one_new_store_at_once(tmp_path):
    """Four real processes create the same new sqlite store at the same moment: all succeed
    (unserialised, MLflow's migration fails in one of two with "duplicate column name")."""
    import subprocess
    import sys
    import time

    import mlflow

    uri = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "import sys, time; from tracking.store import init_store; import mlflow\n"
        "t = float(sys.argv[2]); time.sleep(max(0.0, t - time.time()))\n"
        "init_store(sys.argv[1]); c = mlflow.MlflowClient(sys.argv[1])\n"
        "c.create_run(c.get_experiment_by_name('Default').experiment_id)\n"
    )
    start = str(time.time() + 8)  # every process past its imports, then all at once
    procs = [subprocess.Popen([sys.executable, "-c", code, uri, start], stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]  # fmt: skip
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errs
    c = mlflow.MlflowClient(uri)
    assert len(c.search_runs([c.get_experiment_by_name("Default").experiment_id])) == 4


@pytest.mark.jax
def test_a_second_invocation_of_a_running_sweep_refuses_and_a_stale_heartbeat_does_not(tmp_path):
    """Two real processes: while `rnnbench sweep` runs, the same command refuses in one line
    (who runs it, how to go on), writing nothing; once the first is killed with SIGKILL and its
    heartbeat is stale, the same command resumes it and no config has two FINISHED runs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import mlflow

    spec = tmp_path / "hb.toml"
    spec.write_text(
        'name = "hb"\ntasks = ["adding"]\nseq_lens = [8]\ncells = ["simple_rnn"]\n'
        'clips = ["none"]\nseeds = [0, 1, 2]\n[train]\nhidden = 4\nmax_steps = 300\n'
        "eval_every = 100\n"
    )  # on JAX (half TensorFlow's start-up CPU), each run alone; the parent (and its
    # heartbeat) exists before the worker's first run starts, so the first is caught running
    uri = f"sqlite:///{tmp_path / 'hb.db'}"
    args = [sys.executable, "-m", "suite.cli", "sweep", str(spec), "--workers", "1",
            *JAX_ALONE, "--tracking-uri", uri]  # fmt: skip
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        from tracking.store import init_store

        init_store(uri)  # this test's own client must not race the sweep's first open
        client = mlflow.MlflowClient(uri)
        deadline, parent = time.time() + 240, None
        while time.time() < deadline and parent is None:
            time.sleep(1)
            try:
                exp = client.get_experiment_by_name("rnnbench")
                found = exp and client.search_runs(
                    [exp.experiment_id], "tags.`rnnbench.heartbeat` != ''"
                )
                parent = found[0] if found else None
            except Exception:
                pass
        assert parent is not None and first.poll() is None, "the first sweep did not start"
        os.killpg(first.pid, signal.SIGSTOP)  # frozen (still alive): the count below is exact
        n_runs = len(client.search_runs([exp.experiment_id]))
        second = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert "already running" in lines[0] and str(first.pid) in lines[0]
        assert "--ignore-running" in lines[0]
        assert len(client.search_runs([exp.experiment_id])) == n_runs  # the second wrote nothing
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    pid = parent.info.run_id
    client.set_tag(pid, "rnnbench.heartbeat", f"{time.time() - 3600:.0f}")  # a sweep long dead
    third = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr[-2000:]
    runs = client.search_runs([exp.experiment_id], "tags.`rnnbench.config_hash` != ''")
    finished = [r.data.tags["rnnbench.config_hash"] for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == 3


def test_perf_checks_its_largest_runs_and_populations_against_memory():
    """`perf` checks, before measuring, the longest T it trains per cell (400 on a CPU, 1000
    on a GPU) with its largest population counted as that many models."""
    from suite.core.memory import check_fits, estimate_bytes
    from suite.perf import PERF_POPULATION, perf_configs

    cpu, gpu = perf_configs(["lstm", "gru"], gpu=False), perf_configs(["lstm"], gpu=True)
    assert [c.seq_len for c in cpu] == [400, 400] and [c.seq_len for c in gpu] == [1000]
    one = max(estimate_bytes(c) for c in cpu)
    check_fits(cpu, available=PERF_POPULATION[False] * one, copies=PERF_POPULATION[False])
    with pytest.raises(ValueError, match="16 at once"):
        check_fits(cpu, available=PERF_POPULATION[False] * one - 1, copies=16)


def test_a_new_store_copied_from_the_template_is_the_store_mlflow_makes(tmp_path, monkeypatch):
    """A new sqlite store is a copy of an empty store this MLflow version made once: the same
    schema and migration head as one MLflow creates, the Default experiment's artifact
    location where MLflow would put it, and it works (runs logged and read back)."""
    import sqlite3

    import mlflow

    from tracking.store import init_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    ref = tmp_path / "ref.db"
    mlflow.MlflowClient(f"sqlite:///{ref}").search_experiments()  # MLflow's own new store
    for name in ("a.db", "b.db"):  # the first makes the template, the second copies it
        init_store(f"sqlite:///{tmp_path / name}")
    assert (
        tmp_path / "cache" / "rnnbench" / f"empty-store-mlflow-{mlflow.__version__}.db"
    ).exists()

    def shape(db):
        with sqlite3.connect(db) as c:
            # a table's clauses as a set: MLflow itself orders CHECK constraints differently
            # from one creation to the next (set order)
            tables = {name: sorted(ln.strip().rstrip(",") for ln in (sql or "").splitlines())
                      for name, sql in c.execute("SELECT name, sql FROM sqlite_master")}  # fmt: skip
            head = c.execute("SELECT version_num FROM alembic_version").fetchall()
            exp0 = c.execute(
                "SELECT name, artifact_location, lifecycle_stage FROM experiments"
            ).fetchall()
        return tables, head, exp0

    assert shape(tmp_path / "b.db") == shape(ref)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'b.db'}")
    run = client.create_run(client.create_experiment("x"))
    client.log_metric(run.info.run_id, "m", 1.5)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
