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
