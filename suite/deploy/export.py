"""Export winners to ONNX, check them in onnxruntime, register them in MLflow.

Winner per task@T: among ``solved`` runs the smallest ``seconds_to_solve`` (tie: lowest
val loss ratio); when none solved, the lowest ``val_loss_ratio``, exported but flagged
``unsolved`` (in the file's metadata, the export run's tags and the printed table).

Graph form (``measure_forms``): every form ``suite.deploy.onnx_build`` knows for the cell
(``native`` op, ``scan`` with the input projection hoisted, ``switch`` = an ``If`` on the batch
size between the two) is built, checked against Keras (``form_parity``: batch 3 at T = 41 and
batch 64 at the trained T, within ``PARITY_TOL``) and timed in onnxruntime at batch 1, 16, 64
and 256 at the trained T (``time_forms``: forms interleaved, medians). One graph is exported:
the form with the best worst-case ratio to the fastest form at each batch (``choose_form``;
``FORM_RULE``). The switch is only built when one form wins the small batches and the other the
large ones (``derive_switch``), then all forms are timed again together. The written model's
metadata records the choice (``graph_for``): ``graph_form``, ``graph_form_rule``,
``graph_form_latency_ms`` (the medians, per form and batch: ``choose_form`` of them gives
``graph_form_measured_choice``), ``graph_form_worst_ratio``, ``graph_form_measured_switch``
(the switch timed, if any) and, for a switch, ``graph_form_switch`` (e.g. ``native<=32<scan``).

Checks (printed and logged on the export run): ``onnx.checker``; parity against Keras on
fresh task data at batch 1 and 64 and at two lengths (trained T and another), plus every
form's parity; the task metric recomputed from onnxruntime outputs vs Keras'; latency p50/p95
at batch 1, 16, 64 and 256, onnxruntime vs Keras (a traced ``tf.function`` or a ``jax.jit``)
in the same process.

Registry: every export registers its ONNX as a version of ``rnnbench-{task}-T{seq_len}`` (plus
the task variant's options, e.g. ``-num_recall3``; :func:`registered_name` owns the format) and
moves the alias ``champion`` to it. Re-exporting the same training run reuses its version when
the ONNX is unchanged (the version's tags hold the training run id and the ONNX's sha256,
``content_sha256``: of its bytes less the measured latencies in its metadata, which differ on
every export), so one run never piles up versions; a different run, or a changed ONNX (another
graph form included), gets a new one. A re-export keeps the graph form of the run's newest
registered version (tag ``rnnbench.graph_form``) while that graph is unchanged, so timing noise
alone never flips the form; the fresh measurement is still recorded (metadata
``graph_form_measured_choice``), and a changed graph takes the measured choice.

Backend: the model is loaded and checked on the Keras backend that trained it (param
``backend``; runs from before it existed trained on TensorFlow). One process runs one
backend, so one export call takes winners of one backend (``--backend`` picks when a store
holds both).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from suite.errors import UserError
from tracking import STATUS_TAG

PARITY_TOL = 1e-4  # max |ORT - Keras|, scaled by max(1, max |Keras output|)
LATENCY_BATCHES = (1, 16, 64, 256)  # the batch sizes graph forms and ORT vs Keras are timed at
FORM_PARITY_SHAPES = ((3, 41), (64, None))  # (batch, T) of every form's parity; None: trained T
FORM_TIE = 0.05  # worst-case ratios within 5 % of the best count as tied
FORM_REPEATS = 7  # timed samples per form and batch (each >= FORM_SAMPLE_S of calls)
FORM_SAMPLE_S = 0.002
FORM_RULE = (
    "min over forms of max over batches 1/16/64/256 of latency (the fastest of the timed "
    "samples) / the fastest form's; "
    "within 5% of the best: the first of native, scan, switch"
)
# metadata that holds measurements (different on every export): left out of content_sha256
MEASURED_META = ("graph_form_latency_ms", "graph_form_worst_ratio", "graph_form_measured_choice",
                 "graph_form_measured_switch")  # fmt: skip

# The registry's naming: the one owner of the format (``rnnbench infer --help`` prints it).
REGISTERED_NAME = "rnnbench-{task}-T{seq_len}"  # + Candidate.variant, e.g. -num_recall3
CHAMPION_ALIAS = "champion"  # moved to the latest export of each registered model
ONNX_SHA_TAG = "rnnbench.onnx_sha256"  # on a model version: content_sha256 of its ONNX
GRAPH_FORM_TAG = "rnnbench.graph_form"  # on the export run and the model version: the form
SWITCH_TAG = "rnnbench.graph_form_switch"  # on a model version of a switch: its label
# (and SOURCE_RUN_TAG, the training run it was exported from: together the reuse key)


def registered_name(task: str, seq_len: int, variant: str = "") -> str:
    """The registered model name of ``task`` at ``seq_len`` (``variant``: Candidate.variant).

    >>> registered_name("adding", 50), registered_name("copy", 50, "-num_recall3")
    ('rnnbench-adding-T50', 'rnnbench-copy-T50-num_recall3')
    """
    return REGISTERED_NAME.format(task=task, seq_len=seq_len) + variant


def champion_uri(task: str, seq_len: int, variant: str = "") -> str:
    """``models:/NAME@champion``, what ``rnnbench infer`` takes."""
    return f"models:/{registered_name(task, seq_len, variant)}@{CHAMPION_ALIAS}"


def registered_form(client, name: str, source_run: str) -> tuple[str, str, str | None] | None:
    """``(version, graph form, switch label)`` of the newest version of ``name`` exported from
    ``source_run`` (None if none, or it predates graph forms)."""
    from tracking import SOURCE_RUN_TAG

    own = [
        v
        for v in client.search_model_versions(f"name='{name}'")
        if v.tags.get(SOURCE_RUN_TAG) == source_run and v.tags.get(GRAPH_FORM_TAG)
    ]
    if not own:
        return None
    v = max(own, key=lambda v: int(v.version))
    return str(v.version), v.tags[GRAPH_FORM_TAG], v.tags.get(SWITCH_TAG)


def reusable_version(client, name: str, source_run: str, onnx_sha256: str) -> str | None:
    """The newest version of ``name`` exported from ``source_run`` with these ONNX bytes, if any."""
    from tracking import SOURCE_RUN_TAG

    same = [
        v
        for v in client.search_model_versions(f"name='{name}'")  # [] before the first export
        if v.tags.get(SOURCE_RUN_TAG) == source_run and v.tags.get(ONNX_SHA_TAG) == onnx_sha256
    ]
    return str(max(same, key=lambda v: int(v.version)).version) if same else None


@dataclass
class Candidate:
    run_id: str
    task: str
    seq_len: int
    cell: str
    clip: str
    status: str
    seconds_to_solve: float
    val_loss_ratio: float
    task_options: dict
    backend: str = "tensorflow"  # the Keras backend that trained the run
    optimizer: str = "adam"  # tracking.layout.optimizer_label of the run (the optimizer axis)

    @property
    def variant(self) -> str:
        """The task options that differ from their defaults, as a name suffix ('' for none),
        e.g. ``-num_recall3``: runs of different task variants never compete."""
        from tasks import canonical_options

        opts = canonical_options(self.task, self.task_options, every_default=True)
        return "".join(f"-{k}{v}" for k, v in sorted(opts.items()))


def candidates(tracking_uri: str, experiment: str) -> list[Candidate]:
    import mlflow

    from tracking import TRAINING_RUNS, all_runs

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(f"no experiment {experiment!r} at {tracking_uri}; train or sweep first.")
    out = []
    for r in all_runs(client, exp.experiment_id, TRAINING_RUNS):
        if r.info.status != "FINISHED":
            continue
        out.append(_candidate(r))
    return out


def _candidate(r) -> Candidate:
    from tracking.layout import optimizer_label, treatment_label

    p, m = r.data.params, r.data.metrics
    opts = {k[5:]: _parse(v) for k, v in p.items() if k.startswith("task.")}
    return Candidate(
        run_id=r.info.run_id,
        task=p["task"],
        seq_len=int(p["seq_len"]),
        cell=p["cell"],
        clip=treatment_label(p.get("clip", "none"), p.get("omega")),
        status=r.data.tags.get(STATUS_TAG, "unsolved"),
        seconds_to_solve=m.get("seconds_to_solve", math.inf),
        val_loss_ratio=m.get("val_loss_ratio", math.inf),
        task_options=opts,
        backend=p.get("backend", "tensorflow"),
        optimizer=optimizer_label(p.get("optimizer", "adam"), p.get("lr"), p.get("momentum")),
    )


def _parse(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(v, v)


def winners(
    cands: list[Candidate], task: str | None = None, seq_len: int | None = None
) -> list[Candidate]:
    groups: dict[tuple, list[Candidate]] = {}
    for c in cands:
        if (task is None or c.task == task) and (seq_len is None or c.seq_len == seq_len):
            groups.setdefault((c.task, c.seq_len, c.variant), []).append(c)
    out = []
    for key in sorted(groups):
        g = groups[key]
        solved = [c for c in g if c.status == "solved"]
        if solved:
            out.append(min(solved, key=lambda c: (c.seconds_to_solve, c.val_loss_ratio)))
        else:
            finite = [c for c in g if math.isfinite(c.val_loss_ratio)] or g
            out.append(min(finite, key=lambda c: c.val_loss_ratio))
    return out


def candidate_for_run(tracking_uri: str, run_id: str) -> Candidate:
    import mlflow

    try:
        run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
    except Exception:
        raise UserError(f"no run {run_id!r} at {tracking_uri}.") from None
    if "task" not in run.data.params:
        raise UserError(f"run {run_id} is not an rnnbench training run (no task param).")
    return _candidate(run)


def check_parity(model, session, task, seed: int = 0) -> dict:
    """Max |ORT - Keras| at batch 1 and 64 and two lengths, plus metric agreement."""
    from tasks import get_task

    other_T = max(task.min_seq_len, task.seq_len // 2 + 1) if task.seq_len > 2 else task.seq_len + 3
    rng = np.random.default_rng(seed)
    worst, worst_scaled, cases = 0.0, 0.0, []
    for T in (task.seq_len, other_T):
        t = get_task(task.name, seq_len=T, **task.options)
        for B in (1, 64):
            x, _ = t.generate(B, rng)
            ort_out = session.run(None, {"x": x})[0]
            keras_out = np.asarray(model(x, training=False))
            d = float(np.abs(ort_out - keras_out).max())
            scale = max(1.0, float(np.abs(keras_out).max()))
            worst, worst_scaled = max(worst, d), max(worst_scaled, d / scale)
            cases.append({"batch": B, "seq_len": T, "max_abs_diff": d})
    x, y = task.generate(512, rng)
    m_ort = task.evaluate(y, session.run(None, {"x": x})[0])
    m_keras = task.evaluate(y, np.asarray(model(x, training=False)))
    return {
        "parity_max_abs_diff": worst,
        "parity_ok": worst_scaled <= PARITY_TOL,
        "cases": cases,
        "ort_metrics": m_ort,
        "keras_metrics": m_keras,
        "ort_solved": task.solved(m_ort),
        "keras_solved": task.solved(m_keras),
        "metric_agrees": abs(m_ort["loss"] - m_keras["loss"])
        <= 1e-4 * max(1.0, abs(m_keras["loss"]))
        and task.solved(m_ort) == task.solved(m_keras),
    }


def measure_latency(
    model, session, task, repeats: int = 30, batches: tuple[int, ...] = LATENCY_BATCHES
) -> dict:
    """p50/p95 ms of onnxruntime and Keras (compiled) at each batch, and ``speedup_b{B}`` =
    Keras p50 / ORT p50."""
    from suite.core.backend import compiled_forward
    from suite.deploy.onnx_infer import time_call

    keras_fn = compiled_forward(model)
    out = {}
    for B in batches:
        x, _ = task.generate(B, np.random.default_rng(B))
        o50, o95 = time_call(lambda x=x: session.run(None, {"x": x}), repeats)
        k50, k95 = time_call(lambda x=x: keras_fn(x), repeats)
        out.update(
            {
                f"ort_p50_ms_b{B}": o50,
                f"ort_p95_ms_b{B}": o95,
                f"keras_p50_ms_b{B}": k50,
                f"keras_p95_ms_b{B}": k95,
                f"speedup_b{B}": k50 / o50,
            }
        )
    return out


def _session(proto):
    import onnxruntime as ort

    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def parity_cases(model, task, shapes=FORM_PARITY_SHAPES, seed: int = 1) -> list[dict]:
    """Fresh task data at each (batch, T) of ``shapes`` (T None: the trained T) and Keras'
    outputs on it, for :func:`form_parity`."""
    from tasks import get_task

    rng = np.random.default_rng(seed)
    cases = []
    for B, T in shapes:
        T = T or task.seq_len
        x, _ = get_task(task.name, seq_len=T, **task.options).generate(B, rng)
        cases.append({"batch": B, "seq_len": T, "x": x,
                      "keras": np.asarray(model(x, training=False))})  # fmt: skip
    return cases


def form_parity(session, cases: list[dict]) -> dict:
    """Max |ORT - Keras| of one graph over ``cases`` (:func:`parity_cases`); ``ok`` when every
    case is within ``PARITY_TOL`` (scaled by max(1, max |Keras output|))."""
    out, ok = [], True
    for c in cases:
        d = float(np.abs(session.run(None, {"x": c["x"]})[0] - c["keras"]).max())
        ok = ok and d / max(1.0, float(np.abs(c["keras"]).max())) <= PARITY_TOL
        out.append({"batch": c["batch"], "seq_len": c["seq_len"], "max_abs_diff": d})
    return {"max_abs_diff": max(c["max_abs_diff"] for c in out), "ok": bool(ok), "cases": out}


def time_forms(
    sessions: dict, task, batches: tuple[int, ...] = LATENCY_BATCHES,
    repeats: int = FORM_REPEATS, seed: int = 0,
) -> dict[str, dict[int, float]]:  # fmt: skip
    """ms per call of each form's onnxruntime session at each batch, at the task's T: the
    fastest of ``repeats`` samples.

    The forms are timed in turn within every repeat (form A, form B, A, B, ...), so a change
    in machine load hits all alike; a sample runs as many calls as fill ``FORM_SAMPLE_S``.
    The fastest sample, not the median: other work on the machine only ever adds time, and in
    one ``perf`` run a median put irnn's Scan graph at 0.43 ms at batch 1 (0.12-0.20 ms in
    every other measurement), which made the choice the native op, 4x slower at batch 64.
    """
    import time

    rng = np.random.default_rng(seed)
    out: dict[str, dict[int, float]] = {f: {} for f in sessions}
    for B in batches:
        x, _ = task.generate(B, rng)
        calls = {}
        for form, sess in sessions.items():
            for _ in range(2):  # warm up
                sess.run(None, {"x": x})
            t0 = time.perf_counter()
            sess.run(None, {"x": x})
            calls[form] = max(1, min(50, int(FORM_SAMPLE_S / max(time.perf_counter() - t0, 1e-6))))
        samples: dict[str, list[float]] = {f: [] for f in sessions}
        for _ in range(repeats):
            for form, sess in sessions.items():
                t0 = time.perf_counter()
                for _ in range(calls[form]):
                    sess.run(None, {"x": x})
                samples[form].append((time.perf_counter() - t0) / calls[form] * 1000.0)
        for form in sessions:
            out[form][B] = min(samples[form])
    return out


def worst_ratios(latency: dict[str, dict]) -> dict[str, float]:
    """Each form's worst ratio, over the batches every form was timed at, of its latency to
    the fastest form's at that batch (1.0: fastest at every batch)."""
    batches = set.intersection(*(set(by_b) for by_b in latency.values()))
    if not batches:
        raise ValueError("the forms share no timed batch size.")
    best = {b: min(by_b[b] for by_b in latency.values()) for b in batches}
    return {f: max(by_b[b] / best[b] for b in batches) for f, by_b in latency.items()}


