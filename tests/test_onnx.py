"""ONNX export: graph forms (native op, Scan, switch) chosen by measurement, onnxruntime checks,
registry alias, TF-free inference."""

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
    "transformer": "adding",
}
# the op that runs each cell's recurrence (ortho_rnn's modReLU has no native op: a Scan; the
# transformer has none: its attention's Softmax)
RECURRENT_OP = {"simple_rnn": "RNN", "irnn": "RNN", "ortho_rnn": "Scan", "lstm": "LSTM",
                "chrono_lstm": "LSTM", "gru": "GRU", "relu_rnn": "RNN", "leaky_rnn": "RNN",
                "sigmoid_rnn": "RNN", "transformer": "Softmax"}  # fmt: skip
# the native RNN op's activation of each SimpleRNN cell
RNN_ACTIVATION = {"simple_rnn": "Tanh", "irnn": "Relu", "relu_rnn": "Relu",
                  "leaky_rnn": "LeakyRelu", "sigmoid_rnn": "Sigmoid"}  # fmt: skip


def _nodes(graph):
    """Every node of ``graph`` and of its subgraphs (Scan bodies, If branches)."""
    for n in graph.node:
        yield n
        for a in n.attribute:
            for g in [a.g] if a.HasField("g") else list(a.graphs):
                yield from _nodes(g)


def _rnn_activation(proto) -> tuple[list[str], list[float]]:
    """The ``activations`` and ``activation_alpha`` of the graph's RNN node."""
    node = next(n for n in _nodes(proto.graph) if n.op_type == "RNN")
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


