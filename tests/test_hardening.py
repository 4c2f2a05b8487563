"""Bad stores and oversized configs: one line, exit 2, nothing written (issue [hardening])."""

from __future__ import annotations

import pytest
from conftest import run_cli


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