def choose_form(latency: dict[str, dict], tie: float = FORM_TIE) -> tuple[str, dict[str, float]]:
    """The form to export and every form's worst-case ratio (:func:`worst_ratios`).

    Rule (``FORM_RULE``): the smallest worst-case ratio wins; forms within ``tie`` of it count
    as tied and the first of ``onnx_build.FORMS`` (native, scan, switch: the simplest graph)
    among them is chosen.

    >>> choose_form({"native": {1: 0.07, 64: 6.5}, "scan": {1: 0.09, 64: 0.66}})[0]
    'scan'
    """
    from suite.deploy.onnx_build import FORMS

    worst = worst_ratios(latency)
    best = min(worst.values())
    order = [f for f in FORMS if f in worst] + sorted(f for f in worst if f not in FORMS)
    return next(f for f in order if worst[f] <= best * (1.0 + tie)), worst


def derive_switch(latency: dict[str, dict]) -> tuple[str, int, str] | None:
    """The switch worth building from the native and scan timings, or ``None``.

    The form fastest at the smallest batch runs every batch up to the crossover, the other the
    rest; the crossover is the geometric mean of the last batch where the first form still won
    (in the run of batches from the smallest) and the next one. ``None`` when one form is
    fastest at every batch (a switch could only add its ``If``) or a form is missing.

    >>> derive_switch({"native": {1: 0.07, 16: 0.5, 64: 6.5}, "scan": {1: 0.09, 16: 0.6, 64: 0.66}})
    ('native', 32, 'scan')
    """
    if not {"native", "scan"} <= set(latency):
        return None
    batches = sorted(set(latency["native"]) & set(latency["scan"]))
    if not batches:
        return None

    def fastest(b):
        return min(("native", "scan"), key=lambda f: latency[f][b])

    low = fastest(batches[0])
    n = next((i for i, b in enumerate(batches) if fastest(b) != low), len(batches))
    if n == len(batches):
        return None
    high = "scan" if low == "native" else "native"
    return low, int(math.sqrt(batches[n - 1] * batches[n])), high


