"""Shared fixtures: real MLflow stores (sqlite file, and a real `mlflow server` on 127.0.0.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _pin_xdist_worker() -> None:
    """Give each pytest-xdist worker its own share of the cores; its test processes inherit it.

    The tests are CPU-bound and run as many workers as cores (``-n auto``): a Keras process
    that sees every core spins a thread pool per core and competes with the other worker's
    processes. Pinned, a tiny JAX training process took a third less CPU (7.3 s against
    10.9 s, TensorFlow 10.3 against 11.6, same wall; measured 2026-12-04). A sweep's JAX
    workers re-pin themselves to their own cores (``suite.core.backend``), as for a user.
    """
    worker, count = (
        os.environ.get("PYTEST_XDIST_WORKER"),
        os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
    )
    if not (worker and count and hasattr(os, "sched_setaffinity")):
        return
    cores, n = sorted(os.sched_getaffinity(0)), int(count)
    if n < 2 or n > len(cores):
        return
    share = len(cores) // n
    i = int(worker.removeprefix("gw")) % n
    os.sched_setaffinity(0, set(cores[i * share : (i + 1) * share]))


_pin_xdist_worker()

# The modules that take longest, longest first (seconds of one xdist worker, measured on the
# 2-core CI machine, 2026-12-03: test_sweep and test_backends ~260 each, test_onnx ~200, then
# 100-160 each). tox hands whole modules to its workers (--dist loadfile) in collection order
# (--no-loadscope-reorder): the long ones start first, so the run does not end with one
# worker busy on a long module while the other waits. Modules not named keep their order.
LONGEST_FIRST = (
    "test_sweep.py", "test_backends.py", "test_onnx.py", "test_shared_servers.py",
    "test_population.py", "test_train.py", "test_critical.py", "test_report.py",
    "test_transformer.py", "test_hardening.py",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: ties keep order


TINY_SPEC = """
name = "tiny"
tasks = ["adding"]
seq_lens = [6]
cells = ["simple_rnn", "gru"]
clips = ["none", "global_clipnorm=1"]
seeds = [0]

[train]
hidden = 4
batch_size = 8
max_steps = 10
eval_every = 5
val_size = 16
profile_size = 8
"""  # the tiny sweep spec of the sweep, report and shared-server tests (each derives its own)


# Sweep options of the tests of sweep machinery that does not depend on the backend (kill -9,
# a segfault, Ctrl-C, a second invocation, critical sweeps, the report's tiny sweep, shared
# servers): JAX, whose workers start in about half TensorFlow's CPU time and whose runs of one
# shape compile once (suite/core/jax_cache.py), each run alone as on TensorFlow. TensorFlow,
# the default, stays tested by the module sweep, the workers and resume tests.
JAX_ALONE = ("--backend", "jax", "--population", "off")


def new_store(path) -> str:
    """Create an empty sqlite tracking store at ``path`` as every rnnbench command does
    (``tracking.store.init_store``: a copy of the cached empty store, not MLflow's seconds of
    migrations per new file); returns its URI."""
    from tracking.store import init_store

    uri = f"sqlite:///{path}"
    init_store(uri)
    return uri


@pytest.fixture
def sqlite_uri(tmp_path):
    """A fresh, empty sqlite tracking store in the test's own folder."""
    return new_store(tmp_path / "mlflow.db")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root, *extra, env=None):
    """Start a real `mlflow server` on a free port of 127.0.0.1 in ``root``; yields its URL."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--workers", "1", *extra,
    ]  # fmt: skip
    log = open(root / "server.log", "w")
    # MLflow 3's job runner (a handful of huey consumer processes, for GenAI jobs) is not
    # needed by rnnbench and costs seconds of CPU at every start
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not start within 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on a free port of 127.0.0.1, stopped after the session."""
    yield from _serve(tmp_path_factory.mktemp("mlflow_server"))


AUTH_ADMIN = ("admin", "admin-pass-for-tests-1")