def _meta(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def _latency_table(meta: dict) -> dict[str, dict[int, float]]:
    """``graph_form_latency_ms`` read back: {form: {batch: ms}}."""
    return {f: {int(b): v for b, v in by_b.items()}
            for f, by_b in json.loads(meta["graph_form_latency_ms"]).items()}  # fmt: skip


def _check_form_ops(proto, cell: str, form: str) -> None:
    """The ops of ``form``: the native op (top level), a Scan whose body holds no input
    projection, or an If with one branch of each; never a Loop."""
    top = {n.op_type for n in proto.graph.node}
    every = {n.op_type for n in _nodes(proto.graph)}
    assert "Loop" not in every
    op = RECURRENT_OP[cell]
    if form == "native":
        assert op in top and "Scan" not in every and "If" not in every
    elif form == "scan":
        assert "Scan" in top and not {"RNN", "LSTM", "GRU", "If"} & every
        scan = next(n for n in proto.graph.node if n.op_type == "Scan")
        body = [n.op_type for a in scan.attribute if a.name == "body" for n in a.g.node]
        assert "MatMul" not in body and body.count("Gemm") == 1  # only the recurrent product
    elif form == "switch":
        (node,) = [n for n in proto.graph.node if n.op_type == "If"]
        branches = [{n.op_type for n in _nodes(a.g)} for a in node.attribute]
        assert sorted(op in b for b in branches) == [False, True]
        assert sorted("Scan" in b for b in branches) == [False, True]
    else:  # a cell with its own builder (the transformer): one graph
        assert form == "graph" and op in every


@pytest.mark.parametrize("cell", CELLS)
def test_export_writes_the_measured_graph_form_parity_and_registry(store, cell):
    import onnx

    from suite.deploy.export import LATENCY_BATCHES, candidate_for_run, choose_form, export_one
    from suite.deploy.onnx_build import graph_forms

    root, uri, runs = store
    result = export_one(candidate_for_run(uri, runs[cell]), uri, "onnx", root / "out")
    proto = onnx.load(str(result["path"]))
    onnx.checker.check_model(proto, full_check=True)
    meta = _meta(proto)
    form = meta["graph_form"]
    assert form == result["graph_form"] and form in graph_forms(cell)
    _check_form_ops(proto, cell, form)
    # the measurement: every form timed at every batch, the choice is the rule's on those numbers
    table = _latency_table(meta)
    plain = {f for f in graph_forms(cell) if f != "switch"}
    assert plain <= set(table) <= set(graph_forms(cell))
    assert ("switch" in table) == ("graph_form_measured_switch" in meta)
    for by_b in table.values():
        assert sorted(by_b) == list(LATENCY_BATCHES) and all(v > 0 for v in by_b.values())
    assert meta["graph_form_measured_choice"] == choose_form(table)[0]
    kept = result["forms"]["kept_from"]  # another test of this module may have exported it first
    if kept is None:  # the first export of this run: the measured choice
        assert form == meta["graph_form_measured_choice"]
    else:  # a re-export keeps the registered version's form, and its version
        assert result["reused"] and result["version"] == kept
    if form == "switch":
        assert meta["graph_form_switch"] == result["forms"]["switch"]
    if cell in RNN_ACTIVATION and form in ("native", "switch"):
        acts, alpha = _rnn_activation(proto)
        assert acts == [RNN_ACTIVATION[cell]]
        assert alpha == ([pytest.approx(LEAKY_SLOPE)] if cell == "leaky_rnn" else [])
    if cell == "gru" and form in ("native", "switch"):
        node = next(n for n in _nodes(proto.graph) if n.op_type == "GRU")
        assert [a.i for a in node.attribute if a.name == "linear_before_reset"] == [1]
    assert proto.opset_import[0].version >= 17
    assert meta["task"] == TASK_FOR[cell] and meta["seq_len"] == "8" and meta["cell"] == cell
    assert meta["run_id"] == runs[cell] and meta["rnnbench_version"] and meta["clip"] == "none"
    p = result["parity"]
    assert {(c["batch"], c["seq_len"]) for c in p["cases"]} == {(1, 8), (64, 8), (1, 5), (64, 5)}
    assert p["parity_max_abs_diff"] <= 1e-4, p["cases"]
    assert p["metric_agrees"] and p["ort_solved"] == p["keras_solved"]
    # every form's parity at (3, 41) and (64, trained T)
    assert set(p["forms"]) >= plain
    for f, fp in p["forms"].items():
        assert {(c["batch"], c["seq_len"]) for c in fp["cases"]} == {(3, 41), (64, 8)}
        assert fp["ok"] and fp["max_abs_diff"] <= 1e-4, (f, fp)
    for B in LATENCY_BATCHES:
        assert (
            result["latency"][f"ort_p50_ms_b{B}"] > 0
            and result["latency"][f"keras_p50_ms_b{B}"] > 0
        )


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


RECURRENT_CELLS = [c for c in CELLS if c != "transformer"]  # the cells onnx_build builds
# onnx.reference runs every form but the native RNN op with an activation other than Tanh
# (its RNN knows only tanh: "Unknown activation function 'Relu'"), a switch holding one included
REFERENCE_MISSES = {(c, f) for c in ("irnn", "relu_rnn", "leaky_rnn", "sigmoid_rnn")
                    for f in ("native", "switch")}  # fmt: skip


def _perturbed_model(cell: str, task):
    """A tiny model with weights away from the init, so every weight matters (recurrent
    kernels at spectral norm 0.95: states stay bounded)."""
    model = build_model(cell, task, hidden=8, seed=0)
    rng = np.random.default_rng(1)
    for v in model.weights:
        value = np.asarray(v) + 0.3 * rng.standard_normal(v.shape).astype(np.float32)
        if v.path.endswith("recurrent_kernel"):
            value *= 0.95 / np.linalg.norm(value, 2)
        v.assign(value)
    return model


@pytest.mark.parametrize("cell", RECURRENT_CELLS)
def test_every_graph_form_matches_keras_at_3x41_and_64xT(cell):
    """Each form of each cell within 1e-4 of Keras at (batch, T) = (3, 41) and (64, trained T),
    on task data and on wide normal inputs, in onnxruntime and (where it runs them) in
    onnx.reference; a switch in both orders, each branch taken once (batch 3 <= 3 < 64)."""
    import onnx
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    from suite.deploy.export import form_parity, parity_cases
    from suite.deploy.onnx_build import build_onnx, graph_forms
    from tasks import get_task

    task = get_task(TASK_FOR[cell], seq_len=8)
    model = _perturbed_model(cell, task)
    rng = np.random.default_rng(2)
    xs = [get_task(task.name, seq_len=T).generate(B, rng)[0] for B, T in ((3, 41), (64, 8))]
    xs += [rng.standard_normal((B, T, task.input_dim)).astype(np.float32)
           for B, T in ((3, 41), (64, 8))]  # fmt: skip
    wants = [np.asarray(model(x)) for x in xs]
    assert (cell == "ortho_rnn") == ("native" not in graph_forms(cell))
    builds = [(f, None) for f in graph_forms(cell) if f != "switch"]
    if "switch" in graph_forms(cell):
        builds += [("switch", ("native", 3, "scan")), ("switch", ("scan", 3, "native"))]
    for form, switch in builds:
        proto = build_onnx(model, cell, task, form=form, switch=switch)
        onnx.checker.check_model(proto, full_check=True)
        assert _meta(proto)["graph_form"] == form
        _check_form_ops(proto, cell, form)
        session = ort.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        for x, want in zip(xs, wants, strict=True):
            assert x.shape[0] in (3, 64) and x.shape[1] >= 8
            diff = np.abs(session.run(None, {"x": x})[0] - want).max()
            assert diff <= 1e-4, (form, switch, x.shape, diff)
        # the exporter's own per-form check agrees
        fp = form_parity(session, parity_cases(model, task))
        assert fp["ok"] and [(c["batch"], c["seq_len"]) for c in fp["cases"]] == [(3, 41), (64, 8)]
        if (cell, form) in REFERENCE_MISSES:
            continue
        ref = ReferenceEvaluator(proto)
        for x, want in zip(xs[::3], wants[::3], strict=True):  # task data (3, 41), normal (64, 8)
            diff = np.abs(ref.run(None, {"x": x})[0] - want).max()
            assert diff <= 1e-4, ("reference", form, switch, x.shape, diff)


def test_a_bad_form_or_switch_is_refused():
    from suite.deploy.onnx_build import build_onnx, parse_switch_label, switch_label
    from tasks import get_task

    task = get_task("adding", seq_len=8)
    model = build_model("ortho_rnn", task, hidden=4, seed=0)
    with pytest.raises(ValueError, match="no graph form 'native'"):
        build_onnx(model, "ortho_rnn", task, form="native")  # modReLU has no native op
    model = build_model("gru", task, hidden=4, seed=0)
    for bad in [("native", 0, "scan"), ("native", 4, "native"), ("scan", 2.5, "native")]:
        with pytest.raises(ValueError, match="a switch is"):
            build_onnx(model, "gru", task, form="switch", switch=bad)
    assert parse_switch_label(switch_label(("scan", 5, "native"))) == ("scan", 5, "native")


def test_choose_form_takes_the_best_worst_case_ratio_ties_to_the_simpler_graph():
    from suite.deploy.export import FORM_TIE, choose_form, derive_switch, worst_ratios

    # the numbers (SimpleRNN, hidden 64, T = 100): native 10x slower at batch 64
    measured = {"native": {1: 0.07, 16: 0.5, 64: 6.5, 256: 26.0},
                "scan": {1: 0.09, 16: 0.4, 64: 0.66, 256: 2.6}}  # fmt: skip
    worst = worst_ratios(measured)
    assert worst == pytest.approx({"native": 10.0, "scan": 0.09 / 0.07})
    assert choose_form(measured) == ("scan", worst)
    # native wins batch 1 and 16: a switch at the geometric mean of 16 and 64
    measured["native"][16] = 0.3
    assert derive_switch(measured) == ("native", 32, "scan")
    measured["switch"] = {1: 0.075, 16: 0.31, 64: 0.67, 256: 2.62}
    assert choose_form(measured)[0] == "switch"  # worst 1.07 against scan's 1.29
    # within the tie margin the simpler graph wins: native before scan before switch
    close = {"native": {1: 1.0, 64: 1.0 + FORM_TIE * 0.9},
             "scan": {1: 1.0 + FORM_TIE * 0.5, 64: 1.0}, "switch": {1: 1.0, 64: 1.0}}  # fmt: skip
    assert choose_form(close)[0] == "native"
    close["native"][64] = 1.0 + FORM_TIE * 1.1  # now outside: scan is tied with the switch
    assert choose_form(close)[0] == "scan"
    close["scan"][1] = 1.0 + FORM_TIE * 1.1
    assert choose_form(close)[0] == "switch"
    # one form fastest everywhere: no switch; the scan fastest first: the mirror switch
    assert derive_switch({"native": {1: 2.0, 64: 9.0}, "scan": {1: 1.0, 64: 1.0}}) is None
    assert derive_switch({"native": {1: 2.0, 16: 1.0, 64: 1.0, 256: 1.0},
                          "scan": {1: 1.0, 16: 2.0, 64: 0.5, 256: 2.0}}) == ("scan", 4, "native")  # fmt: skip
    assert derive_switch({"scan": {1: 1.0}}) is None  # ortho_rnn: one form
    assert choose_form({"scan": {1: 3.0, 256: 9.0}}) == ("scan", {"scan": 1.0})
    with pytest.raises(ValueError, match="no timed batch"):
        choose_form({"native": {1: 1.0}, "scan": {64: 1.0}})


def test_measure_forms_times_every_form_at_every_batch_and_graph_for_records_it():
    """A real measurement on a tiny GRU: every form timed at batch 1, 16, 64 and 256, the choice
    the rule's on those numbers, the metadata holding them; the measurement stays out of the
    registry's content hash, the form does not."""
    import onnxruntime as ort

    from suite.deploy.export import (
        FORM_TIE,
        LATENCY_BATCHES,
        choose_form,
        content_sha256,
        graph_for,
        measure_forms,
        worst_ratios,
    )
    from tasks import get_task

    task = get_task("delayed_recall", seq_len=8)
    model = _perturbed_model("gru", task)
    record = measure_forms(model, "gru", task, repeats=2)
    lat = record["latency_ms"]
    assert {"native", "scan"} <= set(lat) and ("switch" in lat) == bool(record["switch_tried"])
    for by_b in lat.values():
        assert sorted(by_b) == list(LATENCY_BATCHES)
        assert all(math.isfinite(v) and v > 0 for v in by_b.values())
    assert record["measured"]["form"] == choose_form(lat)[0]
    assert record["worst_ratio"] == pytest.approx(worst_ratios(lat))
    chosen = record["worst_ratio"][record["measured"]["form"]]
    assert all(1.0 <= chosen <= r * (1 + FORM_TIE) for r in record["worst_ratio"].values())
    assert all(p["ok"] for p in record["parity"].values()) and set(record["parity"]) >= set(lat)
    proto = graph_for(model, "gru", task, {"task": task.name}, record)
    meta = _meta(proto)
    assert meta["graph_form"] == record["measured"]["form"] == meta["graph_form_measured_choice"]
    assert _latency_table(meta) == lat and meta["task"] == task.name
    assert json.loads(meta["graph_form_worst_ratio"]).keys() == lat.keys()
    x, _ = task.generate(5, np.random.default_rng(0))
    out = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.abs(out.run(None, {"x": x})[0] - np.asarray(model(x))).max() <= 1e-4
    # other timings, the same graph: the same hash; another form: another hash
    slower = {**record, "latency_ms": {f: {b: 2 * v for b, v in by_b.items()}
                                        for f, by_b in lat.items()}}  # fmt: skip
    again = graph_for(model, "gru", task, {"task": task.name}, slower)
    assert content_sha256(again) == content_sha256(proto) and again != proto
    other = "scan" if meta["graph_form"] == "native" else "native"
    moved = graph_for(model, "gru", task, {"task": task.name}, record, other)
    assert _meta(moved)["graph_form"] == other and content_sha256(moved) != content_sha256(proto)


def test_export_uses_the_measured_form_and_a_reexport_keeps_it(tmp_path):
    """A fresh store: the exported file's graph_form is the rule's choice on the latencies in its
    own metadata, logged as a param and tags; a re-export of the run keeps form and version."""
    import mlflow
    import onnx

    from suite.deploy.export import (
        GRAPH_FORM_TAG,
        candidate_for_run,
        choose_form,
        export_one,
        ops_label,
    )

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = _tiny_run(uri, "fresh", "adding", 8, "simple_rnn")
    first = export_one(candidate_for_run(uri, run), uri, "fresh", tmp_path / "a")
    meta = _meta(onnx.load(str(first["path"])))
    assert first["forms"]["kept_from"] is None
    assert meta["graph_form"] == first["graph_form"] == choose_form(_latency_table(meta))[0]
    assert ops_label(first).startswith(f"{first['graph_form']}: ")
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    logged = client.get_run(first["export_run"]).data
    assert logged.params["graph_form"] == logged.tags[GRAPH_FORM_TAG] == first["graph_form"]
    assert logged.metrics["form_scan_ms_b256"] > 0 and logged.metrics["form_native_ms_b1"] > 0
    version = client.get_model_version("rnnbench-adding-T8", first["version"])
    assert version.tags[GRAPH_FORM_TAG] == first["graph_form"]
    second = export_one(candidate_for_run(uri, run), uri, "fresh", tmp_path / "b")
    assert second["reused"] and second["version"] == first["version"]
    assert second["forms"]["kept_from"] == first["version"]
    meta2 = _meta(onnx.load(str(second["path"])))
    assert meta2["graph_form"] == meta["graph_form"] == second["graph_form"]
    assert meta2["graph_form_measured_choice"] == choose_form(_latency_table(meta2))[0]


def test_perf_onnx_table_shows_the_form_and_every_batch_on_both_backends():
    from suite.perf import GOALS, REF, onnx_table, to_markdown

    def lat(form, ort_ms, keras_ms):
        out = {"graph_form": form}
        for B, o, k in zip((1, 16, 64, 256), ort_ms, keras_ms, strict=True):
            out.update({f"ort_p50_ms_b{B}": o, f"keras_p50_ms_b{B}": k, f"speedup_b{B}": k / o})
        return out

    cell = {"latency": lat("switch native<=32<scan", (0.1, 0.5, 1.0, 4.0), (0.2, 1.0, 1.5, 4.4)),
            "latency_other": {"jax": lat("switch native<=32<scan", (0.1, 0.5, 1.0, 4.0),
                                         (0.1, 1.0, 1.5, 4.4))}}  # fmt: skip
    cell["latency"]["form_latency_ms"] = {"native": {"1": 0.08, "256": 9.0}, "scan": {"1": 0.12}}
    res = {"backend": "tensorflow", "cells": {"gru": cell}}

    def row_of(lines):
        return next(line for line in lines if line.startswith("| gru |"))

    lines = onnx_table(res)
    assert "| cell | graph form | ORT ms b1/16/64/256 | tensorflow ms |" in lines[3]
    assert "ORT/tensorflow (goal >= 1.0, b1 >= 4) |" in lines[3]
    row = row_of(lines)
    assert row.startswith(
        "| gru | switch native<=32<scan | 0.10/0.50/1.00/4.00 | 0.20/1.00/1.50/4.40 |"
    )
    # faster than TensorFlow at every batch, but 2.0x at batch 1, under 4x
    assert "| 2.0x/2.0x/1.5x/1.1x ok, b1 MISS |" in row
    assert row.endswith("| 1.0x/2.0x/1.5x/1.1x ok, b1 MISS |")  # JAX: a tie at batch 1
    # each batch-1 miss with the limit this run measured: the fastest form at batch 1
    reasons = [line for line in lines if line.startswith("- gru on ")]
    assert reasons[0] == (
        "- gru on tensorflow: Keras 0.200 ms, ORT 0.100 ms (2.0x); 4x needs ORT at 0.050 ms; "
        "the fastest form, native, took 0.080 ms (at most 2.5x)"
    )
    assert reasons[1].startswith("- gru on jax: Keras 0.100 ms") and "at most 1.2x" in reasons[1]
    cell["latency_other"]["jax"]["speedup_b1"] = 0.8
    assert row_of(onnx_table(res)).endswith("| 0.8x/2.0x/1.5x/1.1x MISS, b1 MISS |")
    cell["latency"].update(keras_p50_ms_b1=0.5, speedup_b1=5.0)  # TensorFlow: 5x at batch 1
    assert "| 5.0x/2.0x/1.5x/1.1x ok, b1 ok |" in row_of(onnx_table(res))
    assert not any(line.startswith("- gru on tensorflow") for line in onnx_table(res))
    del cell["latency_other"]
    assert "jax" not in onnx_table(res)[3] and row_of(onnx_table(res)).endswith("ok, b1 ok |")
    # results from before the per-batch measurement: no table
    assert (
        onnx_table({"cells": {"gru": {"latency": {"speedup_b1": 2.0, "speedup_b64": 1.0}}}}) == []
    )
    full = {"quick": True, "machine": "m", "date": "d", "reference": REF, "goals": GOALS,
            "matmul_peak_gflops": 100.0, "backend": "tensorflow",
            "cells": {"gru": {**cell, "suite_steps_s": 1.0, "fit_steps_s": 1.0, "fit_ratio": 1.0,
                              "train_gflops": 1.0, "peak_fraction": 0.5, "ceiling_fraction": 0.5,
                              "ms_per_step": {"50": 1.0, "100": 2.0, "200": 4.0, "400": 8.0},
                              "linear_400_100": 4.0, "peak_rss_mb": 1.0}}}  # fmt: skip
    md = to_markdown(full)
    assert "ONNX inference" in md and "| gru | switch native<=32<scan |" in md


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
    import onnx
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
    for p, run_id in exported.items():  # the ops column names each graph's form and its op
        cell = next(c.cell for c in expected.values() if c.run_id == run_id)
        form = _meta(onnx.load(p))["graph_form"]
        label = {"native": f"native: {RECURRENT_OP[cell]}", "scan": "scan: Scan"}
        assert label.get(form, "switch: ") in out.stdout, out.stdout
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


def test_export_errors(tmp_path):
    out = run_cli("export", "--all", cwd=tmp_path)  # no store in the working dir
    assert out.returncode == 2 and "no runs to export" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()
    import mlflow
    from conftest import new_store

    (tmp_path / "elsewhere").mkdir()
    sqlite_uri = new_store(tmp_path / "elsewhere" / "mlflow.db")

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
    form = export_one(candidate_for_run(uri, runs["lstm"]), uri, "onnx", tmp_path)["graph_form"]
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("onnx")
    parent = client.create_run(exp.experiment_id, tags={"rnnbench.kind": "sweep"}).info.run_id
    for run_id in runs.values():
        client.set_tag(run_id, "mlflow.parentRunId", parent)
    section = onnx_section(load_sweep(uri, "onnx", parent))
    assert section is not None and "| copy@8 | lstm | none |" in section
    row = next(ln for ln in section.splitlines() if ln.startswith("| copy@8"))
    # the ops column lists the graph's ops, a switch's branches' too
    assert ("LSTM" in row) == (form != "scan") and ("Scan" in row) == (form != "native")
    assert row.rstrip().endswith("x |")


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


def test_a_registered_switch_is_kept_when_this_measurement_tried_no_switch():
    """Re-export under other load may not try a switch at all: the registered switch is kept
    when both of its branches passed parity now (a CI failure: a new version every time)."""
    from suite.deploy.export import _parity_ok

    now = {"parity": {"native": {"ok": True}, "scan": {"ok": True}}}  # no "switch" measured
    assert _parity_ok(now, "switch", "native<=4<scan") and _parity_ok(now, "scan", None)
    assert not _parity_ok({"parity": {"native": {"ok": True}, "scan": {"ok": False}}}, "switch",
                          "native<=4<scan")  # fmt: skip
    assert not _parity_ok(now, "switch", None)
