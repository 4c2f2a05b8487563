"""Training loop, clipping, diagnostics and the MLflow layout (tiny real runs: T ~ 10)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from suite.core.clipping import parse_clip
from suite.core.models import CELLS
from suite.core.train import TrainConfig, grad_decay_slope, train
from tasks import get_task

CLIPS = ("none", "clipnorm=1", "global_clipnorm=1", "clipvalue=0.5")
TINY = dict(seq_len=10, hidden=8, batch_size=16, max_steps=20, eval_every=10, val_size=64)

PARAMS = (
    "task",
    "seq_len",
    "cell",
    "clip",
    "hidden",
    "batch_size",
    "optimizer",
    "lr",
    "seed",
    "max_steps",
)
STEPPED = ("train_loss", "val_loss", "grad_norm", "clip_fraction", "grad_decay")
FINAL = ("solved", "val_loss_ratio")


def _weights(model):
    return [np.array(v) for v in model.trainable_variables]


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_and_clip_logs_the_layout(cell, sqlite_uri):
    import mlflow

    from suite.study.record import run_and_log

    client = mlflow.MlflowClient(sqlite_uri)
    task_for = {"simple_rnn": "adding", "irnn": "copy", "ortho_rnn": "copy",
                "lstm": "delayed_recall", "chrono_lstm": "delayed_recall", "gru": "copy",
                "relu_rnn": "adding", "leaky_rnn": "copy", "sigmoid_rnn": "delayed_recall",
                "transformer": "copy"}  # fmt: skip
    # every cell unclipped (its logged model reloaded); each clip kind on one cell too (the
    # cells share the clipping code; what each kind does is tested below and in
    # test_backends.py): the layout of a clipped run, not the clipping, is checked here
    index = list(CELLS).index(cell)
    clips = ("none", CLIPS[1 + index]) if index < len(CLIPS) - 1 else ("none",)
    for i, clip in enumerate(clips):
        cfg = TrainConfig(task=task_for[cell], cell=cell, clip=clip, seed=i, **TINY)
        run_id, result = run_and_log(cfg, sqlite_uri, "layout", log_model=(i == 0))
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{cfg.task}-T10-{cell}-{parse_clip(clip)}-h8-s{i}"
        for p in PARAMS:
            assert p in run.data.params, p
        assert run.data.params["clip"] == str(parse_clip(clip))
        assert run.data.params["cell"] == cell
        for m in STEPPED:
            hist = client.get_metric_history(run_id, m)
            assert [h.step for h in hist] == [10, 20], (m, hist)
        if cfg.task != "adding":
            assert len(client.get_metric_history(run_id, "val_accuracy")) == 2
        for m in FINAL:
            assert m in run.data.metrics
        assert run.data.metrics["solved"] in (0.0, 1.0)
        assert run.data.tags["rnnbench.status"] == result.status
        assert run.data.tags["rnnbench.config_hash"] == cfg.config_hash()
        for t in ("rnnbench.version", "rnnbench.git_commit", "rnnbench.device"):
            assert run.data.tags[t]
        ratio = run.data.metrics["val_loss_ratio"]
        assert math.isclose(
            ratio, result.val_metrics["val_loss"] / result.baseline_loss, rel_tol=1e-6
        )
        if clip == "none":
            assert all(h.value == 0.0 for h in client.get_metric_history(run_id, "clip_fraction"))
        if i == 0:  # the logged model reloads and predicts the same outputs
            model = mlflow.keras.load_model(f"runs:/{run_id}/model")
            task = get_task(cfg.task, seq_len=10)
            x, _ = task.generate(5, np.random.default_rng(123))
            np.testing.assert_allclose(
                model.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-6
            )
            # dynamic time dimension: a longer sequence runs too
            x2, _ = get_task(cfg.task, seq_len=13).generate(2, np.random.default_rng(1))
            assert model.predict(x2, verbose=0).shape[0] == 2


def test_grad_profile_artifact(sqlite_uri, tmp_path):
    import mlflow

    from suite.study.record import run_and_log

    cfg = TrainConfig(task="copy", cell="gru", **TINY)
    run_id, result = run_and_log(cfg, sqlite_uri, "profile", log_model=False)
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id,
        artifact_path="grad_profile.json",
        dst_path=str(tmp_path),
        tracking_uri=sqlite_uri,
    )
    prof = json.loads(open(path).read())
    assert prof["steps"] == [10, 20]
    length = get_task("copy", seq_len=10).length
    assert all(len(p) == length for p in prof["norms"])
    assert all(math.isfinite(v) and v >= 0 for p in prof["norms"] for v in p)
    # the recall loss reaches the data symbols (first 10 steps) with a non-zero gradient
    assert max(prof["norms"][-1][:10]) > 0
    for rec in result.history:
        assert len(rec.profile) == length


def test_grad_decay_slope_sign():
    d = np.arange(50)[::-1]  # distance of step t from the last step
    assert grad_decay_slope(10.0 ** (-0.02 * d)) == pytest.approx(-2.0)
    assert grad_decay_slope(np.ones(50)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("clip", ["global_clipnorm=0.001", "none"])
def test_clipping_is_real_and_bounds_the_update(clip):
    """SGD, lr 1, no momentum: one step moves the weights by exactly lr * clipped gradient."""
    from suite.core.models import build_model

    task = get_task("adding", seq_len=10)
    cfg = TrainConfig(
        task="adding", cell="simple_rnn", clip=clip, optimizer="sgd", lr=1.0,
        seq_len=10, hidden=8, batch_size=16, max_steps=1, eval_every=1, val_size=32,
    )  # fmt: skip
    model = build_model("simple_rnn", task, hidden=8, seed=0)
    before = _weights(model)
    result = train(cfg, model=model)
    delta = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(_weights(model), before, strict=True)))
    m = result.history[0].metrics
    if clip == "none":
        assert m["clip_fraction"] == 0.0
        assert delta == pytest.approx(m["grad_norm"], rel=1e-3)
    else:
        assert m["grad_norm"] > 1e-3  # pre-clip norm is logged, not the clipped one
        assert m["clip_fraction"] == 1.0
        assert delta <= 1e-3 * 1.0001
        assert delta == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("kind", ["clipnorm", "clipvalue"])
def test_per_variable_clipping_at_a_tau_between_the_variables(kind):
    """SGD, lr 1, one step, tau between the smallest and the largest per-variable statistic
    (L2 norm for clipnorm, max |g| for clipvalue): each variable moves by its own clipped
    gradient, so the variables below tau move by their raw gradient. Global clipping at the
    same tau would have scaled those too: this tells per-variable from global clipping."""
    import tensorflow as tf

    from suite.core.models import build_model
    from suite.core.train import _batches, make_loss

    task = get_task("adding", seq_len=10)
    model = build_model("simple_rnn", task, hidden=8, seed=0)
    x, y = next(_batches(task, 16, np.random.default_rng(0)))  # the batch train() draws first
    with tf.GradientTape() as tape:
        loss = make_loss(task)(y, tf.reshape(model(x, training=True), [-1]))
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    stat = [np.linalg.norm(g) if kind == "clipnorm" else np.abs(g).max() for g in grads]
    tau = float(np.sqrt(min(stat) * max(stat)))
    assert min(stat) < tau < max(stat)
    before = _weights(model)
    cfg = TrainConfig(
        task="adding", cell="simple_rnn", clip=f"{kind}={tau!r}", optimizer="sgd", lr=1.0,
        seq_len=10, hidden=8, batch_size=16, max_steps=1, eval_every=1, val_size=32,
    )  # fmt: skip
    result = train(cfg, model=model)
    for g, b, a in zip(grads, before, _weights(model), strict=True):
        if kind == "clipnorm":
            expected = g * min(1.0, tau / np.linalg.norm(g))
        else:
            expected = np.clip(g, -tau, tau)
        np.testing.assert_allclose(b - a, expected, rtol=2e-3, atol=1e-6)
    assert result.history[0].metrics["clip_fraction"] == 1.0


def test_clipnorm_and_clipvalue_fire():
    for clip in ("clipnorm=1e-4", "clipvalue=1e-6"):
        cfg = TrainConfig(task="delayed_recall", cell="lstm", clip=clip, **TINY)
        r = train(cfg)
        assert r.history[-1].metrics["clip_fraction"] == 1.0, clip
    huge = TrainConfig(task="delayed_recall", cell="lstm", clip="clipvalue=1e6", **TINY)
    assert train(huge).history[-1].metrics["clip_fraction"] == 0.0


def test_divergence_is_a_result_not_an_error(sqlite_uri, tmp_path):
    from conftest import run_cli

    out = run_cli(
        "train", "--task", "adding", "--seq-len", "10", "--cell", "simple_rnn", "--hidden", "8",
        "--optimizer", "sgd", "--lr", "1000", "--max-steps", "100", "--eval-every", "10",
        "--tracking-uri", sqlite_uri, "--experiment", "div", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "DIVERGED" in out.stdout
    runs = _runs(sqlite_uri, "div")
    assert len(runs) == 1
    assert runs[0].data.tags["rnnbench.status"] == "diverged"
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["solved"] == 0.0


def test_same_seed_same_numbers_on_cpu():
    cfg = TrainConfig(task="delayed_recall", cell="gru", clip="clipnorm=1", **TINY)
    a, b = train(cfg), train(cfg)
    assert [r.metrics for r in a.history] == [r.metrics for r in b.history]
    assert a.history[-1].profile == b.history[-1].profile
    c = train(
        TrainConfig(task="delayed_recall", cell="gru", clip="clipnorm=1", **{**TINY, "seed": 1})
    )
    assert c.history[-1].metrics["val_loss"] != a.history[-1].metrics["val_loss"]


def test_config_hash_is_stable_and_discriminating():
    a = TrainConfig(task="adding", clip="clipnorm=1.0")
    assert a.config_hash() == TrainConfig(task="adding", clip="clipnorm=1").config_hash()
    assert a.config_hash() != TrainConfig(task="adding", clip="clipnorm=2").config_hash()
    assert a.config_hash() != TrainConfig(task="adding", clip="clipnorm=1", seed=1).config_hash()


def test_run_against_a_real_mlflow_server(mlflow_server, tmp_path):
    import mlflow
    from conftest import run_cli

    out = run_cli(
        "train", "--task", "delayed_recall", "--seq-len", "6", "--cell", "lstm", "--hidden", "8",
        "--max-steps", "20", "--eval-every", "10", "--tracking-uri", mlflow_server,
        "--experiment", "served", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    runs = _runs(mlflow_server, "served")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "delayed_recall-T6-lstm-none-h8-s0"
    assert run.data.tags["rnnbench.status"] in ("solved", "unsolved")
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    assert model.output_shape == (None, 8)
    assert not (tmp_path / "mlflow.db").exists()  # nothing written to the default store


def _runs(uri, experiment):
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.mark.parametrize("cell", ["lstm", "chrono_lstm", "gru"])
def test_gated_cells_stay_cudnn_eligible(cell):
    """TensorFlow runs the fused cuDNN kernel only for these layer settings."""
    from suite.core.models import CUDNN_REQUIREMENTS, build_model

    model = build_model(cell, get_task("copy", seq_len=5), hidden=8, seed=0)
    cfg = model.get_layer(cell).get_config()
    assert cfg["activation"] == "tanh" and cfg["recurrent_activation"] == "sigmoid"
    assert cfg["recurrent_dropout"] == 0 and cfg["dropout"] == 0
    assert cfg["unroll"] is False and cfg["use_bias"] is True
    assert all(cfg[k] == v for k, v in CUDNN_REQUIREMENTS.items())
    if cell == "gru":
        assert cfg["reset_after"] is True


def test_irnn_is_relu_with_identity_recurrence():
    from suite.core.models import build_model

    model = build_model("irnn", get_task("adding", seq_len=5), hidden=6, seed=0)
    layer = model.get_layer("irnn")
    assert layer.get_config()["activation"] == "relu"
    kernel, recurrent, bias = (np.array(w) for w in layer.get_weights())
    np.testing.assert_array_equal(recurrent, np.eye(6))
    np.testing.assert_array_equal(bias, np.zeros(6))
    tanh = build_model("simple_rnn", get_task("adding", seq_len=5), hidden=6, seed=0).get_layer(
        "simple_rnn"
    )
    assert tanh.get_config()["activation"] == "tanh"
    r = np.array(tanh.get_weights()[1])
    np.testing.assert_allclose(r @ r.T, np.eye(6), atol=1e-5)  # Keras default: orthogonal
