"""Pascanu et al. 2013's regulariser Ω (``suite.core.omega``, ``TrainConfig.omega``).

The math against a numpy reference and autodiff, the train step on both backends (the JAX
side runs this file as a script in a fresh JAX process: ``python tests/test_omega.py jax``),
the config rules (cells, values, hash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys

import numpy as np
import pytest

TINY = dict(task="adding", seq_len=10, cell="simple_rnn", hidden=8, batch_size=16,
            max_steps=6, eval_every=3, val_size=32)  # fmt: skip


# ---------------------------------------------------------------- numpy reference


def _np_forward_backward(w, u, b, k, c, x, y, relu, per_step):
    """h_t = f(x_t W + b + h_{t-1} U), the head, the loss (MSE on the last state, or mean
    cross-entropy on every state), and δ_t = ∂L/∂h_t by hand (backprop through time)."""
    batch, steps, _ = x.shape
    h, hs = np.zeros((batch, u.shape[0])), []
    for t in range(steps):
        z = x[:, t] @ w + b + h @ u
        h = np.maximum(z, 0.0) if relu else np.tanh(z)
        hs.append(h)
    hs = np.stack(hs)  # [time, batch, hidden]
    fprime = (hs > 0).astype(float) if relu else 1.0 - hs**2
    d_head = np.zeros_like(hs)
    if per_step:
        logits = hs @ k + c  # [time, batch, classes]
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        onehot = np.eye(k.shape[1])[y.T]
        d_head = ((p - onehot) / (batch * steps)) @ k.T
        pred = np.transpose(logits, (1, 0, 2))
    else:
        pred = hs[-1] @ k + c  # [batch, 1]
        d_head[-1] = (2.0 * (pred[:, 0] - y) / batch)[:, None] * k[:, 0][None, :]
    delta, carry = np.zeros_like(hs), np.zeros_like(hs[0])
    for t in reversed(range(steps)):
        delta[t] = d_head[t] + carry
        carry = (delta[t] * fprime[t]) @ u.T
    return pred, hs, fprime, delta


def _np_omega(delta, fprime, u):
    """Ω and ∂Ω/∂U entry by entry (pairs t, t+1; rows with ‖δ‖² < 1e-20 left out)."""
    terms, grad = [], np.zeros_like(u)
    for t in range(1, delta.shape[0]):
        for n in range(delta.shape[1]):
            d = delta[t, n]
            dd = d @ d
            if dd < 1e-20:
                continue
            a = d * fprime[t, n]
            v = a @ u.T
            r = (v @ v) / dd
            terms.append((r - 1.0) ** 2)
            grad += (r - 1.0) / dd * np.outer(v, a)
    if not terms:
        return 0.0, grad
    return float(np.mean(terms)), 4.0 * grad / len(terms)


def _tiny_model(cell, task_name, rng):
    """A hidden-4 model of ``cell`` for ``task_name`` with random (large-ish) weights."""
    from suite.core.models import build_model
    from tasks import get_task

    task = get_task(task_name, seq_len=5)
    model = build_model(cell, task, hidden=4, seed=0)
    for v in model.trainable_variables:
        v.assign(rng.normal(0.0, 0.7, size=v.shape).astype(np.float32))
    return model, task


def _tf_delta(model, task, values, layout, x, y):
    """δ = ∂L/∂e through ``omega.forward`` (TensorFlow tape), and the forward's outputs."""
    import tensorflow as tf

    from suite.core import omega as om
    from suite.core.train import make_loss
    from tasks import FINAL_SCALAR

    loss_fn = make_loss(task)
    e = om.zero_perturbation(values, layout, x)
    with tf.GradientTape() as tape:
        tape.watch(e)
        pred, hs = om.forward(values, layout, x, e)
        flat = tf.reshape(pred, [-1]) if task.output_kind == FINAL_SCALAR else pred
        loss = loss_fn(y, flat)
    return pred, hs, tape.gradient(loss, e)