def measure_forms(model, cell: str, task, repeats: int = FORM_REPEATS) -> dict:
    """Build every graph form of ``model``, check each against Keras and time it; the choice.

    Returns a JSON-friendly record: ``measured`` (the form :func:`choose_form` picks, with
    ``switch``: its label or None), ``switch_tried`` (the switch built, if any),
    ``latency_ms`` {form: {batch: ms}} (fastest samples, 4 significant digits: the numbers the choice
    is made on), ``worst_ratio``, ``parity`` {form: :func:`form_parity`}, ``rule``. Forms
    failing parity are not timed (when all fail, all stay: the export's own check reports it).
    """
    from suite.deploy.onnx_build import build_onnx, graph_forms, switch_label

    forms = graph_forms(cell)
    cases = parity_cases(model, task)
    sessions, parity = {}, {}
    for form in (f for f in forms if f != "switch"):
        sessions[form] = _session(build_onnx(model, cell, task, form=form))
        parity[form] = form_parity(sessions[form], cases)
    eligible = {f: s for f, s in sessions.items() if parity[f]["ok"]} or sessions
    latency = time_forms(eligible, task, repeats=repeats)
    switch = derive_switch(latency) if "switch" in forms else None
    if switch:
        sw = _session(build_onnx(model, cell, task, form="switch", switch=switch))
        parity["switch"] = form_parity(sw, cases)
        if parity["switch"]["ok"]:  # time every form again, together
            latency = time_forms({**eligible, "switch": sw}, task, repeats=repeats)
    latency = {f: {b: float(f"{v:.4g}") for b, v in by_b.items()} for f, by_b in latency.items()}
    form, worst = choose_form(latency)
    label = switch_label(switch) if switch else None
    return {
        "measured": {"form": form, "switch": label if form == "switch" else None},
        "switch_tried": label if "switch" in latency else None,
        "latency_ms": latency,
        "worst_ratio": worst,
        "parity": parity,
        "rule": FORM_RULE,
    }


