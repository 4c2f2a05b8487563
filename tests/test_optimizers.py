"""The optimizer axis: recipes, spec grids, hashes and run names (issue [optimizers])."""

from __future__ import annotations

import pytest
from conftest import run_cli

from suite.core.optim import OptimizerRecipe, parse_recipe
from suite.core.train import TrainConfig
from suite.study.spec import SpecError, load_spec
from tracking.layout import optimizer_label, parse_run_name, run_name

# The spec hashes and first config hash of the presets at commit 6929e25, before the
# optimizer axis existed: a spec without `optimizers` must plan exactly the same grid (the
# names since gained -h{hidden} for a size other than the default 128, issue 24).
BEFORE = {
    "quick": ("5b2db0c26a847b57", 48, "4c307e444f28da33", "adding-T10-simple_rnn-none-h64-s0"),
    "standard": ("ad322fdd4459eb6e", 432, "94cf19542225b0a5", "adding-T50-simple_rnn-none-h64-s0"),
    "cells": (
        "5ca36054a2204446", 126, "3dfc437814c05c4d", "adding-T25-simple_rnn-global_clipnorm=1-h64-s0"
    ),
}  # fmt: skip


@pytest.mark.parametrize("preset", sorted(BEFORE))
def test_a_spec_without_optimizers_plans_the_grid_it_planned_before(preset):
    spec = load_spec(preset)
    grid = spec.grid()
    spec_hash, n, first_hash, first_name = BEFORE[preset]
    assert (spec.spec_hash(), len(grid), grid[0].config_hash(), grid[0].run_name) == (
        spec_hash, n, first_hash, first_name
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("adam", OptimizerRecipe("adam")),
        ("sgd", OptimizerRecipe("sgd")),
        ("sgd:momentum=0.9", OptimizerRecipe("sgd", None, 0.9)),
        (" SGD : lr=0.01 , momentum=0.9 ", OptimizerRecipe("sgd", 0.01, 0.9)),
        ("rmsprop:lr=5e-4", OptimizerRecipe("rmsprop", 5e-4)),
    ],
)
def test_recipes_parse(text, expected):
    assert parse_recipe(text) == expected
    assert parse_recipe(str(expected)) == expected  # str() reads back


@pytest.mark.parametrize(
    ("text", "named"),
    [("adagrad", "adagrad"), ("sgd:lr", "lr"), ("sgd:lr=x", "x"), ("sgd:beta=1", "beta"),
     ("adam:momentum=0.9", "momentum"), ("sgd:lr=1,lr=2", "twice"), ("sgd:lr=inf", "finite")],
)  # fmt: skip
def test_bad_recipes_name_the_problem(text, named):
    with pytest.raises(ValueError, match=named):
        parse_recipe(text)


def test_keys_a_recipe_leaves_out_take_the_base_settings():
    base = {"lr": 0.003, "momentum": 0.5}
    assert parse_recipe("sgd").settings(base) == {"optimizer": "sgd", "lr": 0.003, "momentum": 0.5}
    assert parse_recipe("sgd:lr=0.1").settings(base)["lr"] == 0.1
    assert parse_recipe("adam").settings(base) == {
        "optimizer": "adam",
        "lr": 0.003,
        "momentum": 0.0,
    }


def test_sgd_and_adam_runs_of_one_config_differ_in_hash_and_name():
    adam = TrainConfig(task="adding", seq_len=20, cell="irnn", clip="global_clipnorm=1")
    sgd = TrainConfig(
        task="adding", seq_len=20, cell="irnn", clip="global_clipnorm=1", optimizer="sgd",
        lr=0.01, momentum=0.9,
    )  # fmt: skip
    assert adam.config_hash() != sgd.config_hash()
    assert adam.run_name == "adding-T20-irnn-global_clipnorm=1-s0"  # unchanged contract
    assert sgd.run_name == "adding-T20-irnn-global_clipnorm=1-sgd(lr=0.01,momentum=0.9)-s0"
    assert parse_run_name(sgd.run_name) == {
        "task": "adding", "seq_len": "20", "cell": "irnn", "clip": "global_clipnorm=1",
        "optimizer": "sgd(lr=0.01,momentum=0.9)", "seed": "0",
    }  # fmt: skip
    assert parse_run_name(adam.run_name)["optimizer"] == "adam"


