"""The tasks: shapes, determinism, structure, measured baselines, oracle, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import TASK_NAMES, get_task


def _gen(name, T, n=50, seed=0, **opts):
    return get_task(name, seq_len=T, **opts).generate(n, np.random.default_rng(seed))


@pytest.mark.parametrize("name", TASK_NAMES)
@pytest.mark.parametrize("T", [10, 37])
def test_shapes_and_dtypes(name, T):
    task = get_task(name, seq_len=T)
    x, y = task.generate(7, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == (7, task.length, task.input_dim)
    if name == "adding":
        assert y.dtype == np.float32 and y.shape == (7,)
    elif name == "copy":
        assert y.dtype == np.int64 and y.shape == (7, T + 20)
    else:
        assert y.dtype == np.int64 and y.shape == (7,)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_determinism(name):
    x1, y1 = _gen(name, 12, seed=3)
    x2, y2 = _gen(name, 12, seed=3)
    x3, y3 = _gen(name, 12, seed=4)
    assert x1.tobytes() == x2.tobytes() and y1.tobytes() == y2.tobytes()
    assert x1.tobytes() != x3.tobytes() and y1.tobytes() != y3.tobytes()


@pytest.mark.parametrize("T", [2, 3, 11, 40])
def test_adding_structure(T):
    x, y = _gen("adding", T, n=500)
    values, markers = x[..., 0], x[..., 1]
    half = T // 2
    assert np.all(markers[:, :half].sum(1) == 1) and np.all(markers[:, half:].sum(1) == 1)
    assert set(np.unique(markers)) <= {0.0, 1.0}
    assert values.min() >= 0 and values.max() < 1
    np.testing.assert_allclose(y, (values * markers).sum(1), rtol=1e-6)
    if T >= 11:  # markers land all over each half, not at a fixed place
        assert len(set(markers[:, :half].argmax(1))) == half


@pytest.mark.parametrize("T", [1, 5, 30])
def test_copy_structure(T):
    x, y = _gen("copy", T, n=200)
    ids = x.argmax(-1)
    assert np.all(x.sum(-1) == 1)  # one-hot everywhere
    data = ids[:, :10]
    assert data.min() >= 1 and data.max() <= 8
    assert np.all(ids[:, 10 : T + 9] == 0)  # T - 1 blanks
    assert np.all(ids[:, T + 9] == 9)  # the delimiter
    assert np.all(ids[:, T + 10 :] == 0)  # 10 blanks while recalling
    assert np.all(y[:, : T + 10] == 0) and np.array_equal(y[:, T + 10 :], data)


@pytest.mark.parametrize("T", [2, 3, 25])
def test_delayed_recall_structure(T):
    x, y = _gen("delayed_recall", T, n=300)
    K = 8
    assert x.shape[-1] == K + 1
    assert np.all(x[:, -1, K] == 1) and np.all(x[:, :-1, K] == 0)  # query marker only at the end
    assert np.all(x[:, -1, :K] == 0)
    assert np.array_equal(x[:, 0, :K].argmax(-1), y) and np.all(x[:, 0].sum(-1) == 1)
    if T > 2:
        middle = x[:, 1:-1, :K]
        assert np.all(middle.sum(-1) == 1)  # distractors from the same K symbols
        assert len(np.unique(middle.argmax(-1))) == K
    xb, _ = _gen("delayed_recall", T, n=50, distractors=False)
    assert np.all(xb[:, 1:-1] == 0)


def _constant_predictor_loss(name, T, n=20_000):
    """Loss of the best input-independent predictor, measured from generated data."""
    task = get_task(name, seq_len=T)
    x, y = task.generate(n, np.random.default_rng(11))
    if name == "adding":
        pred = np.full(n, y.mean())
    else:
        C = task.num_classes
        if y.ndim == 1:
            freq = np.bincount(y, minlength=C) / len(y)
            pred = np.broadcast_to(np.log(freq + 1e-12), (n, C))
        else:  # per position
            freq = np.stack([np.bincount(y[:, t], minlength=C) / n for t in range(y.shape[1])])
            pred = np.broadcast_to(np.log(freq + 1e-12), (n, *freq.shape))
    return task, task.evaluate(y, pred)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_declared_baseline_matches_measured_constant_predictor(name):
    task, metrics = _constant_predictor_loss(name, 30)
    assert metrics["loss"] == pytest.approx(task.baseline_loss, rel=0.02)
    assert not task.solved(metrics)


def _oracle(name, x, task):
    if name == "adding":
        return (x[..., 0] * x[..., 1]).sum(1)
    if name == "copy":
        ids = x.argmax(-1)
        target = np.zeros_like(ids)
        target[:, task.recall_slice] = ids[:, :10]
        return 20.0 * np.eye(10)[target]
    if name == "temporal_order":
        return 20.0 * np.eye(4)[_temporal_order_labels(x, task)[0]]
    return 20.0 * np.eye(task.num_classes)[x[:, 0, : task.num_classes].argmax(-1)]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_oracle_is_solved(name):
    task = get_task(name, seq_len=23)
    x, y = task.generate(500, np.random.default_rng(5))
    m = task.evaluate(y, _oracle(name, x, task))
    assert task.solved(m)
    assert task.solved({f"val_{k}": v for k, v in m.items()})
    # a wrong oracle (shifted by one sample) is not
    assert not task.solved(task.evaluate(y, np.roll(_oracle(name, x, task), 1, axis=0)))


def test_copy_accuracy_counts_only_recall_steps():
    task = get_task("copy", seq_len=5)
    x, y = task.generate(100, np.random.default_rng(0))
    blanks_only = 20.0 * np.eye(10)[np.zeros_like(y)]  # right on 15 of 25 steps, wrong on recall
    assert task.evaluate(y, blanks_only)["accuracy"] == 0.0


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"'nope'.*adding, copy, delayed_recall"):
        get_task("nope")
    with pytest.raises(ValueError, match="seq_len"):
        get_task("adding", seq_len=1)
    with pytest.raises(ValueError, match="seq_len"):
        get_task("delayed_recall", seq_len=1)
    with pytest.raises(ValueError, match="seq_len"):
        get_task("copy", seq_len=0)
    with pytest.raises(TypeError, match="seq_len"):
        get_task("copy", seq_len=2.5)
    with pytest.raises(ValueError, match="colour"):
        get_task("adding", seq_len=5, colour=1)
    task = get_task("adding", seq_len=5)
    with pytest.raises(ValueError, match="n=0"):
        task.generate(0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        task.generate(5, 42)
    with pytest.raises(TypeError, match="Generator"):
        task.generate(5, np.random.RandomState(0))
    with pytest.raises(ValueError, match="num_symbols"):
        get_task("delayed_recall", seq_len=5, num_symbols=1)


# ----- copy options: num_recall (R) and alphabet (A) ----------------------------------------


def _copy_data_before_options(T, n, seed):
    """The copy data exactly as it was generated before num_recall/alphabet existed."""
    rng = np.random.default_rng(seed)
    L = T + 20
    data = rng.integers(1, 9, size=(n, 10))
    ids = np.zeros((n, L), dtype=np.int64)
    ids[:, :10] = data
    ids[:, T + 9] = 9
    y = np.zeros((n, L), dtype=np.int64)
    y[:, L - 10 :] = data
    return np.eye(10, dtype=np.float32)[ids], y


@pytest.mark.parametrize("T", [1, 7, 40])
def test_copy_defaults_give_the_same_data_as_before(T):
    ref_x, ref_y = _copy_data_before_options(T, 64, seed=3)
    for opts in ({}, {"num_recall": 10, "alphabet": 8}):
        x, y = _gen("copy", T, n=64, seed=3, **opts)
        assert x.tobytes() == ref_x.tobytes() and y.tobytes() == ref_y.tobytes()
    task = get_task("copy", seq_len=T)
    assert task.baseline_loss == 10 * np.log(8) / (T + 20)
    assert task.recall_slice == slice(T + 10, T + 20)


def test_copy_defaults_keep_config_hashes():
    from suite.core.train import TrainConfig
    from suite.study.spec import SweepSpec
    from tasks import canonical_options

    plain = TrainConfig(task="copy", seq_len=5, cell="gru")
    assert canonical_options("copy", {"num_recall": 10, "alphabet": 8}) == {}
    assert canonical_options("copy", {"num_recall": 3}) == {"num_recall": 3}
    # a spec that spells the defaults out builds the same configs as one that does not
    kw = dict(name="s", tasks=["copy"], seq_lens=[5], cells=["gru"], clips=["none"], seeds=[0])
    spelled = SweepSpec(**kw, overrides={"copy": {"options": {"num_recall": 10, "alphabet": 8}}})
    assert [c.config_hash() for c in spelled.grid()] == [plain.config_hash()]
    other = SweepSpec(**kw, overrides={"copy": {"options": {"num_recall": 3}}})
    assert other.grid()[0].task_options == {"num_recall": 3}
    assert other.grid()[0].config_hash() != plain.config_hash()


@pytest.mark.parametrize(("T", "R", "A"), [(1, 1, 2), (6, 3, 4), (12, 5, 26)])
def test_copy_options_shapes_structure_baseline(T, R, A):
    task = get_task("copy", seq_len=T, num_recall=R, alphabet=A)
    x, y = task.generate(300, np.random.default_rng(0))
    L = T + 2 * R
    assert task.length == L and task.input_dim == task.num_classes == A + 2
    assert x.shape == (300, L, A + 2) and y.shape == (300, L) and x.dtype == np.float32
    ids = x.argmax(-1)
    assert np.all(x.sum(-1) == 1)
    data = ids[:, :R]
    assert data.min() >= 1 and data.max() <= A
    assert len(np.unique(data)) == A  # every symbol of the alphabet shows up
    assert np.all(ids[:, R : T + R - 1] == 0)  # T - 1 blanks
    assert np.all(ids[:, T + R - 1] == A + 1)  # the delimiter
    assert np.all(ids[:, T + R :] == 0)
    assert task.recall_slice == slice(L - R, L)
    assert np.all(y[:, : L - R] == 0) and np.array_equal(y[:, L - R :], data)
    assert task.baseline_loss == pytest.approx(R * np.log(A) / L)
    assert task.describe()["options"] == {"num_recall": R, "alphabet": A}


def test_copy_options_baseline_matches_measured_constant_predictor():
    task = get_task("copy", seq_len=9, num_recall=4, alphabet=5)
    x, y = task.generate(20_000, np.random.default_rng(1))
    freq = np.stack([np.bincount(y[:, t], minlength=7) / len(y) for t in range(y.shape[1])])
    m = task.evaluate(y, np.broadcast_to(np.log(freq + 1e-12), (len(y), *freq.shape)))
    assert m["loss"] == pytest.approx(task.baseline_loss, rel=0.02)
    assert not task.solved(m)


def test_copy_options_solved_on_the_recall_slice_only():
    task = get_task("copy", seq_len=6, num_recall=3, alphabet=4)
    x, y = task.generate(200, np.random.default_rng(2))
    oracle = 20.0 * np.eye(6)[y]
    assert task.evaluate(y, oracle)["accuracy"] == 1.0 and task.solved(task.evaluate(y, oracle))
    wrong_recall = oracle.copy()
    wrong_recall[:, -1] = 20.0 * np.eye(6)[0]  # blank instead of the last symbol
    m = task.evaluate(y, wrong_recall)
    assert m["accuracy"] == pytest.approx(2 / 3) and not task.solved(m)
    blanks_only = 20.0 * np.eye(6)[np.zeros_like(y)]  # right on all but the 3 recall steps
    assert task.evaluate(y, blanks_only)["accuracy"] == 0.0


@pytest.mark.parametrize(
    ("opts", "exc", "match"),
    [
        ({"num_recall": 0}, ValueError, "num_recall=0"),
        ({"num_recall": -2}, ValueError, "num_recall=-2"),
        ({"alphabet": 1}, ValueError, "alphabet=1"),
        ({"alphabet": 2.5}, TypeError, "alphabet=2.5"),
        ({"num_recall": True}, TypeError, "num_recall=True"),
        ({"recall": 3}, ValueError, r"'recall'.*alphabet, num_recall|'recall'.*num_recall"),
    ],
)
def test_copy_bad_options(opts, exc, match):
    with pytest.raises(exc, match=match) as e:
        get_task("copy", seq_len=5, **opts)
    assert "\n" not in str(e.value)


# ----- temporal order (Hochreiter & Schmidhuber 1997, exp. 6a) -------------------------------


def _temporal_order_labels(x, task):
    """Read the two relevant steps (ids 0 = X, 1 = Y) and return (labels, t1, t2)."""
    ids = x.argmax(-1)
    relevant = ids < 2
    assert np.all(relevant.sum(1) == 2)
    t1 = relevant.argmax(1)
    t2 = x.shape[1] - 1 - relevant[:, ::-1].argmax(1)
    rows = np.arange(len(x))
    return 2 * ids[rows, t1] + ids[rows, t2], t1, t2


@pytest.mark.parametrize("T", [10, 11, 13, 19, 20, 57, 100])
@pytest.mark.parametrize("D", [1, 4, 7])
def test_temporal_order_structure(T, D):
    task = get_task("temporal_order", seq_len=T, num_distractors=D)
    x, y = task.generate(2000, np.random.default_rng(T))
    assert task.input_dim == D + 2 and task.num_classes == task.output_dim == 4
    assert x.shape == (2000, T, D + 2) and x.dtype == np.float32
    assert y.shape == (2000,) and y.dtype == np.int64
    assert np.all(x.sum(-1) == 1) and set(np.unique(x)) == {0.0, 1.0}  # one-hot everywhere
    labels, t1, t2 = _temporal_order_labels(x, task)  # exactly two X/Y steps per sequence
    assert np.array_equal(labels, y)
    lo1, hi1 = int(np.ceil(T / 10)), int(np.floor(2 * T / 10))
    lo2, hi2 = int(np.ceil(4 * T / 10)), int(np.floor(5 * T / 10))
    assert (task.first_range, task.second_range) == ((lo1, hi1), (lo2, hi2))
    assert lo1 <= hi1 < lo2 <= hi2 < T
    assert t1.min() >= lo1 and t1.max() <= hi1 and t2.min() >= lo2 and t2.max() <= hi2
    assert set(t1) == set(range(lo1, hi1 + 1)) and set(t2) == set(range(lo2, hi2 + 1))
    assert set(np.unique(y)) == {0, 1, 2, 3}
    ids = x.argmax(-1)
    assert set(np.unique(ids[ids >= 2])) == set(range(2, D + 2))  # every distractor shows up


def test_temporal_order_every_allowed_length_has_valid_ranges():
    for T in range(10, 1001):
        task = get_task("temporal_order", seq_len=T)
        (lo1, hi1), (lo2, hi2) = task.first_range, task.second_range
        assert 10 * lo1 >= T and 10 * hi1 <= 2 * T and 10 * lo2 >= 4 * T and 10 * hi2 <= 5 * T
        assert 10 * (lo1 - 1) < T and 10 * (hi1 + 1) > 2 * T  # the whole range, no narrower
        assert 10 * (lo2 - 1) < 4 * T and 10 * (hi2 + 1) > 5 * T
        assert lo1 <= hi1 < lo2 <= hi2 < T, T


def test_temporal_order_baseline_measured_from_class_frequencies():
    task = get_task("temporal_order", seq_len=50)
    _, y = task.generate(20_000, np.random.default_rng(7))
    freq = np.bincount(y, minlength=4) / len(y)
    measured = -float(np.sum(freq * np.log(freq)))  # cross-entropy of predicting freq
    assert measured == pytest.approx(task.baseline_loss, abs=0.01)
    assert task.baseline_loss == pytest.approx(np.log(4))
    m = task.evaluate(y, np.broadcast_to(np.log(freq), (len(y), 4)))
    assert m["loss"] == pytest.approx(measured, abs=1e-9) and not task.solved(m)


def test_temporal_order_seeded():
    task = get_task("temporal_order", seq_len=30)
    x1, y1 = task.generate(64, np.random.default_rng(9))
    x2, y2 = task.generate(64, np.random.default_rng(9))
    x3, y3 = task.generate(64, np.random.default_rng(10))
    assert x1.tobytes() == x2.tobytes() and y1.tobytes() == y2.tobytes()
    assert x1.tobytes() != x3.tobytes() and y1.tobytes() != y3.tobytes()


def test_temporal_order_perfect_and_constant_predictors():
    task = get_task("temporal_order", seq_len=40, num_distractors=3)
    x, y = task.generate(4000, np.random.default_rng(3))
    perfect = 20.0 * np.eye(4)[_temporal_order_labels(x, task)[0]]
    m = task.evaluate(y, perfect)
    assert m["accuracy"] == 1.0 and task.solved(m) and task.solved({"val_accuracy": 1.0})
    constant = task.evaluate(y, np.zeros((len(y), 4)))
    assert constant["loss"] == pytest.approx(np.log(4))
    always_xy = task.evaluate(y, 20.0 * np.eye(4)[np.ones_like(y)])
    assert always_xy["accuracy"] == pytest.approx(0.25, abs=0.03) and not task.solved(always_xy)
    one_step_only = 20.0 * np.eye(4)[2 * (_temporal_order_labels(x, task)[0] // 2)]  # ignores t2
    m = task.evaluate(y, one_step_only)
    assert m["accuracy"] == pytest.approx(0.5, abs=0.05) and not task.solved(m)
    assert task.describe()["options"] == {"num_distractors": 3}
    assert task.solved_when == "val accuracy >= 0.99"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"seq_len": 9}, ValueError, r"seq_len >= 10.*seq_len=9"),
        ({"seq_len": 0}, ValueError, "seq_len"),
        ({"seq_len": 20, "num_distractors": 0}, ValueError, "num_distractors=0"),
        ({"seq_len": 20, "num_distractors": 1.5}, TypeError, "num_distractors"),
        ({"seq_len": 20, "num_distractors": True}, TypeError, "num_distractors"),
        ({"seq_len": 20, "distractors": 3}, ValueError, "'distractors'.*num_distractors"),
    ],
)
def test_temporal_order_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match) as e:
        get_task("temporal_order", **kwargs)
    assert "\n" not in str(e.value)
