"""`rnnbench train` from the command line: bad input exits 2 with one line and creates no run."""

from __future__ import annotations

import pytest
from conftest import run_cli

BAD = [
    (["--task", "nope"], "nope"),
    (["--cell", "mamba"], "mamba"),
    (["--seq-len", "0"], "seq_len"),
    (["--task", "delayed_recall", "--seq-len", "1"], "seq_len"),
    (["--clip", "clipnorm"], "clipnorm"),
    (["--clip", "clipnorm=-1"], "clipnorm=-1"),
    (["--clip", "clip=1"], "clip=1"),
    (["--clip", "clipnorm=abc"], "abc"),
    (["--optimizer", "adagrad"], "adagrad"),
    (["--lr", "0"], "lr"),
    (["--lr", "abc"], "--lr"),
    (["--hidden", "0"], "hidden"),
    (["--batch-size", "-3"], "batch_size"),
    (["--max-steps", "0"], "max_steps"),
    (["--eval-every", "0"], "eval_every"),
    (["--momentum", "0.9"], "momentum"),
    (["--optimizer", "sgd:lr=abc"], "abc"),
    (["--optimizer", "sgd:beta=0.9"], "beta"),
    (["--optimizer", "adam:momentum=0.9"], "momentum"),
    (["--optimizer", "sgd:lr=-1"], "lr"),
    (["--hidden", "1000000"], "GiB of memory"),
    (["--seq-len", "100000000"], "GiB of memory"),
    (["--device", "tpu"], "tpu"),
    (["--option", "nonsense"], "nonsense"),
    (["--option", "colour=red"], "colour"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize(("args", "named"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_no_run(args, named, tmp_path):
    out = run_cli("train", "--max-steps", "5", *args, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert named in lines[0]
    assert out.stdout == ""
    assert not (tmp_path / "mlflow.db").exists()  # no run created, nothing half-written


def test_unreachable_tracking_server_fails_fast(tmp_path):
    out = run_cli("train", "--tracking-uri", "http://127.0.0.1:9", "--max-steps", "5", cwd=tmp_path)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "http://127.0.0.1:9" in lines[0]
    assert not (tmp_path / "mlflow.db").exists()


def test_train_prints_one_line_result_and_uses_default_store(tmp_path):
    out = run_cli(
        "train", "--task", "adding", "--seq-len", "8", "--cell", "irnn", "--hidden", "8",
        "--clip", "global_clipnorm=1", "--max-steps", "20", "--eval-every", "10", cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": ""},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result_lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert len(result_lines) == 1
    assert result_lines[0].startswith("adding-T8-irnn-global_clipnorm=1-h8-s0: ")
    assert "val loss / baseline" in result_lines[0]
    assert (tmp_path / "mlflow.db").exists()  # sqlite:///mlflow.db in the working dir


@pytest.mark.parametrize(
    "cmd",
    [["train", "--max-steps", "5"], ["sweep", "quick"], ["perf", "--quick"]],
    ids=["train", "sweep", "perf"],
)
def test_device_gpu_without_a_gpu_exits_2_and_writes_nothing(cmd, tmp_path):
    from suite.core.backend import import_tensorflow

    if import_tensorflow().config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    out = run_cli(*cmd, "--device", "gpu", cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--device gpu" in lines[0] and "sees no GPU" in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []  # no store, no reports


@pytest.mark.parametrize("uri", ["file:///tmp/rnnbench-mlruns", "./mlruns", "mlruns"])
def test_a_file_store_uri_is_one_line_and_writes_nothing(uri, tmp_path):
    out = run_cli("train", "--tracking-uri", uri, "-T", "10", "--max-steps", "10", cwd=tmp_path,
                  env={"MLFLOW_ALLOW_FILE_STORE": ""})  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "maintenance" in lines[0], out.stderr
    assert "sqlite:///mlflow.db" in lines[0] and "MLFLOW_ALLOW_FILE_STORE=true" in lines[0]
    assert list(tmp_path.iterdir()) == []