@pytest.mark.parametrize(
    ("cell", "task_name"), [("simple_rnn", "adding"), ("irnn", "copy")], ids=["tanh", "relu"]
)
def test_omega_and_its_gradient_match_a_numpy_reference(cell, task_name):
    """3 steps, hidden 4, batch 2, random weights: the manual forward is the Keras model's,
    δ is backprop-through-time's, Ω and ∂Ω/∂U are the formula's."""
    from suite.core import omega as om

    rng = np.random.default_rng(7)
    model, task = _tiny_model(cell, task_name, rng)
    layout = om.omega_layout(model, task)
    assert layout.activation == ("relu" if cell == "irnn" else "tanh")
    x = rng.normal(size=(2, 3, task.input_dim)).astype(np.float32)
    if layout.per_step:
        y = rng.integers(0, task.output_dim, size=(2, 3))
    else:
        y = rng.normal(size=2).astype(np.float32)
    values = [v.value for v in model.trainable_variables]
    pred, hs, delta = _tf_delta(model, task, values, layout, x, y)
    np.testing.assert_allclose(np.asarray(pred), np.asarray(model(x)), rtol=1e-5, atol=1e-6)

    w, u, b, k, c = (np.asarray(v, dtype=np.float64) for v in values)
    ref_pred, ref_hs, fprime, ref_delta = _np_forward_backward(
        w, u, b, k, c, x.astype(np.float64), y, cell == "irnn", layout.per_step
    )
    np.testing.assert_allclose(np.asarray(pred), ref_pred, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(hs), ref_hs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(delta), ref_delta, rtol=1e-4, atol=1e-7)

    omega, d_u = om.omega_and_grad(delta, hs, values[layout.recurrent], layout.activation)
    ref_omega, ref_grad = _np_omega(ref_delta, fprime, u)
    assert ref_omega > 1e-3  # a case where Ω is not trivially zero
    assert float(omega) == pytest.approx(ref_omega, rel=1e-4)
    np.testing.assert_allclose(np.asarray(d_u), ref_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_closed_form_gradient_equals_autodiff_with_delta_and_fprime_constant(activation):
    """∂Ω/∂U from the closed form is autodiff of Ω(U) (δ, h constant), transpose included;
    a zero δ row is left out of the mean."""
    import tensorflow as tf

    from suite.core.omega import omega_and_grad

    rng = np.random.default_rng(3)
    delta = rng.normal(size=(4, 3, 5)).astype(np.float32)
    delta[2, 1] = 0.0  # left out (‖δ‖² < 1e-20)
    hs = rng.uniform(-0.9, 0.9, size=(4, 3, 5)).astype(np.float32)
    u = tf.constant(rng.normal(0.0, 0.6, size=(5, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(u)
        omega, d_u = omega_and_grad(tf.constant(delta), tf.constant(hs), u, activation)
    auto = tape.gradient(omega, u)
    assert np.all(np.isfinite(np.asarray(d_u)))
    assert np.abs(np.asarray(d_u)).max() > 1e-3
    assert not np.allclose(np.asarray(d_u), np.asarray(d_u).T, rtol=1e-2)  # transpose matters
    np.testing.assert_allclose(np.asarray(d_u), np.asarray(auto), rtol=1e-4, atol=1e-6)
    # with every δ zero nothing is kept: Ω = 0 and no gradient (no NaN)
    omega0, d_u0 = omega_and_grad(tf.zeros((4, 3, 5)), tf.constant(hs), u, activation)
    assert float(omega0) == 0.0 and not np.asarray(d_u0).any()


# ---------------------------------------------------------------- the train step


def _weights(model):
    return [np.array(v) for v in model.trainable_variables]


def test_alpha_zero_is_exactly_the_plain_run_tensorflow():
    from suite.core.train import TrainConfig, train

    plain = train(TrainConfig(**TINY))
    zero = train(TrainConfig(**TINY, omega=0.0))
    for a, b in zip(_weights(plain.model), _weights(zero.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [h.metrics for h in zero.history] == [h.metrics for h in plain.history]
    assert "omega" not in zero.history[-1].metrics  # logged only with the regulariser on
    # the regulariser's whole path with a vanishing α (SGD: no rescaled tiny gradients)
    sgd = dict(TINY, optimizer="sgd", lr=0.1)
    base = train(TrainConfig(**sgd))
    tiny = train(TrainConfig(**sgd, omega=1e-30))
    for a, b in zip(_weights(base.model), _weights(tiny.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert math.isfinite(tiny.history[-1].metrics["omega"])


@pytest.mark.parametrize("cell", ["simple_rnn", "irnn"])
def test_alpha_positive_changes_the_weights_and_logs_omega_tensorflow(cell):
    from suite.core.train import TrainConfig, train

    settings = dict(TINY, cell=cell, task="copy" if cell == "irnn" else "adding")
    plain = train(TrainConfig(**settings))
    reg = train(TrainConfig(**settings, omega=1.0))
    moved = [not np.allclose(a, b) for a, b in zip(_weights(plain.model), _weights(reg.model), strict=True)]  # fmt: skip
    assert moved[1]  # the recurrent kernel
    assert len(reg.history) == 2
    for h in reg.history:
        assert math.isfinite(h.metrics["omega"]) and h.metrics["omega"] >= 0.0
    assert reg.history[0].metrics["omega"] > 0.0


def test_omega_is_logged_to_mlflow(sqlite_uri):
    import mlflow

    from suite.core.train import TrainConfig
    from suite.study.record import run_and_log

    cfg = TrainConfig(**dict(TINY, cell="irnn"), omega=0.5)
    run_id, _ = run_and_log(cfg, sqlite_uri, "omega", log_model=False)
    hist = mlflow.MlflowClient(sqlite_uri).get_metric_history(run_id, "omega")
    assert [h.step for h in hist] == [3, 6]
    assert all(math.isfinite(h.value) for h in hist)


# ---------------------------------------------------------------- config rules


@pytest.mark.parametrize("cell", ["lstm", "gru", "ortho_rnn", "chrono_lstm"])
def test_omega_with_another_cell_is_one_line_naming_it(cell):
    from suite.core.train import TrainConfig

    with pytest.raises(ValueError) as e:
        TrainConfig(task="adding", cell=cell, omega=1.0).validate()
    msg = str(e.value)
    assert "\n" not in msg and repr(cell) in msg
    assert "simple_rnn" in msg and "irnn" in msg
    TrainConfig(task="adding", cell=cell, omega=0.0).validate()  # off: any cell


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
def test_omega_must_be_a_finite_number_at_least_zero(bad):
    from suite.core.train import TrainConfig

    with pytest.raises(ValueError, match="omega"):
        TrainConfig(task="adding", cell="simple_rnn", omega=bad).validate()


def test_cli_omega_option(tmp_path):
    from conftest import run_cli

    out = run_cli("train", "--cell", "lstm", "--omega", "1", "--max-steps", "5", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "'lstm'" in lines[0] and "irnn" in lines[0], out.stderr
    assert not (tmp_path / "mlflow.db").exists()


def _documented_hash(config) -> str:
    """``config_hash``'s documented formula, without the omega key."""
    from suite.core.clipping import parse_clip

    d = dataclasses.asdict(config)
    d["clip"] = str(parse_clip(config.clip))
    if d["backend"] == "tensorflow":
        del d["backend"]
    del d["omega"]
    blob = json.dumps(d, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_hash_without_omega_is_the_hash_from_before_omega():
    from suite.core.train import TrainConfig

    for cfg in (
        TrainConfig(task="adding", cell="simple_rnn", clip="clipnorm=1.0", backend="tensorflow"),
        TrainConfig(task="copy", cell="irnn", seed=3, backend="jax"),
    ):
        assert cfg.config_hash() == _documented_hash(cfg)
        on = dataclasses.replace(cfg, omega=2)
        assert on.config_hash() != cfg.config_hash()
        assert on.config_hash() == dataclasses.replace(cfg, omega=2.0).config_hash()
        assert on.config_hash(without=("seed",)) != cfg.config_hash(without=("seed",))


def test_omega_is_a_sweep_spec_train_key():
    from suite.study.spec import TRAIN_KEYS

    assert "omega" in TRAIN_KEYS


# ---------------------------------------------------------------- JAX (a fresh process)


def _jax_scenario() -> dict:
    """What the JAX tests check, measured in a JAX process."""
    from suite.core.backend import configure

    configure(backend="jax", device="cpu")
    import jax
    import jax.numpy as jnp

    from suite.core import omega as om
    from suite.core.models import build_model
    from suite.core.population import train_population
    from suite.core.train import TrainConfig, make_loss, train
    from tasks import get_task

    out = {}
    settings = dict(TINY, backend="jax")
    plain, zero = train(TrainConfig(**settings)), train(TrainConfig(**settings, omega=0.0))
    out["zero_equal"] = all(
        np.array_equal(a, b) for a, b in zip(_weights(plain.model), _weights(zero.model), strict=True)
    )  # fmt: skip
    out["zero_has_omega"] = "omega" in zero.history[-1].metrics
    reg = train(TrainConfig(**settings, omega=1.0))
    out["reg_moved"] = not np.allclose(_weights(plain.model)[1], _weights(reg.model)[1])
    out["reg_omega"] = [h.metrics["omega"] for h in reg.history]
    # the manual forward is the Keras model's on JAX too (per-step head, ReLU)
    task = get_task("copy", seq_len=5)
    model = build_model("irnn", task, hidden=4, seed=0)
    x, y = task.generate(3, np.random.default_rng(0))
    layout = om.omega_layout(model, task)
    tv = [jnp.asarray(v.value) for v in model.trainable_variables]
    pred, _ = om.forward(tv, layout, x, om.zero_perturbation(tv, layout, x))
    out["forward_diff"] = float(np.abs(np.asarray(pred) - np.asarray(model(x))).max())
    loss_fn = make_loss(task)
    delta = jax.grad(lambda e: loss_fn(y, om.forward(tv, layout, x, e)[0]))(
        om.zero_perturbation(tv, layout, x)
    )
    out["delta_finite"] = bool(np.all(np.isfinite(np.asarray(delta))))
    # a population with the regulariser: each member is the run it would be alone
    cfgs = [TrainConfig(**dict(settings, cell="irnn"), omega=0.5, seed=s) for s in range(2)]
    together = train_population(cfgs)
    alone = [train(c) for c in cfgs]
    out["population"] = [
        {"omega": [h.metrics["omega"] for h in t.history],
         "alone_omega": [h.metrics["omega"] for h in a.history],
         "loss": [h.metrics["train_loss"] for h in t.history],
         "alone_loss": [h.metrics["train_loss"] for h in a.history]}
        for t, a in zip(together, alone, strict=True)
    ]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def on_jax():
    pytest.importorskip("jax")
    from conftest import run_on_jax

    return run_on_jax(__file__)


@pytest.mark.jax
def test_alpha_zero_is_exactly_the_plain_run_jax(on_jax):
    assert on_jax["zero_equal"]
    assert not on_jax["zero_has_omega"]


@pytest.mark.jax
def test_alpha_positive_changes_the_weights_and_logs_omega_jax(on_jax):
    assert on_jax["reg_moved"]
    assert all(math.isfinite(v) and v >= 0 for v in on_jax["reg_omega"])
    assert on_jax["forward_diff"] <= 1e-5
    assert on_jax["delta_finite"]


@pytest.mark.jax
def test_population_members_with_omega_match_their_runs_alone(on_jax):
    for m in on_jax["population"]:
        assert m["omega"] == pytest.approx(m["alone_omega"], rel=1e-4)
        assert m["loss"] == pytest.approx(m["alone_loss"], rel=1e-4)
        assert all(v > 0 for v in m["omega"])


if __name__ == "__main__":
    print(json.dumps({"jax": _jax_scenario}[sys.argv[1]]()))
