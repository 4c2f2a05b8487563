"""Populations (JAX): members are the runs they would be alone, independent, tracked alike.

Each scenario runs in a fresh JAX process (``tests/backend_probe.py``). Needs the jax extra
(``tox -e jax``); skipped without it.
"""

from __future__ import annotations

import pytest
from conftest import run_cli
from test_backends import probe

pytest.importorskip("jax")
pytestmark = pytest.mark.jax


@pytest.fixture(scope="module")
def pop():
    return probe("population", "jax")


@pytest.mark.parametrize("scenario", ["solve", "diverge"])
def test_members_match_the_same_runs_trained_alone(pop, scenario):
    together, alone = pop[scenario]["population"], pop[scenario]["alone"]
    for t, a in zip(together, alone, strict=True):
        assert t["status"] == a["status"]
        assert t["steps"] == a["steps"] and t["steps_to_solve"] == a["steps_to_solve"]
        assert t["evals"] == a["evals"]  # a member is evaluated until it ends, no longer
        assert t["first_loss"] == pytest.approx(a["first_loss"], rel=1e-6)
        assert t["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)


def test_members_end_independently(pop):
    solve_steps = {m["steps"] for m in pop["solve"]["population"]}
    assert len(solve_steps) > 1  # some solved at an earlier evaluation and were frozen
    statuses = [m["status"] for m in pop["diverge"]["population"]]
    assert "diverged" in statuses and "diverged" != statuses[0]  # NaN in some, not all
    assert any(
        m["status"] != "diverged" and m["steps"] == 100 for m in pop["diverge"]["population"]
    )


def test_a_frozen_member_does_not_move(pop):
    assert pop["mask"]["live_moved"]
    assert not pop["mask"]["frozen_moved"]
    assert pop["mask"]["frozen_window_steps"] == 0.0


def test_sweep_trains_populations_tracks_members_and_resumes_per_member(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "pop"\ntasks = ["adding"]\nseq_lens = [10]\ncells = ["gru"]\n'
        'clips = ["none"]\nseeds = [0, 1, 2]\n[train]\nhidden = 8\nmax_steps = 20\neval_every = 10\n'
    )
    args = ("--backend", "jax", "--population", "2", "--workers", "1", "--tracking-uri", uri)
    dry = run_cli("sweep", spec, "--dry-run", *args, cwd=tmp_path)
    assert "3 to run as 2 jobs (1 populations of up to 2)" in dry.stdout, dry.stdout
    out = run_cli("sweep", spec, *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnbench")
    children = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("mlflow.parentRunId")
    ]
    assert len(children) == 3
    assert sorted(r.data.tags.get("rnnbench.population", "alone") for r in children) == [
        "2",
        "2",
        "alone",
    ]
    for r in children:  # the same layout as a run trained alone
        assert r.info.status == "FINISHED"
        assert {"solved", "val_loss_ratio", "steps", "train_seconds"} <= set(r.data.metrics)
        assert r.data.params["backend"] == "jax"
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"grad_profile.json"} <= arts
    # a member lost (as if killed before it finished): only it runs again
    lost = next(r for r in children if r.info.run_name.endswith("-s1"))
    client.delete_run(lost.info.run_id)
    dry = run_cli("sweep", spec, "--dry-run", *args, cwd=tmp_path)
    assert "2 finished (skipped on resume); 1 to run" in dry.stdout, dry.stdout
    out = run_cli("sweep", spec, *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    again = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("mlflow.parentRunId")
    ]
    assert sorted(r.info.run_name for r in again) == sorted(r.info.run_name for r in children)


def test_population_needs_jax_and_a_valid_size(tmp_path):
    for value, needle in (("3", "JAX backend only"), ("zero", "auto, off or a number")):
        out = run_cli(
            "sweep", "quick", "--population", value, "--backend", "tensorflow", cwd=tmp_path
        )
        assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []
