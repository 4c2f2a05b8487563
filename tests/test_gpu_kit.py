"""The GPU kit's sizing tool (tools/gpu/size_preset.py) on a real rate sweep: populations
trained by ``rnnbench sweep`` into a sqlite store, read back, and a spec sized from them.
Its rate spec (tools/gpu/rates.toml) holds every shape of the ``gpu`` preset."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

pytest.importorskip("jax")
pytestmark = pytest.mark.jax

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "tools" / "gpu"


def _size_preset():
    spec = importlib.util.spec_from_file_location("size_preset", KIT / "size_preset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rate_store(tmp_path_factory):
    """Two shapes (adding T=10 and T=20, GRU), 2 seeds as one population each, 40 steps."""
    tmp = tmp_path_factory.mktemp("rates")
    spec = tmp / "rates.toml"
    spec.write_text(
        'name = "rates"\ntasks = ["adding"]\nseq_lens = [10, 20]\ncells = ["gru"]\n'
        'clips = ["global_clipnorm=1"]\nseeds = [0, 1]\n'
        "[train]\nhidden = 8\nbatch_size = 16\nmax_steps = 40\neval_every = 10\n"
    )
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    out = run_cli("sweep", spec, "--backend", "jax", "--population", "2", "--workers", "1",
                  "--tracking-uri", uri, cwd=tmp)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return uri, tmp


def test_shape_costs_read_each_population_shape(rate_store):
    uri, _ = rate_store
    costs, startup = _size_preset().shape_costs(uri)
    assert set(costs) == {("gru", "adding", 10), ("gru", "adding", 20)}
    for c in costs.values():
        assert c["members"] == 2
        assert 0 < c["step"] < 1 and c["eval"] >= 0 and c["fixed"] >= 0
    assert startup >= 0


def test_a_spec_is_sized_from_measured_and_scaled_shapes(rate_store, tmp_path):
    uri, _ = rate_store
    sp = _size_preset()
    costs, _ = sp.shape_costs(uri)
    spec = tmp_path / "target.toml"  # T = 40 was not measured: scaled from T = 20
    spec.write_text(
        'name = "target"\ntasks = ["adding"]\nseq_lens = [10, 40]\ncells = ["gru"]\n'
        'clips = ["none", "global_clipnorm=1"]\nseeds = [0, 1, 2]\n'
        "[train]\nhidden = 8\nbatch_size = 16\nmax_steps = 400\neval_every = 100\n"
    )
    one, rows = sp.estimate(str(spec), costs, 0.0, workers=1)
    two, _ = sp.estimate(str(spec), costs, 0.0, workers=2)
    assert len(rows) == 4  # 2 T x 2 clips, 3 seeds each as one population
    assert {how for _, _, how in rows} == {"measured", "scaled from T=20"}
    c10, c20 = costs[("gru", "adding", 10)], costs[("gru", "adding", 20)]
    t10 = c10["fixed"] + 400 * c10["step"] + 4 * c10["eval"]
    t40 = c20["fixed"] + 400 * c20["step"] * 2 + 4 * c20["eval"]
    assert one == pytest.approx(2 * t10 + 2 * t40)  # one worker: the sum
    assert max(t10, t40) <= two < one  # two: no faster than the longest job, faster than one


def test_the_cli_prints_rates_and_the_wall_time_and_refuses_an_empty_store(rate_store, tmp_path):
    uri, _ = rate_store
    cmd = [sys.executable, str(KIT / "size_preset.py"), "--store", uri, "--workers", "8", "gpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    # the gpu preset has cells and tasks this store never trained: named, not guessed
    assert out.returncode != 0 and "no measured simple_rnn on copy" in out.stderr + out.stdout
    assert "gru         adding" in out.stdout and "measured: 2 shapes" in out.stdout
    empty = f"sqlite:///{tmp_path / 'none.db'}"
    out = subprocess.run(cmd[:3] + [empty, "gpu"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and "no store at" in out.stderr
    assert not (tmp_path / "none.db").exists()  # read only: nothing created


def test_the_rate_spec_holds_every_shape_of_the_gpu_preset():
    from suite.study.spec import load_spec

    def shapes(spec):
        return {(c.cell, c.task, c.seq_len, c.hidden, c.batch_size, c.eval_every)
                for c in load_spec(spec).grid()}  # fmt: skip

    assert shapes("gpu") <= shapes(str(KIT / "rates.toml"))


@pytest.mark.parametrize(
    "steps, message",
    [
        ("train:10 bogus:5", "unknown step 'bogus' in RNNBENCH_KIT_STEPS='train:10 bogus:5' "
                             "(steps: export perf rates report sweep train, each NAME:SECONDS)"),
        ("sweep", "'sweep' in RNNBENCH_KIT_STEPS='sweep' needs a cap in seconds, e.g. sweep:120"),
    ],
)  # fmt: skip
def test_the_kit_refuses_a_bad_step_list_before_it_installs_anything(tmp_path, steps, message):
    # the known steps are the kit's step_NAME functions: the check and the dispatch share them
    out, work = tmp_path / "out", tmp_path / "work"
    env = {"PATH": "/usr/bin:/bin", "OUT": str(out), "RNNBENCH_KIT_WORK": str(work),
           "RNNBENCH_KIT_STEPS": steps}  # fmt: skip
    r = subprocess.run(["bash", str(KIT / "run_gpu.sh")], env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"error: {message}" in r.stdout
    assert not any(work.iterdir())  # no wheel installed, no store made
    assert [p.name for p in out.iterdir()] == ["log.txt"]
