"""Real learning (minutes): run with `tox -e slow`."""

from __future__ import annotations

import pytest

from suite.core.train import TrainConfig, train

pytestmark = pytest.mark.slow


def test_irnn_solves_adding_50_where_tanh_rnn_does_not():
    irnn = train(
        TrainConfig(
            task="adding", seq_len=50, cell="irnn", clip="global_clipnorm=1", max_steps=3000
        )
    )
    assert irnn.status == "solved", irnn.summary()
    tanh = train(
        TrainConfig(
            task="adding", seq_len=50, cell="simple_rnn", clip="global_clipnorm=1", max_steps=3000
        )
    )
    assert tanh.status != "solved", tanh.summary()


def test_under_sgd_clipping_keeps_the_irnn_from_diverging():
    """The `clipping` study's SGD contrast on one seed: plain SGD with momentum blows the IRNN
    up at adding@50, global_clipnorm=1 keeps it finite and learning (claim 9)."""
    sgd = dict(task="adding", seq_len=50, cell="irnn", hidden=64, optimizer="sgd", lr=0.01,
               momentum=0.9, max_steps=600, eval_every=200, backend="tensorflow")  # fmt: skip
    plain = train(TrainConfig(clip="none", **sgd))
    assert plain.status == "diverged", plain.summary()
    clipped = train(TrainConfig(clip="global_clipnorm=1", **sgd))
    assert clipped.status != "diverged", clipped.summary()
    assert clipped.val_loss_ratio < 1.0, clipped.summary()  # below the trivial baseline