def documented_auth_config() -> str:
    """The basic-auth config file of docs/sharing.md (its ``ini`` block), as a user copies it."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "sharing.md").read_text()
    return doc.split("```ini\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    """A real `mlflow server --app-name basic-auth` (MLflow's own authentication) on
    127.0.0.1, with the config file docs/sharing.md gives (verified logins cached); its admin is
    ``AUTH_ADMIN`` (the user store, basic_auth.db, lives in its folder)."""
    root = tmp_path_factory.mktemp("auth_server")
    (root / "basic_auth.ini").write_text(documented_auth_config())
    env = {
        "MLFLOW_AUTH_ADMIN_PASSWORD": AUTH_ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-only-secret",
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
    }
    yield from _serve(root, "--app-name", "basic-auth", env=env)


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run the real console entry point in a subprocess."""
    # mlflow.set_tracking_uri() in this process exports MLFLOW_TRACKING_URI: don't leak it.
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "MLFLOW_TRACKING_URI",
            "MLFLOW_REGISTRY_URI",
            "MLFLOW_TRACKING_USERNAME",  # the auth tests log in as admin in this process
            "MLFLOW_TRACKING_PASSWORD",
        )
    }
    full_env = {**base, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "suite.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )


def decay_profile(length: int, slope: float, scale: float = 1.0) -> list[float]:
    """A ‖∂L/∂x_t‖ profile whose log10 falls by ``-slope`` per 100 steps of distance."""
    return [scale * 10 ** (slope * (length - 1 - t) / 100) for t in range(length)]


def log_fake_run(
    client, exp_id, parent, task, T, cell, clip, seed, status,
    steps=None, ratio=None, gmax=1.5, gmean=1.0, *,
    curves=None, profiles=None, stop_reason=None, run_steps=None, max_steps=None,
    input_length=None, params=None, config_hash=None,
):  # fmt: skip
    """Hand-log one finished child run laid out as `rnnbench train` logs it (for report logic).

    ``steps``: steps to solve (solved runs); ``curves``: metric -> values at evals 100, 200, ...
    (stepped metrics: ``val_loss_ratio``, ``grad_norm``, ``grad_norm_max``, ``clip_fraction``);
    ``profiles``: ‖∂L/∂x_t‖ per eval, written as the real ``grad_profile.json`` artifact;
    ``run_steps``/``max_steps``/``stop_reason``: the final ``steps`` metric, the param and tag;
    ``params``: more params (e.g. ``optimizer``, ``lr``, ``omega``), also in the default hash.
    """
    from mlflow.entities import Metric, Param

    tags = {
        "mlflow.parentRunId": parent,
        "rnnbench.status": status,
        "rnnbench.config_hash": config_hash
        or f"{task}{T}{cell}{clip}{seed}" + "".join(f"{k}{v}" for k, v in (params or {}).items()),
    }
    if stop_reason:
        tags["rnnbench.stop_reason"] = stop_reason
    run = client.create_run(exp_id, run_name=f"{task}-T{T}-{cell}-{clip}-s{seed}", tags=tags)
    rid = run.info.run_id
    params = dict(task=task, seq_len=T, cell=cell, clip=clip, seed=seed, **(params or {}))
    if max_steps is not None:
        params["max_steps"] = max_steps
    if input_length is not None:
        params["input_length"] = input_length
    if ratio is None:
        ratio = {"solved": 0.01, "unsolved": 0.95, "diverged": float("inf")}[status]
    ts = int(time.time() * 1000)
    stepped = {
        "val_loss_ratio": [ratio],
        "grad_norm": [gmean],
        "grad_norm_max": [gmax],
        "clip_fraction": [0.0 if clip == "none" else 0.5],
        **(curves or {}),
    }
    metrics = [
        Metric(k, float(v), ts, 100 * (i + 1))
        for k, vs in stepped.items()
        for i, v in enumerate(vs)
    ]
    final = {"solved": float(status == "solved")}
    if status == "solved":
        final["steps_to_solve"] = steps or 1000
    if run_steps is not None:
        final["steps"] = run_steps
    metrics += [Metric(k, float(v), ts, 100) for k, v in final.items()]
    client.log_batch(rid, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    if profiles is not None:
        doc = {"steps": [100 * (i + 1) for i in range(len(profiles))], "norms": profiles}
        doc.update(seq_len=T, input_length=input_length or len(profiles[0]))
        client.log_dict(rid, doc, "grad_profile.json")
    client.set_terminated(rid, "FINISHED")


def run_on_jax(script: str) -> dict:
    """Run a test module as a script (``python FILE jax``) in a fresh process on the JAX
    backend and return the JSON its last stdout line holds (a test process has one Keras
    backend, fixed at import)."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "KERAS_BACKEND")}
    out = subprocess.run(
        [sys.executable, script, "jax"], capture_output=True, text=True, timeout=600,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
