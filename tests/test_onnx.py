"""ONNX export with native recurrent ops, onnxruntime checks, registry alias, TF-free inference."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from suite.core.models import CELLS, LEAKY_SLOPE, build_model
from suite.deploy.export import Candidate, winners

TASK_FOR = {
    "simple_rnn": "adding",
    "irnn": "delayed_recall",
    "ortho_rnn": "copy",
    "lstm": "copy",
    "chrono_lstm": "adding",
    "gru": "delayed_recall",
    "relu_rnn": "adding",
    "leaky_rnn": "copy",
    "sigmoid_rnn": "delayed_recall",
}
# the op that runs each cell's recurrence (ortho_rnn's modReLU has no native op: a Scan)
RECURRENT_OP = {"simple_rnn": "RNN", "irnn": "RNN", "ortho_rnn": "Scan", "lstm": "LSTM",
                "chrono_lstm": "LSTM", "gru": "GRU", "relu_rnn": "RNN", "leaky_rnn": "RNN",
                "sigmoid_rnn": "RNN"}  # fmt: skip
# the native RNN op's activation of each SimpleRNN cell
RNN_ACTIVATION = {"simple_rnn": "Tanh", "irnn": "Relu", "relu_rnn": "Relu",
                  "leaky_rnn": "LeakyRelu", "sigmoid_rnn": "Sigmoid"}  # fmt: skip


def _rnn_activation(proto) -> tuple[list[str], list[float]]:
    """The ``activations`` and ``activation_alpha`` of the graph's RNN node."""
    node = next(n for n in proto.graph.node if n.op_type == "RNN")
    attrs = {a.name: a for a in node.attribute}
    alpha = list(attrs["activation_alpha"].floats) if "activation_alpha" in attrs else []
    return [s.decode() for s in attrs["activations"].strings], alpha


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One tiny trained run per cell in a real sqlite store."""
    from suite.core.train import TrainConfig
    from suite.study.record import run_and_log

    root = tmp_path_factory.mktemp("onnx")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    runs = {}
    for cell in CELLS:
        cfg = TrainConfig(
            task=TASK_FOR[cell], seq_len=8, cell=cell, hidden=8, batch_size=16,
            max_steps=10, eval_every=5, val_size=32, profile_size=8,
        )  # fmt: skip
        run_id, _ = run_and_log(cfg, uri, "onnx")
        runs[cell] = run_id
    return root, uri, runs


@pytest.mark.parametrize("cell", CELLS)
def test_export_native_ops_parity_and_registry(store, cell):
    import onnx

    from suite.deploy.export import candidate_for_run, export_one

    root, uri, runs = store
    result = export_one(candidate_for_run(uri, runs[cell]), uri, "onnx", root / "out")
    proto = onnx.load(str(result["path"]))
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    op = RECURRENT_OP[cell]
    assert op in ops and "Loop" not in ops
    assert ("Scan" in ops) == (cell == "ortho_rnn")
    if cell in RNN_ACTIVATION:
        acts, alpha = _rnn_activation(proto)
        assert acts == [RNN_ACTIVATION[cell]]
        assert alpha == ([pytest.approx(LEAKY_SLOPE)] if cell == "leaky_rnn" else [])
    if cell == "gru":
        node = next(n for n in proto.graph.node if n.op_type == "GRU")
        assert [a.i for a in node.attribute if a.name == "linear_before_reset"] == [1]
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["task"] == TASK_FOR[cell] and meta["seq_len"] == "8" and meta["cell"] == cell
    assert meta["run_id"] == runs[cell] and meta["rnnbench_version"] and meta["clip"] == "none"
    p = result["parity"]
    assert {(c["batch"], c["seq_len"]) for c in p["cases"]} == {(1, 8), (64, 8), (1, 5), (64, 5)}
    assert p["parity_max_abs_diff"] <= 1e-4, p["cases"]
    assert p["metric_agrees"] and p["ort_solved"] == p["keras_solved"]
    assert result["latency"]["ort_p50_ms_b1"] > 0 and result["latency"]["keras_p50_ms_b1"] > 0


@pytest.mark.parametrize("cell", RNN_ACTIVATION)
def test_simple_rnn_cells_native_rnn_op_matches_keras_at_41_steps(cell):
    """Every SimpleRNN cell (issue #27's relu_rnn, leaky_rnn and sigmoid_rnn included) as one
    native RNN op with its activation; onnxruntime within 1e-4 of Keras at (batch, T) = (3, 41)."""
    import onnx
    import onnxruntime as ort

    from suite.deploy.onnx_build import build_onnx
    from tasks import get_task

    task = get_task(TASK_FOR[cell], seq_len=8)
    model = build_model(cell, task, hidden=8, seed=0)
    rng = np.random.default_rng(1)
    for v in model.weights:  # away from the init, so every weight matters
        value = np.asarray(v) + 0.3 * rng.standard_normal(v.shape).astype(np.float32)
        if v.path.endswith("recurrent_kernel"):  # spectral norm 0.95: states stay bounded
            value *= 0.95 / np.linalg.norm(value, 2)
        v.assign(value)
    proto = build_onnx(model, cell, task)
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("RNN") == 1 and not {"Scan", "Loop"} & set(ops)
    assert _rnn_activation(proto)[0] == [RNN_ACTIVATION[cell]]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rnn = model.get_layer(cell)
    x_task, _ = get_task(TASK_FOR[cell], seq_len=41).generate(3, rng)
    x_wide = rng.standard_normal((3, 41, task.input_dim)).astype(np.float32)
    for x in (x_task, x_wide):
        assert x.shape[0] == 3 and x.shape[1] >= 41
        want = np.asarray(model(x))
        diff = np.abs(session.run(None, {"x": x})[0] - want).max()
        assert diff <= 1e-4, (x.shape, diff)
        if cell == "leaky_rnn":  # negative pre-activations occur: the slope is exercised
            assert (x @ np.asarray(rnn.cell.kernel)).min() < 0


def _tiny_run(uri, experiment, task, T, cell, seed=0):
    from suite.core.train import TrainConfig
    from suite.study.record import run_and_log

    cfg = TrainConfig(
        task=task, seq_len=T, cell=cell, hidden=8, batch_size=16, max_steps=10, eval_every=5,
        val_size=32, profile_size=8, seed=seed,
    )  # fmt: skip
    return run_and_log(cfg, uri, experiment)[0]


def test_reexport_reuses_its_version_a_new_run_gets_one_and_the_alias_follows(store, tmp_path):
    import mlflow

    from suite.deploy.export import ONNX_SHA_TAG, candidate_for_run, export_one
    from tracking import SOURCE_RUN_TAG

    root, uri, runs = store
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    name = "rnnbench-adding-T8"

    def versions():
        return {int(v.version): v for v in client.search_model_versions(f"name='{name}'")}

    def champion():
        return int(client.get_model_version_by_alias(name, "champion").version)

    first = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)
    before = versions()
    second = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)
    assert second["reused"] and second["version"] == first["version"]
    assert versions().keys() == before.keys()  # no new version for the same run
    v = versions()[int(first["version"])]
    assert v.tags[SOURCE_RUN_TAG] == runs["simple_rnn"]
    assert v.tags[ONNX_SHA_TAG] == second["onnx_sha256"] == first["onnx_sha256"]
    assert champion() == int(first["version"])

    # a different run of the same task@T: a new version, and champion moves to it
    fresh = _tiny_run(uri, "onnx-fresh", "adding", 8, "lstm", seed=1)
    third = export_one(candidate_for_run(uri, fresh), uri, "onnx", tmp_path)
    assert not third["reused"] and int(third["version"]) == max(before) + 1
    assert champion() == int(third["version"])
    out = run_cli("infer", "models:/rnnbench-adding-T8@champion", "--tracking-uri", uri,
                  "--json", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["task"] == "adding" and r["seq_len"] == 8 and r["cell"] == "lstm"
    assert math.isfinite(r["loss"]) and r["solved"] in (True, False) and r["latency_ms_b1_p50"] > 0

    # re-exporting the first run again reuses its version and champion moves back to it
    again = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)
    assert again["reused"] and again["version"] == first["version"]
    assert champion() == int(first["version"]) and len(versions()) == len(before) + 1

    # a version whose ONNX differs (e.g. from an older exporter) is not reused
    client.set_model_version_tag(name, first["version"], ONNX_SHA_TAG, "0" * 64)
    changed = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)
    assert not changed["reused"] and int(changed["version"]) == int(third["version"]) + 1
    assert champion() == int(changed["version"])


def test_export_task_without_seq_len_exports_the_winner_of_every_T(tmp_path):
    import mlflow
    import typer

    from suite.cli import app
    from suite.deploy.export import candidates, winners
    from tracking import SOURCE_RUN_TAG

    help_of = {p.name: p.help for p in typer.main.get_command(app).commands["export"].params}
    assert help_of["task"] == (
        "Export the winner of every T of this task (with --seq-len: of that T only)."
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    six = [_tiny_run(uri, "e", "adding", 6, cell) for cell in ("simple_rnn", "gru")]
    nine = _tiny_run(uri, "e", "adding", 9, "simple_rnn")
    _tiny_run(uri, "e", "delayed_recall", 6, "gru")  # another task: not exported
    expected = {c.seq_len: c for c in winners(candidates(uri, "e"), "adding")}
    assert sorted(expected) == [6, 9] and expected[6].run_id in six and expected[9].run_id == nine
    args = ("export", "--task", "adding", "--experiment", "e", "--tracking-uri", uri,
            "--out", tmp_path / "onnx")  # fmt: skip
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    exported = {
        ln.split()[0]: ln.split("<- run ")[1].split()[0]
        for ln in out.stdout.splitlines()
        if "<- run " in ln
    }
    assert {Path(p).name: r for p, r in exported.items()} == {
        f"adding-T{T}-{c.cell}.onnx": c.run_id for T, c in expected.items()
    }
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    assert sorted(m.name for m in client.search_registered_models()) == [
        "rnnbench-adding-T6",
        "rnnbench-adding-T9",
    ]
    for T, c in expected.items():
        mv = client.get_model_version_by_alias(f"rnnbench-adding-T{T}", "champion")
        assert int(mv.version) == 1 and mv.tags[SOURCE_RUN_TAG] == c.run_id
    # the same export again: the same versions, reported as reused
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("(v1, reused)") == 2, out.stdout
    for T in expected:
        assert len(client.search_model_versions(f"name='rnnbench-adding-T{T}'")) == 1


def test_infer_on_a_path_never_imports_tensorflow(store, tmp_path):
    from suite.deploy.export import candidate_for_run, export_one

    root, uri, runs = store
    path = export_one(candidate_for_run(uri, runs["gru"]), uri, "onnx", tmp_path)["path"]
    code = (
        "import sys\nfrom suite.cli import main\n"
        f"sys.argv = ['rnnbench', 'infer', {str(path)!r}, '--n', '64']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print('HEAVY', [m for m in ('tensorflow', 'keras') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "delayed_recall@8 gru" in out.stdout
    # the same for a registry URI
    code_reg = code.replace(
        repr(str(path)), repr("models:/rnnbench-delayed_recall-T8@champion")
    ).replace("'--n', '64'", f"'--n', '64', '--tracking-uri', {uri!r}")
    out = subprocess.run(
        [sys.executable, "-c", code_reg], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_infer_shows_the_predictions_writes_them_with_out_and_in_json(store, tmp_path):
    import onnxruntime as ort

    from suite.deploy.export import candidate_for_run, export_one
    from suite.deploy.onnx_infer import preview_lines, run_inference
    from tasks import get_task

    root, uri, runs = store
    gru = export_one(candidate_for_run(uri, runs["gru"]), uri, "onnx", tmp_path)["path"]
    # the predictions of the data `infer --n 16 --seed 3` generates, straight from onnxruntime
    x, y = get_task("delayed_recall", seq_len=8).generate(16, np.random.default_rng(3))
    session = ort.InferenceSession(str(gru), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0]
    out = run_cli("infer", gru, "--n", 16, "--seed", 3, "--out", "preds.npy", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = np.load(tmp_path / "preds.npy")
    assert got.shape == (16, 8) and np.allclose(got, want, atol=1e-6)
    lines = out.stdout.splitlines()
    first = next(ln for ln in lines if ln.strip().startswith("#0 "))
    assert f"class {int(want[0].argmax())} " in first and f"(target {int(y[0])})" in first
    assert f"{want[0][0]:.2f}" in first  # the logits, rounded
    assert sum(ln.strip().startswith("#") for ln in lines) == 5  # a preview, not 16 rows
    assert "written to preds.npy" in out.stdout

    out = run_cli("infer", gru, "--n", 16, "--seed", 3, "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    contract = {"model", "task", "seq_len", "cell", "clip", "trained_status", "batch",
                "output_shape", "loss", "accuracy", "solved", "solved_when", "baseline_loss",
                "latency_ms_b1_p50", "latency_ms_b1_p95"}  # fmt: skip
    assert contract <= set(r), contract - set(r)
    assert np.allclose(np.array(r["predictions"]), want, atol=1e-6)
    assert r["predicted_class"] == want.argmax(-1).tolist() and r["targets"] == y.tolist()
    assert r["output_kind"] == "final_class" and "predictions_path" not in r

    # a user's --input (no targets) on the adding model: values rounded, no target
    adding = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)["path"]
    xin = np.random.default_rng(7).random((3, 11, 2), dtype=np.float32)
    np.save(tmp_path / "x.npy", xin)
    want = ort.InferenceSession(str(adding), providers=["CPUExecutionProvider"]).run(
        None, {"x": xin}
    )[0]
    out = run_cli("infer", adding, "--input", "x.npy", "--out", "y.npy", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["predictions_path"] == "y.npy" and np.allclose(np.load(tmp_path / "y.npy"), want)
    assert np.allclose(np.array(r["predictions"]), want) and "targets" not in r
    out = run_cli("infer", adding, "--input", "x.npy", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [ln.split() for ln in out.stdout.splitlines() if ln.strip().startswith("#")]
    assert [row[1] for row in rows] == [f"{v:.4f}" for v in want[:, 0]]
    assert "target" not in out.stdout and "--out FILE.npy" in out.stdout

    # per-step classes (copy): the predicted class of each step, the middle elided
    copy = export_one(candidate_for_run(uri, runs["lstm"]), uri, "onnx", tmp_path)["path"]
    r = run_inference(str(copy), n=4)
    pred = r["predictions"]
    assert pred.shape == (4, 28, 10) and (r["predicted_class"] == pred.argmax(-1)).all()
    preview = preview_lines(r, rows=2)
    classes = pred[0].argmax(-1)
    assert preview[1].split() == ["#0", "classes", *map(str, classes[:4]), "…",
                                  *map(str, classes[-12:])]  # fmt: skip
    assert preview[2].split() == ["target", *map(str, r["targets"][0][:4]), "…",
                                  *map(str, r["targets"][0][-12:])]  # fmt: skip


def test_infer_out_is_checked_before_any_work(store, tmp_path):
    from suite.deploy.export import candidate_for_run, export_one

    root, uri, runs = store
    good = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", root / "good")
    (tmp_path / "taken.npy").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    cases = [
        ([good["path"], "--out", "nodir/y.npy"], "folder 'nodir' does not exist"),
        ([good["path"], "--out", "y.txt"], "must name a .npy file"),
        ([good["path"], "--out", "taken.npy"], "is a folder"),
        (["missing.onnx", "--out", "nodir/y.npy"], "--out"),  # before the model is looked at
        (["models:/rnnbench-adding-T8@champion", "--out", "y.csv"], "--out"),  # no store made
    ]
    for args, named in cases:
        out = run_cli("infer", *args, cwd=tmp_path)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.returncode == 2, (args, out.stderr)
        assert len(lines) == 1 and named in lines[0], (args, out.stderr)
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_infer_help_names_the_registered_models(store, tmp_path):
    import typer

    from suite.cli import app
    from suite.deploy.export import (
        CHAMPION_ALIAS,
        REGISTERED_NAME,
        candidate_for_run,
        champion_uri,
        export_one,
    )

    model_help = next(
        p.help for p in typer.main.get_command(app).commands["infer"].params if p.name == "model"
    )
    pattern = f"models:/{REGISTERED_NAME}@{CHAMPION_ALIAS}"
    assert pattern == "models:/rnnbench-{task}-T{seq_len}@champion" and pattern in model_help
    assert champion_uri("adding", 50) in model_help
    out = run_cli("infer", "--help", cwd=tmp_path)
    assert out.returncode == 0 and pattern in "".join(out.stdout.split())
    out = run_cli("export", "--help", cwd=tmp_path)
    assert REGISTERED_NAME in "".join(out.stdout.split())
    # the name the help spells is the one an export registers, and infer resolves it
    root, uri, runs = store
    cand = candidate_for_run(uri, runs["irnn"])
    result = export_one(cand, uri, "onnx", tmp_path)
    spelled = pattern.format(task=cand.task, seq_len=cand.seq_len)
    assert result["registered"] == spelled == champion_uri(cand.task, cand.seq_len)
    out = run_cli("infer", spelled, "--tracking-uri", uri, "--n", 8, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{cand.task}@{cand.seq_len} irnn")


def test_infer_runs_the_ortho_rnn_scan_graph(store, tmp_path):
    from suite.deploy.export import candidate_for_run, export_one
    from suite.deploy.onnx_infer import run_inference

    root, uri, runs = store
    path = export_one(candidate_for_run(uri, runs["ortho_rnn"]), uri, "onnx", tmp_path)["path"]
    for T in (8, 13):  # the trained length and another
        r = run_inference(str(path), n=32, seq_len=T)
        assert r["cell"] == "ortho_rnn" and r["output_shape"] == [32, T + 20, 10]
        assert math.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1 and r["latency_ms_b1_p50"] > 0


def test_standalone_example_needs_only_numpy_and_onnxruntime(store, tmp_path):
    from suite.deploy.export import candidate_for_run, export_one

    root, uri, runs = store
    path = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)["path"]
    script = (
        __import__("suite.deploy.examples", fromlist=["x"]).__path__[0]
        + "/onnx_infer_standalone.py"
    )
    code = (
        "import runpy, sys\n"
        "sys.modules['tensorflow'] = None; sys.modules['keras'] = None; sys.modules['suite'] = None\n"
        f"sys.argv = ['x', {str(path)!r}, '--n', '32', '--out', 'y.npy']\n"
        f"runpy.run_path({script!r}, run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "adding MSE:" in out.stdout and "output shape: (32, 1)" in out.stdout
    saved = np.load(tmp_path / "y.npy")
    assert saved.shape == (32, 1) and "predictions [32, 1] (final_scalar)" in out.stdout
    rows = [ln.split() for ln in out.stdout.splitlines() if ln.strip().startswith("#")]
    assert [row[1] for row in rows] == [f"{v:.4f}" for v in saved[:5, 0]]
    # a classification model: the predicted class of each of the first rows
    gru = export_one(candidate_for_run(uri, runs["gru"]), uri, "onnx", tmp_path)["path"]
    out = subprocess.run(
        [sys.executable, "-c", code.replace(repr(str(path)), repr(str(gru)))],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    saved = np.load(tmp_path / "y.npy")
    rows = [ln.split() for ln in out.stdout.splitlines() if ln.strip().startswith("#")]
    assert [row[1:3] for row in rows] == [["class", str(c)] for c in saved[:5].argmax(-1)]


def test_infer_errors(store, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    root, uri, runs = store
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage")
    (tmp_path / "text.onnx").write_text("not a model at all")
    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None, 2])],
    )  # fmt: skip
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
        str(tmp_path / "nometa.onnx"),
    )
    from suite.deploy.export import candidate_for_run, export_one

    good = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)["path"]
    np.save(tmp_path / "wide.npy", np.zeros((2, 8, 5), np.float32))
    nan = np.zeros((2, 8, 2), np.float32)
    nan[1, 3, 0], nan[0, 0, 1] = np.nan, np.inf
    np.save(tmp_path / "nan.npy", nan)
    cases = [
        (["corrupt.onnx"], "not a valid ONNX model"),
        (["text.onnx"], "not a valid ONNX model"),
        (["missing.onnx"], "not found"),
        (["nometa.onnx"], "metadata"),
        (["models:/rnnbench-nope-T1@champion", "--tracking-uri", uri], "rnnbench-nope-T1"),
        (["models:/rnnbench-adding-T8@nosuchalias", "--tracking-uri", uri], "nosuchalias"),
        ([str(good), "--input", "wide.npy"], "width 5"),
        ([str(good), "--input", "nan.npy"], "2 non-finite value(s)"),
    ]
    for args, named in cases:
        out = run_cli("infer", *args, cwd=tmp_path)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.returncode == 2, (args, out.stderr)
        assert len(lines) == 1 and named in lines[0], (args, out.stderr)


def test_export_errors(tmp_path, sqlite_uri):
    out = run_cli("export", "--all", cwd=tmp_path)  # no store in the working dir
    assert out.returncode == 2 and "no runs to export" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()
    import mlflow

    mlflow.MlflowClient(sqlite_uri).create_experiment("empty")
    out = run_cli(
        "export", "--all", "--experiment", "empty", "--tracking-uri", sqlite_uri, cwd=tmp_path
    )
    assert (
        out.returncode == 2
        and len(out.stderr.strip().splitlines()) == 1
        and "no finished runs" in out.stderr
    )
    out = run_cli("export", cwd=tmp_path)
    assert out.returncode == 2 and "--all" in out.stderr


def _cand(run, task, T, status, secs=math.inf, ratio=1.0):
    return Candidate(run, task, T, "lstm", "none", status, secs, ratio, {})


def test_winner_selection():
    cands = [
        _cand("a", "adding", 50, "solved", 30.0, 0.05),
        _cand("b", "adding", 50, "solved", 10.0, 0.06),
        _cand("c", "adding", 50, "unsolved", ratio=0.01),
        _cand("d", "copy", 10, "unsolved", ratio=0.9),
        _cand("e", "copy", 10, "diverged", ratio=math.inf),
        _cand("f", "copy", 10, "unsolved", ratio=0.5),
    ]
    w = {(c.task, c.seq_len): c for c in winners(cands)}
    assert w[("adding", 50)].run_id == "b"  # fastest solved, not the lowest loss
    assert w[("copy", 10)].run_id == "f" and w[("copy", 10)].status == "unsolved"
    assert [c.run_id for c in winners(cands, task="copy")] == ["f"]


def test_report_gains_an_onnx_table(store, tmp_path):
    import mlflow

    from suite.deploy.export import candidate_for_run, export_one
    from suite.findings.data import load_sweep
    from suite.findings.report import onnx_section

    root, uri, runs = store
    export_one(candidate_for_run(uri, runs["lstm"]), uri, "onnx", tmp_path)
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("onnx")
    parent = client.create_run(exp.experiment_id, tags={"rnnbench.kind": "sweep"}).info.run_id
    for run_id in runs.values():
        client.set_tag(run_id, "mlflow.parentRunId", parent)
    section = onnx_section(load_sweep(uri, "onnx", parent))
    assert section is not None and "| copy@8 | lstm | none |" in section
    row = next(ln for ln in section.splitlines() if ln.startswith("| copy@8"))
    assert "LSTM" in row and row.rstrip().endswith("x |")


def test_infer_of_a_registry_uri_without_a_store_writes_nothing(tmp_path):
    out = run_cli("infer", "models:/missing@champion", "--tracking-uri", "sqlite:///none.db",
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "no tracking store" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = run_cli("infer", "models:/missing@champion", cwd=tmp_path)  # the default store
    assert out.returncode == 2, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_task_variants_never_compete_and_name_their_registered_model():
    def cand(options, status, ratio):
        return Candidate("r", "copy", 50, "lstm", "none", status, 1.0, ratio, options)

    ws = winners([
        cand({"num_recall": 3}, "solved", 0.1),
        cand({}, "unsolved", 0.5),
        cand({"num_recall": 10, "alphabet": 8}, "unsolved", 0.4),  # the default copy, spelled out
    ])  # fmt: skip
    assert [(w.variant, w.val_loss_ratio) for w in ws] == [("", 0.4), ("-num_recall3", 0.1)]
    delayed = Candidate(
        "r", "delayed_recall", 8, "lstm", "none", "solved", 1, 0.1, {"num_symbols": 8}
    )
    assert delayed.variant == ""  # a default logged explicitly names no variant