@pytest.mark.parametrize(
    "clip", ["none", "normalize=1", "global_clipnorm=1+omega=2", "clipvalue=0.1"]
)
@pytest.mark.parametrize("opt", ["adam", "sgd", "adam(lr=0.01)", "rmsprop(lr=0.0005)"])
def test_run_names_with_every_treatment_and_optimizer_read_back(clip, opt):
    name = run_name("temporal_order", 50, "simple_rnn", clip, 3, opt)
    got = parse_run_name(name)
    assert (got["task"], got["clip"], got["optimizer"], got["seed"]) == (
        "temporal_order", clip, opt, "3"
    )  # fmt: skip


def test_optimizer_labels():
    assert optimizer_label("adam", 1e-3, 0.0) == "adam"
    assert optimizer_label("adam", 0.01) == "adam(lr=0.01)"
    assert optimizer_label("sgd", 0.01, 0) == "sgd(lr=0.01)"


def _spec(tmp_path, body: str):
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "opt"\ntasks = ["adding"]\nseq_lens = [10]\ncells = ["simple_rnn", "lstm"]\n'
        'clips = ["none", "global_clipnorm=1+omega=2"]\nseeds = [0, 1]\n' + body
    )
    return str(path)


def test_the_optimizers_axis_multiplies_the_grid(tmp_path):
    spec = load_spec(_spec(tmp_path, 'optimizers = ["adam", "sgd:lr=0.01,momentum=0.9"]\n'))
    grid = spec.grid()
    # simple_rnn: 2 treatments, lstm: only "none" (omega applies to simple_rnn/irnn) -> 3 x 2 x 2
    assert len(grid) == 12
    assert {(c.optimizer, c.lr, c.momentum) for c in grid} == {
        ("adam", 1e-3, 0.0), ("sgd", 0.01, 0.9)
    }  # fmt: skip
    assert len({c.config_hash() for c in grid}) == 12
    assert len({c.run_name for c in grid}) == 12
    assert not any(c.cell == "lstm" and c.omega for c in grid)
    assert {c.omega for c in grid if c.cell == "simple_rnn"} == {0.0, 2.0}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('optimizers = ["adam", "adagrad"]\n', "adagrad"),
        ("optimizers = []\n", "optimizers"),
        ('optimizers = "sgd"\n', "optimizers"),
        ('optimizers = ["sgd"]\n[train]\noptimizer = "adam"\n', "optimizer"),
    ],
)
def test_bad_optimizers_are_spec_errors(tmp_path, body, named):
    with pytest.raises(SpecError, match=named):
        load_spec(_spec(tmp_path, body))


def test_dry_run_lists_each_optimizer(tmp_path):
    path = _spec(tmp_path, 'optimizers = ["adam", "sgd:momentum=0.9"]\n')
    out = run_cli("sweep", path, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "adding-T10-lstm-none-s0" in out.stdout
    assert "adding-T10-lstm-none-sgd(lr=0.001,momentum=0.9)-s0" in out.stdout
    assert not (tmp_path / "mlflow.db").exists()


def test_train_takes_a_recipe_and_logs_it(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    # on JAX: the recipe is parsed before any backend, and JAX starts in half TensorFlow's time
    out = run_cli(
        "train", "--task", "adding", "-T", "8", "--cell", "simple_rnn", "--hidden", "4",
        "--optimizer", "sgd:lr=0.05,momentum=0.9", "--max-steps", "10", "--eval-every", "10",
        "--tracking-uri", uri, "--backend", "jax", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("adding-T8-simple_rnn-none-sgd(lr=0.05,momentum=0.9)-h4-s0: ")
    (run,) = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("rnnbench").experiment_id]
    )
    p = run.data.params
    assert (p["optimizer"], float(p["lr"]), float(p["momentum"])) == ("sgd", 0.05, 0.9)
