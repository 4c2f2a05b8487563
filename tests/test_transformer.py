"""The transformer cell (issue #27): a causal self-attention encoder on the RNN cells' bench.

Real Keras training on TensorFlow (in this process) and JAX (in a subprocess), .keras round
trips, numpy-drawn initial weights, the gradient diagnostics, the hand-built ONNX graph in
onnxruntime and onnx.reference, and export + infer through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys

import numpy as np
import pytest

from suite.core.models import build_model
from tasks import get_task

# the task each round trip trains (every head: per-step logits, a final scalar, final logits)
ROUND_TRIP = ("copy", "adding", "delayed_recall")
TINY = dict(seq_len=10, hidden=8, batch_size=16, max_steps=20, eval_every=10, val_size=32,
            profile_size=8, clip="global_clipnorm=0.1")  # fmt: skip


def _sha(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()


def _perturbed(task, hidden=8, seed=0, scale=0.3):
    """A transformer model with every weight moved off its init (so every weight matters)."""
    model = build_model("transformer", task, hidden=hidden, seed=seed)
    rng = np.random.default_rng(1)
    for v in model.weights:
        v.assign(np.asarray(v) + scale * rng.standard_normal(v.shape).astype(np.float32))
    return model


def test_parameter_count_is_near_the_hidden_64_lstm():
    from suite.core.transformer import HEADS, LAYERS, transformer_sizes

    task = get_task("adding", seq_len=50)
    transformer = build_model("transformer", task, hidden=64, seed=0).count_params()
    lstm = build_model("lstm", task, hidden=64, seed=0).count_params()
    assert (transformer, lstm) == (17281, 17217)  # the numbers the module docstring states
    assert 0.75 <= transformer / lstm <= 1.25
    assert transformer_sizes(64) == (32, HEADS, 64) and LAYERS == 2
    for hidden in (16, 128):  # 16 d_model^2 = 4 hidden^2: the size tracks the LSTM's
        t = build_model("transformer", task, hidden=hidden).count_params()
        assert 0.75 <= t / build_model("lstm", task, hidden=hidden).count_params() <= 1.25
    for hidden in (1, 2, 6, 7):  # odd widths and tiny ones still build (fewer heads)
        d, heads, _ = transformer_sizes(hidden)
        assert d >= 1 and d % heads == 0
        assert build_model("transformer", task, hidden=hidden).output_shape == (None, 1)


def test_initial_weights_are_keras_defaults_drawn_with_numpy():
    import keras

    from suite.core.transformer import keras_fans

    task = get_task("delayed_recall", seq_len=10)
    model = build_model("transformer", task, hidden=64, seed=3)
    kernels = 0
    for v in model.weights:
        value, name = np.asarray(v), v.path.rsplit("/", 1)[-1]
        if name == "kernel":
            kernels += 1
            fan_in, fan_out = keras_fans(value.shape)
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            assert np.abs(value).max() <= limit and np.abs(value).max() > 0.9 * limit, v.path
            # Keras's own GlorotUniform on this shape: the same distribution
            theirs = np.asarray(keras.initializers.GlorotUniform(seed=0)(value.shape))
            assert np.abs(theirs).max() <= limit * (1 + 1e-6)
            assert value.std() == pytest.approx(theirs.std(), rel=0.2), v.path
        elif name == "gamma":
            np.testing.assert_array_equal(value, 1.0)
        else:  # biases and betas
            assert name in ("bias", "beta"), v.path
            np.testing.assert_array_equal(value, 0.0)
    assert kernels == 1 + 2 * 6 + 1  # embed, per block q, k, v, output, ffn in and out, head
    a = [np.asarray(v) for v in build_model("transformer", task, hidden=8, seed=3).weights]
    b = [np.asarray(v) for v in build_model("transformer", task, hidden=8, seed=3).weights]
    c = [np.asarray(v) for v in build_model("transformer", task, hidden=8, seed=4).weights]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_positions_are_sinusoids_for_any_length():
    from suite.core.transformer import position_constants, sinusoidal_positions

    d = 6
    long = np.asarray(sinusoidal_positions(5000, d))
    assert long.shape == (5000, d) and np.all(np.abs(long) <= 1.0)
    np.testing.assert_allclose(long[0], [0, 1, 0, 1, 0, 1], atol=1e-7)  # sin 0, cos 0, ...
    np.testing.assert_array_equal(np.asarray(sinusoidal_positions(7, d)), long[:7])
    t = np.arange(5000, dtype=np.float32)[:, None]
    freq, phase = position_constants(d)
    np.testing.assert_allclose(long, np.sin(t * freq + phase), atol=1e-5)
    np.testing.assert_allclose(freq, 10000.0 ** (-2 * (np.arange(d) // 2) / d), rtol=1e-6)
    # the model runs at lengths no one declared (batch and time dynamic)
    model = build_model("transformer", get_task("copy", seq_len=3), hidden=8)
    assert np.asarray(model(np.zeros((2, 523, 10), np.float32))).shape == (2, 523, 10)


def _onnx_session(model, task):
    import onnxruntime as ort

    from suite.deploy.onnx_build import build_onnx

    proto = build_onnx(model, "transformer", task)
    return proto, ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def test_causal_a_later_input_never_changes_an_earlier_output():
    task = get_task("copy", seq_len=10)  # per-step outputs
    model = _perturbed(task)
    _, session = _onnx_session(model, task)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, task.length, task.input_dim)).astype(np.float32)
    for t0 in (0, 7, task.length - 1):
        changed = x.copy()
        changed[:, t0:] = rng.standard_normal(changed[:, t0:].shape)
        for run in (lambda a: np.asarray(model(a)), lambda a: session.run(None, {"x": a})[0]):
            before, after = run(x), run(changed)
            assert np.abs(after[:, :t0] - before[:, :t0]).max(initial=0.0) <= 1e-6, t0
            assert np.abs(after[:, t0] - before[:, t0]).max() > 1e-3, t0  # t0 sees itself
    # the final position sees the whole sequence: the first input moves a final output
    final = get_task("adding", seq_len=10)
    model = _perturbed(final)
    x, _ = final.generate(4, rng)
    changed = x.copy()
    changed[:, 0, 0] += 1.0
    assert np.abs(np.asarray(model(changed)) - np.asarray(model(x))).max() > 1e-4


@pytest.mark.parametrize("task_name", ["copy", "adding", "delayed_recall", "temporal_order"])
def test_onnx_graph_matches_keras_in_onnxruntime_and_onnx_reference(task_name):
    import onnx
    from onnx.reference import ReferenceEvaluator

    from suite.deploy.onnx_build import OPSET

    task = get_task(task_name, seq_len=10)
    model = _perturbed(task)
    proto, session = _onnx_session(model, task)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET == 17
    ops = {n.op_type for n in proto.graph.node}
    assert {"MatMul", "Softmax", "LayerNormalization", "Range", "Sin", "Where"} <= ops
    assert not {"Loop", "Scan", "RNN", "LSTM", "GRU"} & ops  # no recurrence
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "x" and out.name == "y"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", "time", task.input_dim]
    reference = ReferenceEvaluator(proto)
    rng = np.random.default_rng(2)
    for B, T in ((3, 41), (64, 10)):  # (3, 41) and (64, the trained T)
        x, _ = get_task(task_name, seq_len=T).generate(B, rng)
        want = np.asarray(model(x))
        got = session.run(None, {"x": x})[0]
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4, (B, T)
        if B == 3:
            assert np.abs(reference.run(None, {"x": x})[0] - want).max() <= 1e-4


def _round_trips(backend: str) -> dict:
    """Each of ROUND_TRIP built, trained 20 steps, saved as .keras and loaded back on ``backend``."""
    import tempfile

    import keras

    from suite.core.train import TrainConfig, train

    out = {}
    for task_name in ROUND_TRIP:
        task = get_task(task_name, seq_len=TINY["seq_len"])
        start = build_model("transformer", task, hidden=TINY["hidden"], seed=0)
        result = train(TrainConfig(task=task_name, cell="transformer", backend=backend, **TINY))
        x, _ = get_task(task_name, seq_len=13).generate(3, np.random.default_rng(1))
        with tempfile.TemporaryDirectory() as d:
            result.model.save(f"{d}/m.keras")
            loaded = keras.saving.load_model(f"{d}/m.keras")
        moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
                 for a, b in zip(result.model.weights, start.weights, strict=True)]  # fmt: skip
        last = result.history[-1]
        out[task_name] = {
            "backend": keras.backend.backend(),
            "init": _sha(start.weights),
            "losses": [h.metrics["train_loss"] for h in result.history],
            "val_loss": last.metrics["val_loss"],
            "grad_norm": last.metrics["grad_norm"],
            "clip_fraction": last.metrics["clip_fraction"],
            "profile": [float(v) for v in last.profile],
            "input_length": task.length,
            "status": result.status,
            "moved": min(moved),
            "load_diff": float(np.abs(np.asarray(loaded(x)) - np.asarray(result.model(x))).max()),
            "loaded_layer": type(loaded.get_layer("transformer")).__name__,
        }
    return out


def _jax_scenario() -> dict:
    from suite.core.backend import configure

    configure(backend="jax", device="cpu")
    return _round_trips("jax")


@pytest.fixture(scope="module")
def on_tensorflow():
    return _round_trips("tensorflow")


@pytest.fixture(scope="module")
def on_jax():
    pytest.importorskip("jax")
    from conftest import run_on_jax

    return run_on_jax(__file__)


def _check_round_trip(r: dict, backend: str) -> None:
    assert r["backend"] == backend
    assert r["status"] in ("solved", "unsolved"), r  # trained, did not diverge
    assert all(math.isfinite(v) for v in r["losses"]) and len(r["losses"]) == 2
    assert r["moved"] > 0  # every weight trained
    assert r["load_diff"] == 0.0 and r["loaded_layer"] == "CausalTransformer"
    # the gradient diagnostics: pre-clip norm above the 0.1 threshold, so every step clipped
    assert r["grad_norm"] > 0.1 and r["clip_fraction"] == 1.0
    profile = r["profile"]
    assert len(profile) == r["input_length"]  # one ‖∂L/∂x_t‖ per input step
    assert all(math.isfinite(v) and v >= 0 for v in profile) and max(profile) > 0


@pytest.mark.parametrize("task_name", ROUND_TRIP)
def test_trains_saves_and_loads_on_tensorflow(on_tensorflow, task_name):
    _check_round_trip(on_tensorflow[task_name], "tensorflow")


@pytest.mark.jax
@pytest.mark.parametrize("task_name", ROUND_TRIP)
def test_trains_saves_and_loads_on_jax(on_jax, task_name):
    _check_round_trip(on_jax[task_name], "jax")


@pytest.mark.jax
def test_both_backends_start_from_the_same_weights_and_train_alike(on_tensorflow, on_jax):
    for task_name in ROUND_TRIP:
        tf, jx = on_tensorflow[task_name], on_jax[task_name]
        assert tf["init"] == jx["init"], task_name  # the same numpy-drawn initial weights
        assert jx["losses"][0] == pytest.approx(tf["losses"][0], rel=1e-3), task_name
        assert jx["val_loss"] == pytest.approx(tf["val_loss"], rel=2e-2), task_name
        np.testing.assert_allclose(jx["profile"], tf["profile"], rtol=2e-2, atol=1e-7)


def test_memory_estimate_counts_the_attention_maps():
    from suite.core import memory
    from suite.core.train import TrainConfig
    from suite.core.transformer import HEADS, LAYERS

    assert memory.ATTENTION_MAPS["transformer"] == 2 * LAYERS * HEADS  # scores and probabilities
    short, long = (memory.estimate_bytes(TrainConfig(task="adding", seq_len=T, cell=c, hidden=64))
                   for c, T in (("transformer", 100), ("transformer", 1000)))  # fmt: skip
    lstm = memory.estimate_bytes(TrainConfig(task="adding", seq_len=1000, cell="lstm", hidden=64))
    assert long > 20 * short and long > lstm  # quadratic in T, unlike the recurrent cells


def test_export_and_infer_through_the_cli(tmp_path):
    """A tiny trained run logged to MLflow (its ‖∂L/∂x_t‖ profile read back), exported by
    `rnnbench export` in a fresh process (which loads the .keras model) and run by
    `rnnbench infer`, from the file and from the registry."""
    import mlflow
    from conftest import run_cli

    from suite.core.train import TrainConfig
    from suite.study.record import run_and_log

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = TrainConfig(task="delayed_recall", seq_len=8, cell="transformer", hidden=8,
                      batch_size=16, max_steps=10, eval_every=5, val_size=32, profile_size=8,
                      clip="global_clipnorm=1")  # fmt: skip
    run_id, _ = run_and_log(cfg, uri, "tr")
    client = mlflow.MlflowClient(uri)
    doc = mlflow.artifacts.load_dict(
        client.get_run(run_id).info.artifact_uri + "/grad_profile.json"
    )
    length = get_task("delayed_recall", seq_len=8).length
    assert doc["steps"] == [5, 10] and doc["input_length"] == length
    assert all(len(p) == length and all(math.isfinite(v) for v in p) for p in doc["norms"])
    assert [m.step for m in client.get_metric_history(run_id, "clip_fraction")] == [5, 10]

    out = run_cli("export", "--run", run_id, "--tracking-uri", uri, "--experiment", "tr",
                  "--out", tmp_path / "onnx", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    path = tmp_path / "onnx" / "delayed_recall-T8-transformer.onnx"
    assert path.is_file() and f"{path}  <- run {run_id}" in out.stdout
    export_run = client.search_runs(
        [client.get_experiment_by_name("tr").experiment_id], "tags.`rnnbench.kind` = 'export'"
    )[0]
    assert export_run.data.metrics["parity_ok"] == 1.0, export_run.data.metrics
    assert export_run.data.metrics["parity_max_abs_diff"] <= 1e-4
    assert export_run.data.metrics["metric_agrees"] == 1.0
    for model in (str(path), "models:/rnnbench-delayed_recall-T8@champion"):
        for T in (8, 21):  # the trained length and another
            out = run_cli("infer", model, "--tracking-uri", uri, "--n", 16, "-T", T, "--json",
                          cwd=tmp_path)  # fmt: skip
            assert out.returncode == 0, out.stderr[-3000:]
            r = json.loads(out.stdout)
            assert r["cell"] == "transformer" and r["task"] == "delayed_recall"
            assert r["seq_len"] == T and r["output_shape"] == [16, 8]
            assert math.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1
            assert r["latency_ms_b1_p50"] > 0


if __name__ == "__main__":
    print(json.dumps({"jax": _jax_scenario}[sys.argv[1]]()))
