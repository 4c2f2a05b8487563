"""``rnnbench perf``: the suite's speed measured side by side with bare Keras and the hardware.

Every number is a ratio of two measurements taken in the same run (these machines are noisy):

- train steps/s of the suite's own loop (the traced step with its gradient diagnostics, data
  drawn from the task generator, window statistics read every ``eval_every`` steps) vs a bare
  ``model.fit`` on the same model and data; goal >= 1.0;
- achieved training FLOP/s (analytic count below) vs a dense float32 matmul measured with
  TensorFlow in the same process; goal >= 60 % for LSTM and GRU;
- time per step at T = 50, 100, 200, 400; goal t(400) / t(100) <= 4.2 (linear in T);
- peak RSS of a training process (``rnnbench train`` in a subprocess);
- inference latency at batch 1 and 64: onnxruntime (native-op export) vs Keras;
- sweep scaling: wall time of a small fixed grid with ``--workers 2`` vs ``--workers 1``; goal <= 0.6.

Two ceilings, measured in the same run, tell a miss of the code from a limit of the machine:

- the *recurrent matmul ceiling*: the three matmuls a training step must do per time step
  (``h @ W``, ``dz @ W^T``, ``h^T @ dz``, at the cell's shapes), alone in a ``tf.while_loop``
  of T steps, as a fraction of the dense peak. No per-step RNN on TensorFlow can beat it: the
  gate math, the loop's bookkeeping and the optimizer come on top;
- the *scaling bound*: train steps/s of one process using every core vs two concurrent
  processes with half the cores each (the sweep's thread split). It bounds the workers ratio
  when one worker already uses both cores (TensorFlow's intra- and inter-op pools).

Suite and ``fit`` are timed in alternating blocks (suite, fit, suite, fit, ...), so a change in
machine load hits both sides alike.

Analytic FLOPs of one train step (multiply-add = 2 FLOPs): the recurrent layer's matmuls are
``2 * B * T * g * H * (d + H)`` forward, with g = 1 (SimpleRNN), 3 (GRU), 4 (LSTM) gate blocks;
the backward pass costs twice the forward (gradients w.r.t. activations and weights), so a
step is ``3 * 2 * B * T * g * H * (d + H)`` plus the head (``3 * 2 * B * H * o`` per output
step); elementwise gate math is not counted (it is not matmul work).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GATES = {"simple_rnn": 1, "irnn": 1, "lstm": 4, "gru": 3}
GOALS = {"fit_ratio": 1.0, "peak_fraction": 0.60, "linear_400_100": 4.2, "workers_ratio": 0.6}
REF = {"batch": 64, "seq_len": 100, "hidden": 128, "task": "adding"}


def train_flops(
    cell: str, B: int, T: int, d: int, H: int, out: int = 1, out_steps: int = 1
) -> float:
    """Analytic FLOPs of one training step (see the module docstring)."""
    g = GATES[cell]
    return 3 * 2 * B * (T * g * H * (d + H) + out_steps * H * out)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Dense float32 matmul FLOP/s measured with TensorFlow (median of ``repeats``)."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((n, n), seed=(1, 2))
    b = tf.random.stateless_uniform((n, n), seed=(3, 4))
    f = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    f(a, b).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, b).numpy()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def recurrent_matmul_ceiling(cell: str, B: int, T: int, H: int, repeats: int = 5) -> float:
    """FLOP/s of a step's recurrent matmuls alone (see the module docstring), median of ``repeats``."""
    import tensorflow as tf

    g = GATES[cell]
    w = tf.random.stateless_uniform((H, g * H), seed=(5, 6)) * 0.01
    wt = tf.transpose(w)

    @tf.function
    def chain(h):
        def body(i, h, dw):
            z = tf.matmul(h, w)  # forward: B x H @ H x gH
            dh = tf.matmul(z, wt)  # backward, gradient w.r.t. h: B x gH @ gH x H
            dw = dw + tf.matmul(h, z, transpose_a=True)  # gradient w.r.t. W: H x B @ B x gH
            return i + 1, h + 1e-3 * dh, dw

        _, h, dw = tf.while_loop(lambda i, *_: i < T, body, [0, h, tf.zeros((H, g * H))])
        return tf.reduce_sum(h) + tf.reduce_sum(dw)

    h0 = tf.random.stateless_uniform((B, H), seed=(7, 8))
    chain(h0).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        chain(h0).numpy()
        times.append(time.perf_counter() - t0)
    return 3 * 2 * B * T * g * H * H / statistics.median(times)


def _suite_timer(cell: str, T: int, hidden: int = REF["hidden"], eval_every: int = 100):
    """Build the suite's traced step for one run; return ``time(steps) -> steps/s``."""
    from suite.models import build_model
    from suite.train import TrainConfig, _batches, _Stepper, make_loss, make_optimizer
    from tasks import get_task

    cfg = TrainConfig(task=REF["task"], seq_len=T, cell=cell, clip="global_clipnorm=1", hidden=hidden,
                      batch_size=REF["batch"])  # fmt: skip
    task = get_task(cfg.task, seq_len=T)
    model = build_model(cell, task, hidden=cfg.hidden, seed=0)
    stepper = _Stepper(model, task, make_optimizer(cfg), make_loss(task), cfg.clip_spec)
    data = _batches(task, cfg.batch_size, np.random.default_rng(0))
    for _ in range(10):  # trace + warm up
        stepper.train_step(*next(data))
    stepper.read_window()

    def timed(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            stepper.train_step(*next(data))  # data drawn as in a run: inside the timing
            if i % eval_every == 0:
                stepper.read_window()  # the host reads the diagnostics, as in a run
        return steps / (time.perf_counter() - t0)

    return timed


def _fit_timer(cell: str, T: int, steps: int):
    """A bare ``model.fit`` on the same model and kind of data; return ``time() -> steps/s``."""
    import keras

    from suite.backend import _stderr_captured
    from suite.models import build_model
    from tasks import get_task

    task = get_task(REF["task"], seq_len=T)
    model = build_model(cell, task, hidden=REF["hidden"], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss="mse")
    x, y = task.generate(REF["batch"] * steps, np.random.default_rng(0))
    fit = dict(batch_size=REF["batch"], verbose=0, shuffle=False)
    with _stderr_captured():  # grappler's harmless "E0000 tfg_optimizer_hook" lines on IRNN
        model.fit(x[: REF["batch"] * 10], y[: REF["batch"] * 10], **fit)  # trace + warm up

    def timed() -> float:
        t0 = time.perf_counter()
        model.fit(x, y, epochs=1, **fit)
        return steps / (time.perf_counter() - t0)

    return timed


def suite_steps_per_second(
    cell: str, T: int, steps: int, repeats: int, hidden: int = REF["hidden"]
) -> float:
    """Steady-state steps/s of the suite's loop (traced once, warmed up, then timed; median)."""
    timed = _suite_timer(cell, T, hidden)
    return statistics.median(timed(steps) for _ in range(repeats))


def suite_vs_fit(cell: str, T: int, steps: int, repeats: int) -> dict:
    """Steps/s of the suite's loop and of bare ``fit``, timed in alternating blocks.

    Returns the medians and the suite/fit ratio of each block pair (its spread shows the noise).
    """
    suite, fit = _suite_timer(cell, T), _fit_timer(cell, T, steps)
    rates = [(suite(steps), fit()) for _ in range(repeats)]
    return {
        "suite_steps_s": statistics.median(r[0] for r in rates),
        "fit_steps_s": statistics.median(r[1] for r in rates),
        "block_ratios": [r[0] / r[1] for r in rates],
    }


def peak_rss_mb(cell: str, steps: int) -> float:
    """Peak RSS (MB) of ``rnnbench train`` at the reference config, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "suite.cli", "train", "--task", REF["task"], "--seq-len", str(REF["seq_len"]),
               "--cell", cell, "--hidden", str(REF["hidden"]), "--max-steps", str(steps), "--eval-every",
               str(min(100, steps)), "--tracking-uri", f"sqlite:///{tmp}/perf.db"]  # fmt: skip
        env = {**os.environ, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(cmd, capture_output=True, env=env, check=True, cwd=tmp)
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0  # Linux reports KiB


def inference_latency(cell: str) -> dict:
    import onnxruntime as ort

    from suite.export import measure_latency
    from suite.models import build_model
    from suite.onnx_build import build_onnx
    from tasks import get_task

    task = get_task(REF["task"], seq_len=REF["seq_len"])
    model = build_model(cell, task, hidden=REF["hidden"], seed=0)
    sess = ort.InferenceSession(
        build_onnx(model, cell, task, {}).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return measure_latency(model, sess, task, repeats=30)


SCALING_GRID = """
name = "perf-scaling"
tasks = ["adding"]
seq_lens = [50]
cells = ["simple_rnn", "gru"]
clips = ["none", "global_clipnorm=1"]
seeds = [0]
[train]
hidden = 64
batch_size = 64
max_steps = {steps}
eval_every = 100
"""


SCALING_CELLS, SCALING_T, SCALING_HIDDEN = ("simple_rnn", "gru"), 50, 64  # the grid's runs


def _rate_processes(cell: str, threads: int, count: int, steps: int, repeats: int) -> float:
    """Total train steps/s of ``count`` concurrent processes, each with ``threads`` threads.

    Each process warms up, says ``ready`` and waits; all start timing together on ``go``.
    """
    cmd = [
        sys.executable,
        "-m",
        "suite.perf",
        "--rate",
        cell,
        str(threads),
        str(steps),
        str(repeats),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(count)]  # fmt: skip
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"perf rate process failed: {' '.join(cmd)}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return sum(float(p.communicate()[0]) for p in procs)


def scaling_bound(steps: int, repeats: int) -> dict:
    """The workers ratio the machine allows for the scaling grid's compute (module docstring)."""
    cores = os.cpu_count() or 1
    alone = {c: _rate_processes(c, cores, 1, steps, repeats) for c in SCALING_CELLS}
    pair = {c: _rate_processes(c, max(1, cores // 2), 2, steps, repeats) for c in SCALING_CELLS}
    # the grid runs the same number of steps per cell: wall ~ sum of steps / rate
    bound = sum(1 / pair[c] for c in SCALING_CELLS) / sum(1 / alone[c] for c in SCALING_CELLS)
    return {"alone_steps_s": alone, "pair_steps_s": pair, "bound": bound}


def _rate_main(cell: str, threads: int, steps: int, repeats: int) -> None:
    """Child of :func:`_rate_processes`: one training loop at the scaling grid's config."""
    from suite.backend import configure

    configure(threads=threads)
    timed = _suite_timer(cell, SCALING_T, SCALING_HIDDEN)
    print("ready", flush=True)
    sys.stdin.readline()
    print(statistics.median(timed(steps) for _ in range(repeats)), flush=True)


def sweep_wall(workers: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "grid.toml"
        spec.write_text(SCALING_GRID.format(steps=steps))
        cmd = [sys.executable, "-m", "suite.cli", "sweep", str(spec), "--workers", str(workers),
               "--tracking-uri", f"sqlite:///{tmp}/s.db"]  # fmt: skip
        env = {**os.environ, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True, cwd=tmp)
        return time.perf_counter() - t0


def run_perf(cells: list[str], quick: bool, device: str = "auto", progress=None) -> dict:
    """Run every measurement; returns the JSON-friendly results with goals and misses."""
    from suite.backend import configure

    dev = configure(device=device)
    steps, repeats = (60, 2) if quick else (200, 5)
    lengths = (50, 100, 200, 400)
    say = progress or (lambda msg: None)
    out: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {dev['device_name']}",
        "date": time.strftime("%Y-%m-%d"),
        "quick": quick,
        "reference": REF,
        "goals": GOALS,
        "cells": {},
    }
    say("dense matmul peak")
    peak = matmul_peak(2048, 3 if quick else 5)  # 1024 reads ~25 % lower here
    out["matmul_peak_gflops"] = peak / 1e9
    for cell in cells:
        r: dict = {}
        say(f"{cell}: suite loop vs model.fit")
        r.update(suite_vs_fit(cell, REF["seq_len"], steps, repeats))
        r["fit_ratio"] = r["suite_steps_s"] / r["fit_steps_s"]
        flops = train_flops(cell, REF["batch"], REF["seq_len"], 2, REF["hidden"])
        r["train_gflops"] = flops * r["suite_steps_s"] / 1e9
        r["peak_fraction"] = r["train_gflops"] * 1e9 / peak
        say(f"{cell}: recurrent matmul ceiling")
        ceiling = recurrent_matmul_ceiling(cell, REF["batch"], REF["seq_len"], REF["hidden"])
        r["ceiling_fraction"] = ceiling / peak
        say(f"{cell}: time per step vs T")
        r["ms_per_step"] = {
            T: 1000.0 / (r["suite_steps_s"] if T == REF["seq_len"] else suite_steps_per_second(cell, T, max(20, steps // 2), repeats))
            for T in lengths
        }  # fmt: skip
        r["linear_400_100"] = r["ms_per_step"][400] / r["ms_per_step"][100]
        say(f"{cell}: peak RSS of a training process")
        r["peak_rss_mb"] = peak_rss_mb(cell, 50 if quick else 200)
        say(f"{cell}: inference latency, onnxruntime vs Keras")
        r["latency"] = inference_latency(cell)
        out["cells"][cell] = r
    say("sweep scaling: --workers 1 vs 2")
    s_steps = 300 if quick else 1000  # enough work per run that start-up does not dominate
    w1, w2 = sweep_wall(1, s_steps), sweep_wall(2, s_steps)
    say("sweep scaling: one training process alone vs two at once")
    bound = scaling_bound(100 if quick else 200, 3)
    out["sweep"] = {
        "workers1_s": w1,
        "workers2_s": w2,
        "workers_ratio": w2 / w1,
        "compute_bound": bound["bound"],
        "bound_detail": bound,
        "grid": f"4 configs, adding T={SCALING_T}, hidden {SCALING_HIDDEN}, {s_steps} steps each",
    }
    return out


def _mark(value: float, goal: float, higher_is_better: bool) -> str:
    ok = value >= goal if higher_is_better else value <= goal
    return "ok" if ok else "MISS"


def to_markdown(res: dict) -> str:
    g = res["goals"]
    lines = [
        f"rnnbench perf ({'quick' if res['quick'] else 'full'}) — {res['machine']}, {res['date']}; "
        f"reference: batch {REF['batch']}, T = {REF['seq_len']}, hidden {REF['hidden']}, adding task. "
        f"Dense matmul peak (TensorFlow, float32): {res['matmul_peak_gflops']:.0f} GFLOP/s.",
        "",
        "| cell | suite steps/s | fit steps/s | suite/fit (goal >= 1.0) | GFLOP/s | of peak (goal >= 60 % LSTM/GRU) "
        "| matmul ceiling | ms/step T=50/100/200/400 | t(400)/t(100) (goal <= 4.2) | peak RSS MB | ORT/Keras b1 "
        "| ORT/Keras b64 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, r in res["cells"].items():
        gated = cell in ("lstm", "gru")
        peak_mark = _mark(r["peak_fraction"], g["peak_fraction"], True) if gated else "n/a"
        blocks = r.get("block_ratios") or []
        spread = f" ({min(blocks):.2f}-{max(blocks):.2f})" if len(blocks) > 1 else ""
        ms = "/".join(f"{r['ms_per_step'][T]:.1f}" for T in sorted(r["ms_per_step"], key=int))
        lines.append(
            f"| {cell} | {r['suite_steps_s']:.1f} | {r['fit_steps_s']:.1f} | {r['fit_ratio']:.2f} "
            f"{_mark(r['fit_ratio'], g['fit_ratio'], True)}{spread} | {r['train_gflops']:.1f} | {r['peak_fraction']:.0%} {peak_mark} "
            f"| {r['ceiling_fraction']:.0%} | {ms} | {r['linear_400_100']:.2f} {_mark(r['linear_400_100'], g['linear_400_100'], False)} "
            f"| {r['peak_rss_mb']:.0f} | {r['latency']['speedup_b1']:.1f}x | {r['latency']['speedup_b64']:.1f}x |"
        )
    s = res["sweep"]
    lines += [
        "",
        f"Sweep scaling ({s['grid']}): --workers 1 {s['workers1_s']:.1f} s, --workers 2 {s['workers2_s']:.1f} s, "
        f"ratio {s['workers_ratio']:.2f} (goal <= 0.6) {_mark(s['workers_ratio'], g['workers_ratio'], False)}; "
        f"compute bound on this machine {s['compute_bound']:.2f} (one training process using every core vs "
        "two at once with half each, same run).",
        "",
        "Matmul ceiling: the recurrent matmuls of a training step alone (forward, and both backward "
        "products, in a loop of T steps) as a fraction of the same peak; no per-step RNN can exceed it. "
        "Suite and fit are timed in alternating blocks; suite/fit is the ratio of the medians, with "
        "the range of the per-block ratios in brackets.",
    ]
    return "\n".join(lines)


def save_and_log(res: dict, out_dir: Path, tracking_uri: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "perf.json").write_text(json.dumps(res, indent=2, default=str))
    md = to_markdown(res)
    (out_dir / "perf.md").write_text(md + "\n")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("rnnbench-perf")
    with mlflow.start_run(run_name=f"perf-{'quick' if res['quick'] else 'full'}-{res['date']}"):
        mlflow.log_params(
            {
                "machine": res["machine"],
                "quick": res["quick"],
                **{f"ref_{k}": v for k, v in REF.items()},
            }
        )
        metrics = {
            "matmul_peak_gflops": res["matmul_peak_gflops"],
            "sweep_workers_ratio": res["sweep"]["workers_ratio"],
            "sweep_compute_bound": res["sweep"]["compute_bound"],
        }
        for cell, r in res["cells"].items():
            for k in (
                "suite_steps_s",
                "fit_steps_s",
                "fit_ratio",
                "train_gflops",
                "peak_fraction",
                "ceiling_fraction",
                "linear_400_100",
                "peak_rss_mb",
            ):
                metrics[f"{cell}_{k}"] = r[k]
            metrics[f"{cell}_ort_speedup_b1"] = r["latency"]["speedup_b1"]
            metrics[f"{cell}_ort_speedup_b64"] = r["latency"]["speedup_b64"]
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(out_dir), "perf")
    return out_dir / "perf.md"


if __name__ == "__main__":  # python -m suite.perf --rate CELL THREADS STEPS REPEATS (internal)
    if len(sys.argv) == 6 and sys.argv[1] == "--rate":
        _rate_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(
            "usage: python -m suite.perf --rate CELL THREADS STEPS REPEATS (use `rnnbench perf`)"
        )
