"""ONNX export with native recurrent ops, onnxruntime checks, registry alias, TF-free inference."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

from suite.core.models import CELLS
from suite.deploy.export import Candidate, winners

TASK_FOR = {
    "simple_rnn": "adding",
    "irnn": "delayed_recall",
    "ortho_rnn": "copy",
    "lstm": "copy",
    "chrono_lstm": "adding",
    "gru": "delayed_recall",
}
# the op that runs each cell's recurrence (ortho_rnn's modReLU has no native op: a Scan)
RECURRENT_OP = {"simple_rnn": "RNN", "irnn": "RNN", "ortho_rnn": "Scan", "lstm": "LSTM",
                "chrono_lstm": "LSTM", "gru": "GRU"}  # fmt: skip


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
    if cell in ("simple_rnn", "irnn"):
        node = next(n for n in proto.graph.node if n.op_type == "RNN")
        acts = [a for a in node.attribute if a.name == "activations"][0].strings
        assert acts == [b"Relu" if cell == "irnn" else b"Tanh"]
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


def test_alias_moves_to_the_new_version_and_infer_resolves_it(store, tmp_path):
    import mlflow

    from suite.deploy.export import candidate_for_run, export_one

    root, uri, runs = store
    first = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)
    second = export_one(candidate_for_run(uri, runs["simple_rnn"]), uri, "onnx", tmp_path)
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("rnnbench-adding-T8", "champion")
    assert int(mv.version) == int(second["version"]) == int(first["version"]) + 1
    out = run_cli(
        "infer",
        "models:/rnnbench-adding-T8@champion",
        "--tracking-uri",
        uri,
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["task"] == "adding" and r["seq_len"] == 8 and r["cell"] == "simple_rnn"
    assert math.isfinite(r["loss"]) and r["solved"] in (True, False) and r["latency_ms_b1_p50"] > 0


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
        f"sys.argv = ['x', {str(path)!r}, '--n', '32']\n"
        f"runpy.run_path({script!r}, run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "adding MSE:" in out.stdout and "output shape: (32, 1)" in out.stdout


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
