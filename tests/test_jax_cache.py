"""JAX's persistent compilation cache: a second process training the same config loads the
compiled steps instead of compiling them (asserted from the cache's own counters, logged on
each run, and from the folder it fills; never from a timing)."""

from __future__ import annotations

import pytest
from conftest import run_cli

pytest.importorskip("jax")
pytestmark = pytest.mark.jax


def test_a_second_run_of_one_config_reuses_the_compiled_step(tmp_path):
    import mlflow

    cache = tmp_path / "jax-cache"
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    args = ("train", "--backend", "jax", "--task", "adding", "-T", "8", "--cell", "gru",
            "--hidden", "4", "--max-steps", "10", "--eval-every", "5", "--tracking-uri", uri)  # fmt: skip
    env = {"RNNBENCH_JAX_CACHE": str(cache)}
    first = run_cli(*args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "the first run wrote nothing to the cache"
    second = run_cli(*args, "--seed", "1", cwd=tmp_path, env=env)  # another seed, same shapes
    assert second.returncode == 0, second.stderr[-2000:]
    assert sorted(p.name for p in cache.iterdir()) == entries  # nothing new compiled

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnbench")
    runs = sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)
    m1, m2 = (r.data.metrics for r in runs)
    assert m1["jax_cache_misses"] > 0 and m1["jax_cache_hits"] == 0
    assert m2["jax_cache_misses"] == 0 and m2["jax_cache_hits"] >= m1["jax_cache_misses"]
    # JAX's own estimate (compile time recorded minus retrieval time): below zero for a step
    # this tiny, so only its presence is asserted
    assert "jax_compile_seconds_saved" in m2 and m1["jax_compile_seconds_saved"] == 0


def test_the_cache_can_be_turned_off(tmp_path):
    out = run_cli("train", "--backend", "jax", "--task", "adding", "-T", "6", "--cell",
                  "simple_rnn", "--hidden", "4", "--max-steps", "5", "--eval-every", "5",
                  "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path,
                  env={"RNNBENCH_JAX_CACHE": "off", "XDG_CACHE_HOME": str(tmp_path / "xdg")})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (tmp_path / "xdg" / "rnnbench" / "jax").exists()
