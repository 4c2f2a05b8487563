"""The cells beyond Keras's own: ortho_rnn (Cayley-orthogonal, modReLU), chrono_lstm, and the
SimpleRNN variants relu_rnn (irnn without the identity init), leaky_rnn and sigmoid_rnn."""

from __future__ import annotations

import hashlib
import json
import math
import sys

import numpy as np
import pytest

from suite.core.models import CELLS, LEAKY_SLOPE, build_model, chrono_bias
from tasks import get_task

NEW_CELLS = ("ortho_rnn", "chrono_lstm", "relu_rnn", "leaky_rnn", "sigmoid_rnn")
# issue #27's SimpleRNN variants and the task each is trained on (every output kind covered)
VANILLA = {"relu_rnn": "adding", "leaky_rnn": "copy", "sigmoid_rnn": "delayed_recall"}
ACTIVATION = {"relu_rnn": "relu", "leaky_rnn": "leaky_relu", "sigmoid_rnn": "sigmoid"}


def _orthogonality_error(w) -> float:
    w = np.asarray(w, dtype=np.float64)
    return float(np.abs(w.T @ w - np.eye(len(w))).max())


def test_the_new_cells_are_in_cells_in_order():
    assert CELLS == ("simple_rnn", "irnn", "relu_rnn", "leaky_rnn", "sigmoid_rnn", "ortho_rnn",
                     "lstm", "chrono_lstm", "gru", "transformer")  # fmt: skip


def test_every_list_of_cells_names_every_cell():
    from suite.core import memory
    from suite.findings.data import CELL_ORDER
    from suite.findings.figures import CELL_COLORS
    from suite.perf import GATES

    assert CELL_ORDER == CELLS
    assert set(CELL_COLORS) == set(memory.GATES) == set(GATES) == set(CELLS)
    assert len(set(CELL_COLORS.values())) == len(CELLS)  # one colour per cell


def test_ortho_rnn_stays_orthogonal_through_training():
    from suite.core.train import TrainConfig, train

    cfg = TrainConfig(task="adding", seq_len=10, cell="ortho_rnn", hidden=8, batch_size=16,
                      lr=1e-2, max_steps=30, eval_every=10, val_size=32, profile_size=8,
                      backend="tensorflow")  # fmt: skip
    start = build_model("ortho_rnn", get_task("adding", seq_len=10), hidden=8, seed=0)
    a0 = np.asarray(start.get_layer("ortho_rnn").recurrent_skew)
    result = train(cfg)
    layer = result.model.get_layer("ortho_rnn")
    a = np.asarray(layer.recurrent_skew)
    assert np.abs(a - a0).max() > 1e-2  # the skew parameter really trained
    w = np.asarray(layer.recurrent_matrix())
    assert _orthogonality_error(w) < 1e-5
    from suite.core.ortho import cayley_numpy

    assert np.abs(cayley_numpy(a) - w).max() < 1e-5  # the exporter's W is the layer's


def test_ortho_rnn_starts_with_spread_eigen_angles():
    model = build_model("ortho_rnn", get_task("adding", seq_len=10), hidden=16, seed=0)
    w = np.asarray(model.get_layer("ortho_rnn").recurrent_matrix())
    assert _orthogonality_error(w) < 1e-5
    angles = np.abs(np.angle(np.linalg.eigvals(w)))
    assert angles.min() > 0 and angles.max() < math.pi / 2 + 1e-6
    assert angles.max() - angles.min() > 0.5  # spread, not the identity
    bias = np.asarray(model.get_layer("ortho_rnn").modrelu_bias)
    assert np.abs(bias).max() <= 0.01 and np.abs(bias).max() > 0


def _profile_at_init(cell: str, T: int = 100) -> np.ndarray:
    from suite.core.steps import make_stepper
    from suite.core.train import TrainConfig, make_loss, make_optimizer

    cfg = TrainConfig(task="adding", seq_len=T, cell=cell, hidden=32, backend="tensorflow")
    task = get_task("adding", seq_len=T)
    model = build_model(cell, task, hidden=32, seed=0)
    stepper = make_stepper(
        "tensorflow", model, task, make_optimizer(cfg), make_loss(task), cfg.clip_spec
    )
    x, y = task.generate(64, np.random.default_rng(0))
    return stepper.profile(x, y)


def test_ortho_rnn_gradients_reach_back_where_tanh_vanishes():
    ortho, tanh = _profile_at_init("ortho_rnn"), _profile_at_init("simple_rnn")
    assert np.all(np.isfinite(ortho)) and len(ortho) == 100
    reach_ortho = ortho[0] / ortho[-1]  # ‖∂L/∂x_0‖ / ‖∂L/∂x_T‖
    reach_tanh = tanh[0] / tanh[-1]
    assert reach_ortho > 0.1
    assert reach_ortho > 1e3 * reach_tanh, (reach_ortho, reach_tanh)


def test_chrono_biases_lie_in_their_ranges():
    task = get_task("copy", seq_len=5)  # input length 25: T_max is the input length, not T
    H = 64
    bias = np.asarray(build_model("chrono_lstm", task, hidden=H, seed=0).get_layer("chrono_lstm")
                      .get_weights()[2])  # fmt: skip
    b_i, b_f, b_c, b_o = (bias[k * H : (k + 1) * H] for k in range(4))
    t_max = task.length
    assert b_f.min() >= 0 and b_f.max() <= math.log(t_max - 1) + 1e-6
    assert b_f.max() > math.log(5)  # beyond what seq_len alone would allow
    assert np.ptp(b_f) > 1.0  # spread over time scales, not the constant 1 of unit_forget_bias
    np.testing.assert_array_equal(b_i, -b_f)
    np.testing.assert_array_equal(b_c, 0)
    np.testing.assert_array_equal(b_o, 0)
    plain = np.asarray(build_model("lstm", task, hidden=H, seed=0).get_layer("lstm")
                       .get_weights()[2])  # fmt: skip
    np.testing.assert_array_equal(plain[H : 2 * H], 1.0)  # the lstm keeps Keras's default


def test_chrono_bias_draws_and_its_small_t_guard():
    rng = np.random.default_rng(0)
    b = chrono_bias(5000, 101, rng)
    b_f = b[5000:10000]
    assert b_f.min() >= 0 and b_f.max() <= math.log(100)
    assert b_f.min() < 0.2 and b_f.max() > math.log(100) - 0.01  # the whole range is drawn
    for t_max in (1, 2):  # T_max - 1 < 2: no range to draw from
        np.testing.assert_array_equal(chrono_bias(4, t_max, rng), 0.0)
    model = build_model("chrono_lstm", get_task("adding", seq_len=2), hidden=4, seed=0)
    assert np.all(np.isfinite(model.get_layer("chrono_lstm").get_weights()[2]))


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_same_seed_same_initial_weights(cell):
    task = get_task("delayed_recall", seq_len=10)
    a = [np.asarray(v) for v in build_model(cell, task, hidden=8, seed=3).weights]
    b = [np.asarray(v) for v in build_model(cell, task, hidden=8, seed=3).weights]
    c = [np.asarray(v) for v in build_model(cell, task, hidden=8, seed=4).weights]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("task_name", ["copy", "adding"])