def graph_for(model, cell: str, task, metadata: dict | None, record: dict,
              form: str | None = None, switch: str | None = None):  # fmt: skip
    """The model in ``form`` (default: the measured choice of ``record``, :func:`measure_forms`)
    with the choice and the measurements in its metadata (module docstring)."""
    from suite.deploy.onnx_build import FORM_META, build_onnx, parse_switch_label

    if form is None:
        form, switch = record["measured"]["form"], record["measured"]["switch"]
    lat = record["latency_ms"]
    meta = {
        **(metadata or {}),
        FORM_META: form,
        "graph_form_rule": FORM_RULE,
        "graph_form_latency_ms": json.dumps({f: {str(b): v for b, v in by_b.items()}
                                             for f, by_b in lat.items()}),
        "graph_form_worst_ratio": json.dumps({f: round(r, 3)
                                              for f, r in record["worst_ratio"].items()}),
        "graph_form_measured_choice": record["measured"]["form"],
    }  # fmt: skip
    if record["switch_tried"]:
        meta["graph_form_measured_switch"] = record["switch_tried"]
    sw = parse_switch_label(switch) if form == "switch" else None
    return build_onnx(model, cell, task, meta, form=form, switch=sw)


def choose_graph(model, cell: str, task, metadata: dict | None = None, repeats: int = FORM_REPEATS):
    """``(proto, record)``: :func:`measure_forms`, then the measured choice's graph."""
    record = measure_forms(model, cell, task, repeats)
    record["form"], record["switch"] = record["measured"]["form"], record["measured"]["switch"]
    record["kept_from"] = None
    return graph_for(model, cell, task, metadata, record), record


