"""The ``normalize=TAU`` clip kind: every step's global gradient rescaled to norm exactly TAU.

The JAX side runs this file as a script in a fresh JAX process (``python
tests/test_normalize.py jax``).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from suite.core.clipping import VALID_FORMS, parse_clip

TAUS = (0.05, 50.0)  # below and above the first step's raw gradient norm (checked)


def test_parse_normalize():
    spec = parse_clip("normalize=2.0")
    assert (spec.kind, spec.tau, str(spec)) == ("normalize", 2.0, "normalize=2")
    assert spec.optimizer_kwargs() == {}  # not a Keras optimizer argument
    assert "normalize=TAU" in VALID_FORMS
    for bad in ("normalize", "normalize=0", "normalize=-1", "normalize=abc"):
        with pytest.raises(ValueError, match="normalize"):
            parse_clip(bad)


def test_normalize_helper_keeps_a_zero_gradient_zero():
    from keras import ops

    from suite.core.steps import clip_fired, global_norm, normalize_grads, treat_grads

    zero = [np.zeros((3, 2), np.float32), np.zeros(4, np.float32)]
    gnorm = global_norm(ops, zero)
    out = normalize_grads(ops, zero, gnorm, 1.5)
    assert all(np.array_equal(np.asarray(o), z) for o, z in zip(out, zero, strict=True))
    assert not bool(clip_fired(ops, "normalize", 1.5, zero, gnorm))  # nothing changed
    grads = [np.full((3, 2), 0.1, np.float32), np.arange(4, dtype=np.float32)]
    gnorm = global_norm(ops, grads)
    out = treat_grads(ops, "normalize", 1.5, grads, gnorm)
    assert float(global_norm(ops, out)) == pytest.approx(1.5, rel=1e-6)
    assert bool(clip_fired(ops, "normalize", 1.5, grads, gnorm))
    assert not bool(clip_fired(ops, "normalize", float(gnorm), grads, gnorm))  # already TAU
    assert treat_grads(ops, "global_clipnorm", 1.5, grads, gnorm) == grads  # Keras clips those


def _one_sgd_step(tau: float, backend: str) -> dict:
    """SGD (lr 1, no momentum), one step of normalize=TAU: the global norm of the update."""
    from suite.core.models import build_model
    from suite.core.train import TrainConfig, train
    from tasks import get_task

    model = build_model("simple_rnn", get_task("adding", seq_len=10), hidden=8, seed=0)
    before = [np.array(v, dtype=np.float64) for v in model.trainable_variables]
    cfg = TrainConfig(
        task="adding", cell="simple_rnn", clip=f"normalize={tau!r}", optimizer="sgd", lr=1.0,
        seq_len=10, hidden=8, batch_size=16, max_steps=1, eval_every=1, val_size=32,
        backend=backend,
    )  # fmt: skip
    r = train(cfg, model=model)
    after = [np.array(v, dtype=np.float64) for v in model.trainable_variables]
    delta = float(np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before, strict=True))))
    m = r.history[0].metrics
    return {"delta": delta, "grad_norm": m["grad_norm"], "clip_fraction": m["clip_fraction"]}


def _check_update(results: dict) -> None:
    norms = [results[str(tau)]["grad_norm"] for tau in TAUS]
    assert TAUS[0] < min(norms) and max(norms) < TAUS[1]  # one rescales down, one up
    for tau in TAUS:
        r = results[str(tau)]
        assert r["delta"] == pytest.approx(tau * 1.0, rel=1e-5)  # |update| = TAU x lr
        assert r["clip_fraction"] == 1.0
        assert r["grad_norm"] != pytest.approx(tau)  # the pre-treatment norm is logged


def test_normalize_update_has_norm_tau_times_lr_tensorflow():
    _check_update({str(tau): _one_sgd_step(tau, "tensorflow") for tau in TAUS})


def _jax_scenario() -> dict:
    from suite.core.backend import configure

    configure(backend="jax", device="cpu")
    from suite.core.population import train_population
    from suite.core.train import TrainConfig

    out = {str(tau): _one_sgd_step(tau, "jax") for tau in TAUS}
    cfgs = [TrainConfig(task="adding", cell="irnn", clip="normalize=1", seq_len=10, hidden=8,
                        batch_size=16, max_steps=10, eval_every=5, val_size=32, seed=s,
                        backend="jax") for s in range(2)]  # fmt: skip
    out["population_clip_fraction"] = [
        h.metrics["clip_fraction"] for r in train_population(cfgs) for h in r.history
    ]
    return out


@pytest.mark.jax
def test_normalize_update_has_norm_tau_times_lr_jax():
    pytest.importorskip("jax")
    from conftest import run_on_jax

    results = run_on_jax(__file__)
    _check_update(results)
    assert results["population_clip_fraction"] == [1.0] * 4  # populations normalize too


if __name__ == "__main__":
    print(json.dumps({"jax": _jax_scenario}[sys.argv[1]]()))