def test_ortho_rnn_saves_and_loads_as_keras(tmp_path, task_name):
    import keras

    task = get_task(task_name, seq_len=6)
    model = build_model("ortho_rnn", task, hidden=8, seed=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.get_layer("ortho_rnn")
    assert type(layer).__name__ == "OrthoRNN" and layer.return_sequences == (task_name == "copy")
    for T, B in ((6, 3), (11, 1)):  # dynamic batch and time
        x, _ = get_task(task_name, seq_len=T).generate(B, np.random.default_rng(T))
        out = np.asarray(loaded(x))
        np.testing.assert_array_equal(out, np.asarray(model(x)))
        assert out.shape[0] == B and (task_name != "copy" or out.shape[1] == x.shape[1])


@pytest.mark.parametrize("task_name", ["copy", "adding", "delayed_recall"])
def test_ortho_rnn_onnx_scan_matches_keras(task_name):
    import onnx
    import onnxruntime as ort

    from suite.deploy.onnx_build import build_onnx

    task = get_task(task_name, seq_len=8)
    model = build_model("ortho_rnn", task, hidden=8, seed=0)
    rng = np.random.default_rng(1)
    for v in model.weights:  # away from the init, so every weight matters
        v.assign(np.asarray(v) + 0.3 * rng.standard_normal(v.shape).astype(np.float32))
    proto = build_onnx(model, "ortho_rnn", task)
    onnx.checker.check_model(proto, full_check=True)
    assert "Scan" in {n.op_type for n in proto.graph.node}
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for T, B in ((8, 64), (3, 1)):
        x, _ = get_task(task_name, seq_len=T).generate(B, rng)
        diff = np.abs(session.run(None, {"x": x})[0] - np.asarray(model(x))).max()
        assert diff <= 1e-4, (T, B, diff)


@pytest.mark.slow
@pytest.mark.jax
def test_ortho_rnn_solves_copy_where_tanh_does_not():
    """copy@50 recalling 3 symbols of 8, hidden 128, Adam 1e-3, global_clipnorm=1, at most 2000
    steps, seed 0, on JAX (the `cells` preset's copy setting).

    Measured on this 2-core CPU: in the `cells` study ortho_rnn solved it at step 700 (seed 0;
    seed 2 at 1200); this probe's seed 0 solved at step 900 before commit 536e379 and at 1300
    after it (that commit moved the input term into the step: the same maths, another float
    order, another trajectory), so the budget is 2000, not the 1000 that 0.993 at step 900
    only just met. simple_rnn: 0.44-0.78 recall accuracy after 2000 steps in the study, 0.37
    here.
    """
    pytest.importorskip("jax")
    from test_backends import probe

    curves = probe("copy_curves", "jax", "ortho_rnn,simple_rnn", "50", "2000", "3")
    ortho, tanh = curves["ortho_rnn"], curves["simple_rnn"]
    assert ortho["status"] == "solved" and ortho["accuracy"][-1] >= 0.99, ortho
    assert tanh["status"] == "unsolved" and tanh["accuracy"][-1] < 0.9, tanh


def _named_weights(model) -> dict[str, np.ndarray]:
    return {v.path.split("/", 1)[0] + "/" + v.path.rsplit("/", 1)[-1]: np.asarray(v)
            for v in model.weights}  # fmt: skip


def test_relu_rnn_differs_from_irnn_only_in_its_recurrent_init():
    task = get_task("adding", seq_len=10)
    irnn, relu = (build_model(c, task, hidden=16, seed=5) for c in ("irnn", "relu_rnn"))
    a, b = _named_weights(irnn), _named_weights(relu)
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(a[f"irnn/{name}"], b[f"relu_rnn/{name}"])
    np.testing.assert_array_equal(a["head/kernel"], b["head/kernel"])
    np.testing.assert_array_equal(a["irnn/bias"], 0.0)
    np.testing.assert_array_equal(a["irnn/recurrent_kernel"], np.eye(16))
    w = b["relu_rnn/recurrent_kernel"]
    assert _orthogonality_error(w) < 1e-5  # orthogonal (Keras's default), not the identity
    assert np.abs(w - np.eye(16)).max() > 0.1
    la, lb = irnn.get_layer("irnn"), relu.get_layer("relu_rnn")
    assert la.get_config()["activation"] == lb.get_config()["activation"] == "relu"
    # the layers' settings differ in their name and recurrent initialiser only
    ca, cb = la.get_config(), lb.get_config()
    differ = {k for k in ca.keys() | cb.keys() if ca.get(k) != cb.get(k)}
    assert differ == {"name", "recurrent_initializer"}, differ
    # leaky_rnn: irnn's very weights, another activation
    leaky = _named_weights(build_model("leaky_rnn", task, hidden=16, seed=5))
    for name in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_array_equal(a[f"irnn/{name}"], leaky[f"leaky_rnn/{name}"])
    # sigmoid_rnn: Keras's default inits, like simple_rnn (orthogonal recurrent, zero bias)
    sig = _named_weights(build_model("sigmoid_rnn", task, hidden=16, seed=5))
    tanh = _named_weights(build_model("simple_rnn", task, hidden=16, seed=5))
    for name in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_array_equal(sig[f"sigmoid_rnn/{name}"], tanh[f"simple_rnn/{name}"])


def test_leaky_rnn_passes_slope_times_a_negative_pre_activation(tmp_path):
    import keras

    assert 0 < LEAKY_SLOPE < 1
    task = get_task("adding", seq_len=4)
    model = build_model("leaky_rnn", task, hidden=3, seed=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # the slope survives a round trip
    for m in (model, loaded):
        layer = m.get_layer("leaky_rnn")
        z = np.array([-3.0, -0.5, 0.0, 2.0], np.float32)
        np.testing.assert_allclose(np.asarray(layer.activation(z)), [-3 * LEAKY_SLOPE,
                                   -0.5 * LEAKY_SLOPE, 0.0, 2.0], rtol=1e-6)  # fmt: skip
    # through the layer: zero recurrence and bias, so h_T = leaky(x_T K)
    layer = model.get_layer("leaky_rnn")
    kernel = np.array([[-2.0, 1.0, 0.5], [0.0, -1.0, 0.0]], np.float32)
    layer.set_weights([kernel, np.zeros((3, 3), np.float32), np.zeros(3, np.float32)])
    x = np.zeros((1, 4, 2), np.float32)
    x[0, -1] = [1.0, 3.0]  # pre-activation [-2, -2, 0.5]
    np.testing.assert_allclose(np.asarray(layer(x))[0], [-2 * LEAKY_SLOPE, -2 * LEAKY_SLOPE, 0.5],
                               rtol=1e-6)  # fmt: skip


def _sha(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()


def _vanilla_round_trips(backend: str) -> dict:
    """Each of VANILLA built, trained 20 steps, saved as .keras and loaded back on ``backend``."""
    import tempfile

    import keras

    from suite.core.train import TrainConfig, train

    out = {}
    for cell, task_name in VANILLA.items():
        task = get_task(task_name, seq_len=10)
        start = build_model(cell, task, hidden=8, seed=0)
        cfg = TrainConfig(task=task_name, seq_len=10, cell=cell, hidden=8, batch_size=16,
                          max_steps=20, eval_every=10, val_size=32, profile_size=8,
                          clip="global_clipnorm=1", backend=backend)  # fmt: skip
        result = train(cfg)
        x, _ = task.generate(3, np.random.default_rng(1))
        with tempfile.TemporaryDirectory() as d:
            result.model.save(f"{d}/m.keras")
            loaded = keras.saving.load_model(f"{d}/m.keras")
        moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
                 for a, b in zip(result.model.weights, start.weights, strict=True)]  # fmt: skip
        out[cell] = {
            "backend": keras.backend.backend(),
            "init": _sha(start.weights),
            "losses": [h.metrics["train_loss"] for h in result.history],
            "val_loss": result.history[-1].metrics["val_loss"],
            "status": result.status,
            "moved": min(moved),
            "load_diff": float(np.abs(np.asarray(loaded(x)) - np.asarray(result.model(x))).max()),
            "activation": loaded.get_layer(cell).get_config()["activation"],
        }
    return out


def _jax_scenario() -> dict:
    from suite.core.backend import configure

    configure(backend="jax", device="cpu")
    return _vanilla_round_trips("jax")


@pytest.fixture(scope="module")
def on_tensorflow():
    return _vanilla_round_trips("tensorflow")


@pytest.fixture(scope="module")
def on_jax():
    pytest.importorskip("jax")
    from conftest import run_on_jax

    return run_on_jax(__file__)


def _check_round_trip(r: dict, cell: str, backend: str) -> None:
    assert r["backend"] == backend
    assert r["activation"] == ACTIVATION[cell]
    assert r["status"] in ("solved", "unsolved"), r  # trained, did not diverge
    assert all(math.isfinite(v) for v in r["losses"]) and len(r["losses"]) == 2
    assert r["moved"] > 0  # every weight trained
    assert r["load_diff"] == 0.0  # the loaded .keras model is the trained one


@pytest.mark.parametrize("cell", VANILLA)
def test_vanilla_variants_train_save_and_load_tensorflow(on_tensorflow, cell):
    _check_round_trip(on_tensorflow[cell], cell, "tensorflow")


@pytest.mark.jax
@pytest.mark.parametrize("cell", VANILLA)
def test_vanilla_variants_train_save_and_load_jax(on_jax, cell):
    _check_round_trip(on_jax[cell], cell, "jax")


@pytest.mark.jax
def test_vanilla_variants_start_and_train_alike_on_both_backends(on_tensorflow, on_jax):
    for cell in VANILLA:
        tf, jx = on_tensorflow[cell], on_jax[cell]
        assert tf["init"] == jx["init"], cell  # the same numpy-drawn initial weights
        assert jx["losses"][0] == pytest.approx(tf["losses"][0], rel=1e-3), cell
        assert jx["val_loss"] == pytest.approx(tf["val_loss"], rel=2e-2), cell


if __name__ == "__main__":
    print(json.dumps({"jax": _jax_scenario}[sys.argv[1]]()))
