"""Export winners to ONNX, check them in onnxruntime, register them in MLflow.

Winner per task@T: among ``solved`` runs the smallest ``seconds_to_solve`` (tie: lowest
val loss ratio); when none solved, the lowest ``val_loss_ratio``, exported but flagged
``unsolved`` (in the file's metadata, the export run's tags and the printed table).

Checks (printed and logged on the export run): ``onnx.checker``; parity against Keras on
fresh task data at batch 1 and 64 and at two lengths (trained T and another); the task
metric recomputed from onnxruntime outputs vs Keras'; latency p50/p95 at batch 1 and 64,
onnxruntime vs Keras (a traced ``tf.function`` or a ``jax.jit``) in the same process.

Registry: every export registers its ONNX as a version of ``rnnbench-{task}-T{seq_len}`` (plus
the task variant's options, e.g. ``-num_recall3``; :func:`registered_name` owns the format) and
moves the alias ``champion`` to it. Re-exporting the same training run reuses its version when
the ONNX bytes are unchanged (the version's tags hold the training run id and the ONNX's
sha256), so one run never piles up versions; a different run, or a changed ONNX, gets a new one.

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

# The registry's naming: the one owner of the format (``rnnbench infer --help`` prints it).
REGISTERED_NAME = "rnnbench-{task}-T{seq_len}"  # + Candidate.variant, e.g. -num_recall3
CHAMPION_ALIAS = "champion"  # moved to the latest export of each registered model
ONNX_SHA_TAG = "rnnbench.onnx_sha256"  # on a model version: sha256 of its ONNX bytes
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


def measure_latency(model, session, task, repeats: int = 30) -> dict:
    from suite.core.backend import compiled_forward
    from suite.deploy.onnx_infer import time_call

    keras_fn = compiled_forward(model)
    out = {}
    for B in (1, 64):
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


def export_one(cand: Candidate, tracking_uri: str, experiment: str, out_dir: Path) -> dict:
    """Export, check, log and register one run; returns the checks for printing."""
    import mlflow
    import onnxruntime as ort

    from suite.core.backend import configure
    from suite.deploy.onnx_build import OPSET, build_onnx
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
    proto = build_onnx(model, cand.cell, task, meta)
    blob = proto.SerializeToString()
    sha = hashlib.sha256(blob).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{cand.task}-T{cand.seq_len}-{cand.cell}.onnx"
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)  # never leave a half-written model behind
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    parity = check_parity(model, session, task)
    latency = measure_latency(model, session, task)
    ops = sorted({n.op_type for n in proto.graph.node})

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    exp = mlflow.set_experiment(experiment)
    client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name = registered_name(cand.task, cand.seq_len, cand.variant)
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
        },
    ) as run:
        mlflow.log_params(
            {"task": cand.task, "seq_len": cand.seq_len, "cell": cand.cell, "clip": cand.clip,
             "optimizer": cand.optimizer, "source_run": cand.run_id, "opset": OPSET, "ops": ",".join(ops)}
        )  # fmt: skip
        metrics = {
            "parity_max_abs_diff": parity["parity_max_abs_diff"],
            "parity_ok": float(parity["parity_ok"]),
            "metric_agrees": float(parity["metric_agrees"]),
            "ort_val_loss": parity["ort_metrics"]["loss"],
            "keras_val_loss": parity["keras_metrics"]["loss"],
            "ort_solved": float(parity["ort_solved"]),
            **latency,
        }
        mlflow.log_metrics(metrics)
        mlflow.log_dict(parity, "parity.json")
        if not reused:  # the same run's unchanged ONNX keeps its version (no duplicate artifact)
            info = mlflow.onnx.log_model(proto, name="model", registered_model_name=name)
            version = str(info.registered_model_version)
            client.set_model_version_tag(name, version, SOURCE_RUN_TAG, cand.run_id)
            client.set_model_version_tag(name, version, ONNX_SHA_TAG, sha)
        mlflow.set_tags(
            {"rnnbench.registered_model": f"{name}/{version}", "rnnbench.reused": str(reused)}
        )
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return {
        "candidate": cand,
        "path": path,
        "ops": ops,
        "parity": parity,
        "latency": latency,
        "registered": f"models:/{name}@{CHAMPION_ALIAS}",
        "version": version,
        "reused": reused,  # an existing version of the same run and ONNX, not a new one
        "onnx_sha256": sha,
        "export_run": run.info.run_id,
    }
