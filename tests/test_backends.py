"""The train step on both Keras backends: same start, same semantics, same MLflow layout.

Each backend runs in its own process (Keras fixes its backend at import), through
``tests/backend_probe.py``; this module compares what they report. Needs the jax extra
(``tox -e jax``); skipped without it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

pytest.importorskip("jax")
pytestmark = pytest.mark.jax

PROBE = Path(__file__).with_name("backend_probe.py")
BACKENDS = ("tensorflow", "jax")


def _clean_env() -> dict:
    """This process's environment without what it chose for itself (its store, its backend)."""
    return {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "KERAS_BACKEND")
    }


def probe(scenario: str, backend: str, *args) -> dict:
    env = _clean_env()
    out = subprocess.run(
        [sys.executable, str(PROBE), scenario, backend, *args],
        capture_output=True, text=True, timeout=600,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": backend},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """Per backend, one probe process: the start of every cell, one run logged to a sqlite
    store (its URI under ``"uri"``), and on JAX the semantics scenario."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('backends') / 'mlflow.db'}"
    out = {b: probe("together", b, uri, *(["semantics"] if b == "jax" else [])) for b in BACKENDS}
    return {**out, "uri": uri}


@pytest.fixture(scope="module")
def starts(probed):
    return {b: probed[b]["start"] for b in BACKENDS}


def test_same_data_weights_and_first_step_on_both_backends(starts):
    from suite.core.models import CELLS

    tf, jx = starts["tensorflow"], starts["jax"]
    assert set(tf) == set(jx) == set(CELLS)  # every cell, the new ones included
    for cell in tf:
        assert tf[cell]["data"] == jx[cell]["data"], cell
        assert tf[cell]["weights"] == jx[cell]["weights"], cell
        assert jx[cell]["first_loss"] == pytest.approx(tf[cell]["first_loss"], rel=1e-5), cell
        assert jx[cell]["first_grad_norm"] == pytest.approx(tf[cell]["first_grad_norm"], rel=1e-4)
        # 40 steps later: different kernels (not bitwise), the same training
        assert jx[cell]["val_loss_40"] == pytest.approx(tf[cell]["val_loss_40"], rel=2e-2), cell


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc settings (Linux)")
def test_a_jax_process_keeps_the_memory_its_steps_free(probed):
    # glibc accepted every setting (mallopt returns 1), and a worker thread that frees a
    # 640 MiB block and allocates it again reuses its pages, as a T = 400 step reuses the
    # last one's buffers (suite.core.backend._keep_freed_memory); the TensorFlow process, on
    # glibc's defaults, faults all 163,840 in again
    assert probed["jax"]["configured"]["malloc_kept"] is True
    assert "malloc_kept" not in probed["tensorflow"]["configured"]  # TensorFlow: untouched
    assert probed["jax"]["refaults"] < 1_000
    assert probed["tensorflow"]["refaults"] > 150_000


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc settings (Linux)")
def test_a_jax_process_hands_freed_memory_back_when_asked(probed):
    # the kept heap stays resident (the freed 640 MiB block), until release_freed_memory,
    # which a sweep worker calls after each job and perf before each measurement
    held = probed["jax"]["held"]
    assert held["held"] > 600
    assert held["released"] is True
    assert held["after"] < 64
    assert probed["tensorflow"]["held"]["held"] < 64  # glibc's defaults: unmapped on free


@pytest.fixture(scope="module")
def jax_semantics(probed):
    return probed["jax"]["semantics"]


def test_jax_clipping_is_real_and_bounds_the_update(jax_semantics):
    clipped = jax_semantics["update"]["global_clipnorm=0.001"]
    assert clipped["grad_norm"] > 1e-3  # the pre-clip norm is logged
    assert clipped["clip_fraction"] == 1.0
    assert clipped["delta"] == pytest.approx(1e-3, rel=1e-3)  # SGD lr 1: |update| = tau
    free = jax_semantics["update"]["none"]
    assert free["clip_fraction"] == 0.0
    assert free["delta"] == pytest.approx(free["grad_norm"], rel=1e-3)


def test_jax_clip_kinds_fire_only_when_they_clip(jax_semantics):
    fire = jax_semantics["fire"]
    assert fire["clipnorm=1e-4"] == 1.0
    assert fire["clipvalue=1e-6"] == 1.0
    assert fire["clipvalue=1e6"] == 0.0


def test_jax_step_runs_gru_through_the_generic_loop_on_a_cpu(jax_semantics):
    # Keras's JAX GRU loop projects all T inputs before its scan (the form XLA's CPU fusion
    # leaves unvectorised); once the suite's JAX step is built the traced program projects
    # each step's input inside the loop, and the outputs are the same
    loop = jax_semantics["gru_loop"]
    assert loop["hoisted_before"] is True
    assert loop["hoisted_after"] is False
    assert loop["use_cudnn"] is False
    assert loop["max_diff"] < 1e-6


def test_jax_profile_divergence_repeatability_and_no_tensorflow(jax_semantics):
    prof = jax_semantics["profile"]
    assert len(prof) == jax_semantics["input_length"]
    assert all(math.isfinite(v) for v in prof) and max(prof) > 0
    assert jax_semantics["huge_lr_status"] == "diverged"
    assert jax_semantics["repeatable"]  # same seed, same numbers on CPU
    assert not jax_semantics["tensorflow_loaded"]


def test_both_backends_log_the_same_layout(probed):
    import mlflow

    uri = probed["uri"]
    logged = {b: probed[b]["log"] for b in BACKENDS}
    assert not logged["jax"]["tensorflow_loaded"]
    assert logged["jax"]["hash"] != logged["tensorflow"]["hash"]  # different results
    client = mlflow.MlflowClient(uri)
    runs = {b: client.get_run(logged[b]["run_id"]) for b in BACKENDS}
    tf, jx = runs["tensorflow"].data, runs["jax"].data
    assert set(tf.params) == set(jx.params)

    def ours(keys):  # MLflow's system metrics depend on how long the run took
        return {k for k in keys if not k.startswith("system/")}

    from tracking.layout import JAX_ONLY_METRICS

    assert ours(tf.metrics) == ours(jx.metrics) - set(JAX_ONLY_METRICS)
    assert set(JAX_ONLY_METRICS) <= set(jx.metrics)  # the compilation cache's counters
    assert set(tf.tags) - {"mlflow.log-model.history"} == set(jx.tags) - {
        "mlflow.log-model.history"
    }
    for b in BACKENDS:
        assert runs[b].data.params["backend"] == b
        assert runs[b].data.tags["rnnbench.backend"] == b
        assert runs[b].data.tags["rnnbench.config_hash"] == logged[b]["hash"]
        artifacts = {a.path for a in client.list_artifacts(logged[b]["run_id"])}
        assert "grad_profile.json" in artifacts
        hist = client.get_metric_history(logged[b]["run_id"], "val_loss")
        assert [h.step for h in hist] == [10, 20]
    for m in ("val_loss", "grad_norm"):  # same data, same weights: close numbers
        assert jx.metrics[m] == pytest.approx(tf.metrics[m], rel=5e-2), m


def test_cli_train_sweep_and_export_on_jax(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli(
        "train", "--backend", "jax", "--task", "adding", "-T", "10", "--cell", "irnn",
        "--clip", "global_clipnorm=1", "--hidden", "8", "--max-steps", "20", "--eval-every", "10",
        "--tracking-uri", uri, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split("[run ")[1].split("]")[0]
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "tiny"\ntasks = ["delayed_recall"]\nseq_lens = [10]\ncells = ["lstm", "gru"]\n'
        'clips = ["none"]\nseeds = [0]\n[train]\nhidden = 8\nmax_steps = 20\neval_every = 10\n'
    )
    out = run_cli("sweep", spec, "--backend", "jax", "--workers", "1", "--tracking-uri", uri,
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnbench")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    parents = [r for r in runs if r.data.tags.get("rnnbench.kind") == "sweep"]
    assert len(children) == 2 and len(parents) == 1
    assert {r.data.params["backend"] for r in children} == {"jax"}
    assert parents[0].data.params["backend"] == "jax"
    # the same grid on TensorFlow is another sweep: nothing is skipped as "finished" (the
    # plan `sweep --dry-run` prints, made here in-process: no two more CLI start-ups)
    from suite.study.spec import load_spec
    from suite.study.sweep import plan_sweep

    for other, finished in (("tensorflow", 0), ("jax", 2)):
        plan = plan_sweep(load_spec(str(spec)).with_backend(other), uri, "rnnbench")
        assert len(plan.done) == finished and len(plan.todo) == 2 - finished, other

    out = run_cli("export", "--run", run_id, "--out", tmp_path / "onnx", "--tracking-uri", uri,
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    exports = [r for r in client.search_runs([exp.experiment_id])
               if r.data.tags.get("rnnbench.kind") == "export"]  # fmt: skip
    assert len(exports) == 1
    assert exports[0].data.tags["rnnbench.backend"] == "jax"
    assert exports[0].data.metrics["parity_ok"] == 1.0
    assert exports[0].data.metrics["metric_agrees"] == 1.0
    assert (tmp_path / "onnx" / "adding-T10-irnn.onnx").exists()


def test_bad_backend_is_one_line_and_writes_nothing(tmp_path):
    for cmd in (("train",), ("sweep", "quick"), ("perf", "--quick")):
        out = run_cli(*cmd, "--backend", "theano", cwd=tmp_path)
        assert out.returncode == 2, (cmd, out.stderr)
        assert "theano" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_jax_device_gpu_without_a_gpu_is_one_line_and_writes_nothing(tmp_path):
    for cmd in (("train",), ("sweep", "quick"), ("perf", "--quick")):
        out = run_cli(*cmd, "--backend", "jax", "--device", "gpu", cwd=tmp_path)
        assert out.returncode == 2, (cmd, out.stderr)
        assert "JAX sees no GPU" in out.stderr and "jax-cuda" in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert list(tmp_path.iterdir()) == []


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its last stdout line."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=_clean_env())  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_device_gpu_is_refused_before_the_backend_is_imported_where_no_gpu_device_exists(backend):
    from suite.core.backend import gpu_device_nodes

    if gpu_device_nodes():
        pytest.skip("this machine has GPU device files")
    code = (
        "import sys\nfrom suite.core.backend import configure, DeviceError\n"
        f"try:\n    configure(device='gpu', backend={backend!r})\n"
        "except DeviceError as e:\n    assert 'sees no GPU' in str(e), e\n"
        "else:\n    raise SystemExit('no error')\n"
        "print(sorted(m for m in ('tensorflow', 'jax', 'keras') if sys.modules.get(m)))"
    )
    assert _fresh(code) == "[]"


def test_population_auto_on_a_machine_without_a_gpu_does_not_import_jax():
    """The sweep driver learns there is no GPU from the device files or the missing JAX GPU
    plugin (whichever says it first), not from ~2.5 s of `import jax`."""
    from suite.core.backend import gpu_device_nodes, jax_gpu_plugin_installed

    if gpu_device_nodes() and jax_gpu_plugin_installed():
        pytest.skip("this machine may have a GPU JAX can use")
    code = (
        "import sys\nfrom suite.cli import _population_size, POPULATION_AUTO_CPU\n"
        "size = _population_size('auto', 'jax', 'auto', configs=40, workers=2)\n"
        "assert size == POPULATION_AUTO_CPU, size  # the CPU's choice\n"
        "print(sys.modules.get('jax') is not None)"
    )
    assert _fresh(code) == "False"
