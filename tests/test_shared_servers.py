"""Shared infrastructure for real: an authenticated `mlflow server` and a Ray cluster with
token authentication, both on 127.0.0.1, driven by the real CLI in subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import AUTH_ADMIN, JAX_ALONE, TINY_SPEC, _free_port, run_cli

from suite.core.jax_cache import CACHE_ENV, cache_dir

TINY = TINY_SPEC.replace('cells = ["simple_rnn", "gru"]', 'cells = ["simple_rnn"]').replace(
    'clips = ["none", "global_clipnorm=1"]', 'clips = ["global_clipnorm=1"]'
)  # one run: a sweep on an authenticated server is about credentials, not the grid

NO_CREDENTIALS = {
    "MLFLOW_TRACKING_USERNAME": "",
    "MLFLOW_TRACKING_PASSWORD": "",
    "MLFLOW_TRACKING_TOKEN": "",
}


def _admin_client(url):
    """An MlflowClient logged in as the server's admin (credentials from the environment)."""
    import mlflow

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = AUTH_ADMIN
    return mlflow.MlflowClient(url)


def _runs(url, experiment):
    client = _admin_client(url)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=100) if exp else []


def _one_line(out) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1, (out.returncode, out.stderr[-3000:])
    return lines[0]


@pytest.mark.jax
def test_sweep_with_credentials_logs_its_runs_on_an_authenticated_server(auth_server, tmp_path):
    """The README's recipe: the admin creates a user with MLflow's auth client, the user's
    sweep logs every run with MLFLOW_TRACKING_USERNAME/PASSWORD."""
    from mlflow.server import get_app_client

    _admin_client(auth_server)
    auth = get_app_client("basic-auth", tracking_uri=auth_server)
    auth.create_user(username="alice", password="alice-pass-123")
    (tmp_path / "tiny.toml").write_text(TINY)
    env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "alice-pass-123"}
    # on JAX (half TensorFlow's start-up CPU): credentials do not depend on the backend
    out = run_cli(
        "sweep", "tiny.toml", "--tracking-uri", auth_server, "--experiment", "shared",
        "--workers", "1", *JAX_ALONE, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    runs = _runs(auth_server, "shared")
    children = [r for r in runs if r.data.tags.get("rnnbench.kind") != "sweep"]
    assert [r.info.run_name for r in children] == ["adding-T6-simple_rnn-global_clipnorm=1-h4-s0"]
    assert all(r.info.status == "FINISHED" for r in runs)
    exp_id = runs[0].info.experiment_id  # alice created it: the auth app made her its manager
    assert auth.get_user_permission("alice", "experiment", exp_id).permission == "MANAGE"
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (NO_CREDENTIALS, "requires a login and none was given (HTTP 401)"),
        (
            {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong"},
            "rejected the credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
        ),
    ],
    ids=["none", "wrong"],
)
def test_sweep_without_valid_credentials_is_one_line_before_any_training(
    auth_server, tmp_path, env, named
):
    (tmp_path / "tiny.toml").write_text(TINY)
    out = run_cli(
        "sweep", "tiny.toml", "--tracking-uri", auth_server, "--experiment", f"refused-{named[:4]}",
        "--workers", "1", cwd=tmp_path, env=env,
    )  # fmt: skip
    line = _one_line(out)
    assert named in line and auth_server in line
    assert _runs(auth_server, f"refused-{named[:4]}") == []  # no experiment, no parent, no run


def test_train_and_report_refuse_without_credentials(auth_server, tmp_path):
    for args in (["train", "--task", "adding", "-T", "6", "--max-steps", "2"], ["report"]):
        out = run_cli(*args, "--tracking-uri", auth_server, cwd=tmp_path, env=NO_CREDENTIALS)
        assert "HTTP 401" in _one_line(out), args


# --- Ray -------------------------------------------------------------------------------------


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory):
    """A real `ray start --head` with token authentication (RAY_AUTH_MODE=token), one CPU, in
    its own process group (stopped by signalling that group: `ray stop` would stop every Ray
    on the machine); yields (address, token)."""
    pytest.importorskip("ray")
    home = tmp_path_factory.mktemp("ray_head_home")
    env = {
        **os.environ,
        "HOME": str(home),
        "RAY_AUTH_MODE": "token",
        "RAY_worker_niceness": "0",  # Ray nices its workers to 15: starved by parallel tests
        # the cluster's workers train on JAX: the machine's compilation cache, not a new one
        # under this HOME (suite/core/jax_cache.py)
        CACHE_ENV: str(cache_dir() or "off"),
    }
    subprocess.run([_ray_bin(), "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    token = (home / ".ray" / "auth_token").read_text().strip()
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # Ray's socket paths must stay short
    start = [_ray_bin(), "start", "--head", "--block", "--port", str(port), "--num-cpus", "1",
             "--include-dashboard", "false", "--temp-dir", temp, "--disable-usage-stats"]  # fmt: skip
    log = open(home / "head.log", "w")
    head = subprocess.Popen(start, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        assert head.poll() is None, (home / "head.log").read_text()[-2000:]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        pytest.fail("ray head did not listen within 120 s")
    yield f"127.0.0.1:{port}", token
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    log.close()
    shutil.rmtree(temp, ignore_errors=True)


def _ray_sweep(url, tmp_path, address, experiment, env):
    (tmp_path / "tiny.toml").write_text(TINY)
    user = {"MLFLOW_TRACKING_USERNAME": AUTH_ADMIN[0], "MLFLOW_TRACKING_PASSWORD": AUTH_ADMIN[1]}
    return run_cli(
        "sweep", "tiny.toml", "--tracking-uri", url, "--experiment", experiment,
        "--executor", "ray", "--ray-address", address, "--backend", "jax", cwd=tmp_path,
        env={"HOME": str(tmp_path), **user, **env}, timeout=400,
    )  # fmt: skip


def test_ray_cluster_that_does_not_answer_is_one_line(auth_server, tmp_path):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    out = _ray_sweep(auth_server, tmp_path, address, "ray-unreachable", {"RAY_AUTH_MODE": ""})
    line = _one_line(out)
    assert f"cannot reach the Ray cluster at {address}" in line and "ray start --head" in line
    assert _runs(auth_server, "ray-unreachable") == []


def test_ray_cluster_with_token_auth_refuses_a_driver_without_the_token(
    auth_server, token_cluster, tmp_path
):
    address, token = token_cluster
    out = _ray_sweep(auth_server, tmp_path, address, "ray-no-token", {"RAY_AUTH_MODE": ""})
    line = _one_line(out)
    assert f"cannot join the Ray cluster at {address}" in line and "RAY_AUTH_MODE=token" in line
    assert _runs(auth_server, "ray-no-token") == []  # no parent run left RUNNING: none at all


@pytest.mark.jax
def test_ray_cluster_with_token_auth_runs_the_sweep_of_a_driver_with_the_token(
    auth_server, token_cluster, tmp_path
):
    """The README's cluster recipe end to end: the driver exports RAY_AUTH_MODE=token and the
    head's token; the cluster's workers log to the authenticated server with the driver's
    MLflow credentials (forwarded in Ray's runtime_env)."""
    address, token = token_cluster
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    out = _ray_sweep(auth_server, tmp_path, address, "ray-token", env)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = _runs(auth_server, "ray-token")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)  # parent + child
    assert sum("rnnbench.config_hash" in r.data.tags for r in runs) == 1