def ops_label(result: dict) -> str:
    """The export table's ops column: the graph form and the op running the recurrence, e.g.
    ``native: RNN``, ``scan: Scan``, ``switch: GRU<=32<Scan`` (the native op up to batch 32)."""
    from suite.deploy.onnx_build import NATIVE_OPS, parse_switch_label

    form, cell = result["graph_form"], result["candidate"].cell
    op = {"native": NATIVE_OPS.get(cell, "?"), "scan": "Scan"}
    if form == "switch":
        low, k, high = parse_switch_label(result["forms"]["switch"])
        return f"switch: {op[low]}<={k}<{op[high]}"
    return f"{form}: {op[form]}" if form in op else form


def content_sha256(proto) -> str:
    """sha256 of the model's bytes without ``MEASURED_META`` (the registry's reuse key)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    kept = [(p.key, p.value) for p in copy.metadata_props if p.key not in MEASURED_META]
    del copy.metadata_props[:]
    for k, v in kept:
        copy.metadata_props.add(key=k, value=v)
    return hashlib.sha256(copy.SerializeToString()).hexdigest()


def _parity_ok(record: dict, form: str, switch: str | None) -> bool:
    """Whether ``form`` passed this measurement's parity check; a switch, whether both of its
    branches did (this measurement may not have tried a switch at all)."""
    from suite.deploy.onnx_build import parse_switch_label

    if form == "switch" and switch:
        low, _, high = parse_switch_label(switch)
        return all(record["parity"].get(f, {}).get("ok") for f in (low, high))
    return bool(record["parity"].get(form, {}).get("ok"))


def export_one(cand: Candidate, tracking_uri: str, experiment: str, out_dir: Path) -> dict:
    """Export, check, log and register one run; returns the checks for printing."""
    import mlflow
    import onnxruntime as ort

    from suite.core.backend import configure
    from suite.deploy.onnx_build import OPSET, graph_ops
    from tasks import get_task
    from tracking import (
        BACKEND_TAG,
        CELL_TAG,
        CLIP_TAG,
        KIND_TAG,
        SOURCE_RUN_TAG,
        TASK_TAG,
        WINNER_STATUS_TAG,
    )
    from tracking.logger import package_version

    configure(backend=cand.backend)
    import suite.core.ortho  # noqa: F401  (registers the ortho_rnn layer for load_model)
    import suite.core.transformer  # noqa: F401  (and the transformer's)

    task = get_task(cand.task, seq_len=cand.seq_len, **cand.task_options)
    mlflow.set_tracking_uri(tracking_uri)  # runs:/ URIs resolve through it
    try:
        model = mlflow.keras.load_model(f"runs:/{cand.run_id}/model")
    except Exception as e:
        raise UserError(
            f"run {cand.run_id} has no loadable Keras model ({type(e).__name__})."
        ) from None
    meta = {
        "task": cand.task,
        "seq_len": cand.seq_len,
        "cell": cand.cell,
        "clip": cand.clip,
        "optimizer": cand.optimizer,
        "run_id": cand.run_id,
        "status": cand.status,
        "rnnbench_version": package_version(),
        "task_options": json.dumps(task.options),
        "output_kind": task.output_kind,
        "input_dim": task.input_dim,
        "opset": OPSET,
    }
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name = registered_name(cand.task, cand.seq_len, cand.variant)
    forms = measure_forms(model, cand.cell, task)
    proto, version, forms["kept_from"] = None, None, None
    prior = registered_form(client, name, cand.run_id)
    if prior and _parity_ok(forms, prior[1], prior[2]):  # keep this run's registered form
        proto = graph_for(model, cand.cell, task, meta, forms, prior[1], prior[2])
        version = reusable_version(client, name, cand.run_id, content_sha256(proto))
    if version is not None:  # the same graph as before: noise in the timing churns no version
        forms["form"], forms["switch"], forms["kept_from"] = prior[1], prior[2], version
    else:  # first export of this run, or its graph changed: the measured choice
        forms["form"], forms["switch"] = forms["measured"]["form"], forms["measured"]["switch"]
        proto = graph_for(model, cand.cell, task, meta, forms)
    blob = proto.SerializeToString()
    sha = content_sha256(proto)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{cand.task}-T{cand.seq_len}-{cand.cell}.onnx"
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)  # never leave a half-written model behind
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    parity = check_parity(model, session, task)
    parity["forms"] = forms["parity"]  # every form's, at FORM_PARITY_SHAPES
    latency = measure_latency(model, session, task)
    ops = graph_ops(proto)  # subgraphs' too (a switch's branches)

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    exp = mlflow.set_experiment(experiment)
    version = reusable_version(client, name, cand.run_id, sha)
    reused = version is not None
    with mlflow.start_run(
        experiment_id=exp.experiment_id,
        run_name=f"export-{cand.task}-T{cand.seq_len}-{cand.cell}",
        tags={
            KIND_TAG: "export",
            SOURCE_RUN_TAG: cand.run_id,
            WINNER_STATUS_TAG: cand.status,
            TASK_TAG: cand.task,
            CELL_TAG: cand.cell,
            CLIP_TAG: cand.clip,
            BACKEND_TAG: cand.backend,
            GRAPH_FORM_TAG: forms["form"],
        },
    ) as run:
        mlflow.log_params(
            {"task": cand.task, "seq_len": cand.seq_len, "cell": cand.cell, "clip": cand.clip,
             "optimizer": cand.optimizer, "source_run": cand.run_id, "opset": OPSET, "ops": ",".join(ops),
             "graph_form": forms["form"], "graph_form_switch": forms["switch"] or "none"}
        )  # fmt: skip
        metrics = {
            "parity_max_abs_diff": parity["parity_max_abs_diff"],
            "parity_ok": float(parity["parity_ok"]),
            "metric_agrees": float(parity["metric_agrees"]),
            "ort_val_loss": parity["ort_metrics"]["loss"],
            "keras_val_loss": parity["keras_metrics"]["loss"],
            "ort_solved": float(parity["ort_solved"]),
            **latency,
            **{f"form_{f}_ms_b{b}": v for f, by_b in forms["latency_ms"].items()
               for b, v in by_b.items()},
            **{f"form_{f}_worst_ratio": v for f, v in forms["worst_ratio"].items()},
        }  # fmt: skip
        mlflow.log_metrics(metrics)
        mlflow.log_dict(parity, "parity.json")
        mlflow.log_dict(forms, "graph_forms.json")
        if not reused:  # the same run's unchanged ONNX keeps its version (no duplicate artifact)
            # the requirements named, not inferred: inference imports the model in a subprocess
            info = mlflow.onnx.log_model(
                proto, name="model", registered_model_name=name,
                pip_requirements=mlflow.onnx.get_default_pip_requirements(),
            )  # fmt: skip
            version = str(info.registered_model_version)
            client.set_model_version_tag(name, version, SOURCE_RUN_TAG, cand.run_id)
            client.set_model_version_tag(name, version, ONNX_SHA_TAG, sha)
            client.set_model_version_tag(name, version, GRAPH_FORM_TAG, forms["form"])
            if forms["switch"]:
                client.set_model_version_tag(name, version, SWITCH_TAG, forms["switch"])
        mlflow.set_tags(
            {"rnnbench.registered_model": f"{name}/{version}", "rnnbench.reused": str(reused)}
        )
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return {
        "candidate": cand,
        "path": path,
        "ops": ops,
        "graph_form": forms["form"],  # the chosen form (the model's graph_form metadata)
        "forms": forms,  # choose_graph's record: every form's latency, worst ratio, parity
        "parity": parity,
        "latency": latency,
        "registered": f"models:/{name}@{CHAMPION_ALIAS}",
        "version": version,
        "reused": reused,  # an existing version of the same run and ONNX, not a new one
        "onnx_sha256": sha,
        "export_run": run.info.run_id,
    }
