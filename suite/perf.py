"""``rnnbench perf``: the suite's speed measured side by side with bare Keras and the hardware.

Every number is a ratio of two measurements taken in the same run (these machines are noisy):

- train steps/s of the suite's own loop (the traced step with its gradient diagnostics, data
  drawn from the task generator, window statistics read every ``eval_every`` steps) vs a bare
  ``model.fit`` on the same model and data; goal >= 1.0;
- achieved training FLOP/s (analytic count below) vs a dense float32 matmul measured with
  TensorFlow in the same process; goal >= 60 % for LSTM and GRU;
- time per step at T = 50, 100, 200, 400; goal t(400) / t(100) <= 4.2 (linear in T);
- peak RSS of a training process (``rnnbench train`` in a subprocess);
- inference latency at batch 1, 16, 64 and 256: onnxruntime (the graph form the exporter's
  measurement picks per cell: native op, Scan or a switch between them) vs Keras on the backend
  that built the model and, where installed, the other backend (its own process, timing the same
  ONNX file next to it); goal >= 1.0 (ORT faster) at every batch;
- sweep scaling: wall time of a small fixed grid with ``--workers 2`` vs ``--workers 1``; goal:
  below 1 and within 0.05 of the bound for the whole sweep (below).

Two ceilings, measured in the same run, tell a miss of the code from a limit of the machine:

- the *recurrent matmul ceiling*: the three matmuls a training step must do per time step
  (``h @ W``, ``dz @ W^T``, ``h^T @ dz``, at the cell's shapes), alone in a ``tf.while_loop``
  of T steps, as a fraction of the dense peak. No per-step RNN on TensorFlow can beat it: the
  gate math, the loop's bookkeeping and the optimizer come on top;
- the *scaling bound*: train steps/s of one process using every core vs two concurrent
  processes with half the cores each (the sweep's thread split and, on JAX, its pinning). It
  bounds the workers ratio of the runs themselves when one worker already uses both cores
  (TensorFlow's intra- and inter-op pools, XLA's thread pool). The *bound for the whole sweep*
  applies it to the runs' part of the ``--workers 1`` wall only (``sweep_bound``): start-up
  before the first run (imports, the store, the parent run) and the finish after the last, read
  from the store the sweep wrote, do not shrink with workers (Amdahl's law). A full run measures
  three rounds of both sweeps and the bound and quotes the round with the median gap
  (``sweep_scaling``): one round's gap moved by 0.1 between rounds on one idle evening.

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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# recurrent matmuls per step, in units of H x H (ortho_rnn: one; its Cayley solve, once per
# forward pass, is O(H^3) against the recurrence's O(B T H^2) and is not counted; transformer:
# no recurrence, but its per-position weight matmuls, 16 d_model^2 = 4 H^2, match an LSTM's
# 4 gates; its attention products, O(T^2) per sequence, are not counted)
GATES = {"simple_rnn": 1, "irnn": 1, "relu_rnn": 1, "leaky_rnn": 1, "sigmoid_rnn": 1,
         "ortho_rnn": 1, "lstm": 4, "chrono_lstm": 4, "gru": 3, "transformer": 4}  # fmt: skip
# workers_margin: --workers 2 / --workers 1 at most this much above the bound this machine
# allows (``sweep_bound``), and below 1 (the default, one worker per core, is the faster choice)
GOALS = {"fit_ratio": 1.0, "peak_fraction": 0.60, "linear_400_100": 4.2, "workers_margin": 0.05}
REF = {"batch": 64, "seq_len": 100, "hidden": 128, "task": "adding"}


def train_flops(
    cell: str, B: int, T: int, d: int, H: int, out: int = 1, out_steps: int = 1
) -> float:
    """Analytic FLOPs of one training step (see the module docstring)."""
    g = GATES[cell]
    return 3 * 2 * B * (T * g * H * (d + H) + out_steps * H * out)


def _median_seconds(fn, repeats: int) -> float:
    fn()  # trace / compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Dense float32 matmul FLOP/s measured with the active backend (median of ``repeats``)."""
    from suite.core.backend import active_backend

    if active_backend() == "jax":
        import jax
        import jax.numpy as jnp

        a = jax.random.uniform(jax.random.key(1), (n, n))
        b = jax.random.uniform(jax.random.key(2), (n, n))
        f = jax.jit(lambda a, b: jnp.sum(a @ b))
        return 2 * n**3 / _median_seconds(lambda: f(a, b).block_until_ready(), repeats)
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
    from suite.core.backend import active_backend

    g = GATES[cell]
    if active_backend() == "jax":
        import jax
        import jax.numpy as jnp

        w = jax.random.uniform(jax.random.key(5), (H, g * H)) * 0.01

        @jax.jit
        def jchain(h):
            def body(i, carry):
                h, dw = carry
                z = h @ w  # forward: B x H @ H x gH
                dh = z @ w.T  # backward, gradient w.r.t. h
                return h + 1e-3 * dh, dw + h.T @ z  # gradient w.r.t. W

            h, dw = jax.lax.fori_loop(0, T, body, (h, jnp.zeros((H, g * H))))
            return jnp.sum(h) + jnp.sum(dw)

        h0 = jax.random.uniform(jax.random.key(7), (B, H))
        seconds = _median_seconds(lambda: jchain(h0).block_until_ready(), repeats)
        return 3 * 2 * B * T * g * H * H / seconds
    import tensorflow as tf

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


def _suite_timer(
    cell: str, T: int, hidden: int = REF["hidden"], eval_every: int = 100, warmup: int = 10
):
    """Build the suite's compiled step for one run; return ``time(steps) -> steps/s``."""
    from suite.core.backend import configure
    from suite.core.models import build_model
    from suite.core.steps import make_stepper
    from suite.core.train import TrainConfig, _batches, make_loss, make_optimizer
    from tasks import get_task

    backend = configure()["backend"]
    cfg = TrainConfig(task=REF["task"], seq_len=T, cell=cell, clip="global_clipnorm=1", hidden=hidden,
                      batch_size=REF["batch"], backend=backend)  # fmt: skip
    task = get_task(cfg.task, seq_len=T)
    model = build_model(cell, task, hidden=cfg.hidden, seed=0)
    stepper = make_stepper(
        backend, model, task, make_optimizer(cfg), make_loss(task), cfg.clip_spec
    )
    data = _batches(task, cfg.batch_size, np.random.default_rng(0))
    for _ in range(warmup):  # trace + warm up
        stepper.train_step(*next(data))
    stepper.read_window()

    def timed(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            stepper.train_step(*next(data))  # data drawn as in a run: inside the timing
            if i % eval_every == 0:
                stepper.read_window()  # the host reads the diagnostics, as in a run
        stepper.sync()
        return steps / (time.perf_counter() - t0)

    return timed


def _fit_timer(cell: str, T: int, steps: int):
    """A bare ``model.fit`` on the same model and kind of data; return ``time() -> steps/s``."""
    import keras

    from suite.core.backend import _stderr_captured
    from suite.core.models import build_model
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


def ms_per_step_by_T(
    cell: str, lengths, steps: int, repeats: int, hidden: int = REF["hidden"]
) -> dict:
    """``{str(T): ms per train step}`` of the suite's loop at each T, timed in alternating
    blocks (T1, T2, ..., T1, T2, ...; median of ``repeats`` blocks each), so a change in machine
    load hits every length alike, as suite and ``fit`` are timed.

    Measured before, one T after another, simple_rnn's t(400)/t(100) read 3.91 in one run and
    4.50 in the next on an otherwise idle machine (2026-12-04): a slow minute landed on one T.
    """
    timers = {T: _suite_timer(cell, T, hidden) for T in lengths}
    rates: dict = {T: [] for T in lengths}
    for _ in range(repeats):
        for T, timed in timers.items():
            rates[T].append(timed(steps))
    return {str(T): 1000.0 / statistics.median(r) for T, r in rates.items()}


ATTENTION_CELL = "transformer"
ATTENTION_LENGTHS = (100, 200, 400, 1000)
ATTENTION_HIDDEN = 64  # the transformer's parameters match the LSTM's at this size (17.3k, 17.2k)


def attention_cost(
    lengths=ATTENTION_LENGTHS,
    steps: int = 5,
    cells=("lstm", "transformer"),
    not_measured: dict | None = None,
) -> dict:
    """What attention costs as T grows (claim 13's price): train steps/s of the suite's loop
    for the transformer and the LSTM at equal size (hidden 64, adding, batch 64) at each T;
    a recurrence's step time is linear in T, attention's has a T² term.

    Each cell runs in a child process on this process's backend and device, one T after
    another, each rate sent back as soon as it is measured. The transformer's T = 1000 step
    holds about 16 GiB at batch 64 (2026-12-04): a child killed for memory, or failing, loses
    only its remaining lengths, and the run goes on.

    Args:
        lengths: the input lengths, shortest first.
        steps: timed train steps per length (after 2 warm-up steps).
        cells: the cells to measure.
        not_measured: when given, filled with ``{cell: why}`` for each cell that lacks a length.

    Returns:
        ``{cell: {T: steps/s, or None where it was not measured}}``.

    Example:
        >>> cost = attention_cost(lengths=(8, 16), steps=2)  # doctest: +SKIP
        >>> sorted(cost["transformer"])
        ['16', '8']
    """
    from suite.core.backend import configure

    dev = configure()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": dev["backend"]}
    out: dict = {}
    for cell in cells:
        cmd = [sys.executable, "-m", "suite.perf", "--attention", cell, dev["device"], str(steps),
               *(str(T) for T in lengths)]  # fmt: skip
        child = subprocess.run(cmd, capture_output=True, text=True, env=env)
        got = dict(json.loads(line) for line in child.stdout.splitlines() if line.startswith("["))
        out[cell] = {str(T): got.get(str(T)) for T in lengths}
        if child.returncode != 0 and not_measured is not None:
            missing = ", ".join(str(T) for T in lengths if got.get(str(T)) is None)
            last = (child.stderr.strip().splitlines() or [f"exit {child.returncode}"])[-1]
            why = (
                "killed by the system (out of memory?)"
                if child.returncode == -9
                else f"failed: {last}"
            )
            not_measured[cell] = f"T = {missing}: {why}"
    return out


def _attention_main(cell: str, device: str, steps: int, lengths: list[str]) -> None:
    """Child of :func:`attention_cost`: one line ``[T, steps/s]`` per length, as measured."""
    from suite.core.backend import configure, release_freed_memory

    configure(device=device)
    for T in lengths:
        timed = _suite_timer(cell, int(T), ATTENTION_HIDDEN, warmup=2)
        print(json.dumps([T, timed(steps)]), flush=True)
        del timed  # the model and its compiled step: their heap goes back before the next T
        release_freed_memory()


def attention_lengths(quick: bool) -> tuple[int, ...]:
    """The lengths the attention section measures (--quick: up to 400)."""
    return ATTENTION_LENGTHS[:3] if quick else ATTENTION_LENGTHS


def attention_markdown(cost: dict, not_measured: dict | None = None) -> list[str]:
    """The attention-cost table: steps/s per T, and t(T_max)/t(T_min) (linear: T_max/T_min);
    a length not measured shows as "—", with the reason (``not_measured``) under the table."""
    cells = list(cost)
    Ts = list(next(iter(cost.values())))
    lo, hi = Ts[0], Ts[-1]
    lines = [
        "",
        f"Attention cost (train steps/s of the suite's loop; adding, batch {REF['batch']}, hidden "
        f"{ATTENTION_HIDDEN}, where the transformer has about the LSTM's parameters; "
        f"t({hi})/t({lo}) is {int(hi) // int(lo)} for a step time linear in T):",
        "",
        "| cell | " + " | ".join(f"T = {T}" for T in Ts) + f" | t({hi})/t({lo}) |",
        "|---|" + "---|" * (len(Ts) + 1),
    ]
    for cell in cells:
        r = cost[cell]
        ratio = f"{r[lo] / r[hi]:.1f}" if r[lo] and r[hi] else "—"
        lines.append(f"| {cell} | " + " | ".join("—" if r[T] is None else f"{r[T]:.2f}" for T in Ts)
                     + f" | {ratio} |")  # fmt: skip
    for cell, why in (not_measured or {}).items():
        lines.append(f"\n{cell} not measured at {why}")
    return lines


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


def _active() -> str:
    from suite.core.backend import configure

    return configure()["backend"]


def peak_rss_mb(cell: str, steps: int) -> float:
    """Peak RSS (MB) of ``rnnbench train`` at the reference config, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "suite.cli", "train", "--task", REF["task"], "--seq-len", str(REF["seq_len"]),
               "--cell", cell, "--hidden", str(REF["hidden"]), "--max-steps", str(steps), "--eval-every",
               str(min(100, steps)), "--tracking-uri", f"sqlite:///{tmp}/perf.db", "--backend", _active()]  # fmt: skip
        env = {**os.environ, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not a running max
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(
                f"perf: {' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}"
            )
    return usage.ru_maxrss / 1024.0  # Linux reports KiB


ORT_GOAL = 1.0  # Keras p50 / onnxruntime p50 at every batch of LATENCY_BATCHES
ORT_B1_GOAL = 4.0  # ... and at batch 1 (a served model's usual call)


def inference_latency(cell: str, onnx_path: Path | None = None, repeats: int = 30) -> dict:
    """ORT vs Keras (the active backend) at batch 1, 16, 64, 256 for the reference model, in the
    graph form the exporter's measurement picks (``suite.deploy.export.choose_graph``).

    Returns ``measure_latency``'s p50/p95 and ``speedup_b{B}``, plus ``graph_form`` (its label,
    e.g. ``switch native<=32<scan``), ``form_latency_ms`` (the choice's timings per form) and
    ``backend``; writes the chosen ONNX to ``onnx_path`` when given (for
    :func:`other_backend_latency`).
    """
    import onnxruntime as ort

    from suite.core.models import build_model
    from suite.deploy.export import LATENCY_BATCHES, choose_graph, measure_latency
    from tasks import get_task

    task = get_task(REF["task"], seq_len=REF["seq_len"])
    model = build_model(cell, task, hidden=REF["hidden"], seed=0)
    proto, record = choose_graph(model, cell, task, {})
    blob = proto.SerializeToString()
    if onnx_path is not None:
        onnx_path.write_bytes(blob)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    out = measure_latency(model, sess, task, repeats=repeats, batches=LATENCY_BATCHES)
    out["graph_form"] = record["form"] + (f" {record['switch']}" if record["switch"] else "")
    out["form_latency_ms"] = {f: {str(b): v for b, v in by_b.items()}
                              for f, by_b in record["latency_ms"].items()}  # fmt: skip
    out["backend"] = _active()
    return out


def other_backend_latency(onnx_paths: dict[str, Path], repeats: int = 30) -> dict:
    """``{backend: {cell: measure_latency}}`` on every installed backend but the active one:
    one child process per backend builds each reference model (the same numpy-drawn weights)
    and times its Keras forward next to the ONNX file ``onnx_paths[cell]``."""
    out = {}
    for b in installed_backends():
        if b == _active() or not onnx_paths:
            continue
        cmd = [sys.executable, "-m", "suite.perf", "--keras-latency", b, str(repeats),
               *(f"{c}={p}" for c, p in onnx_paths.items())]  # fmt: skip
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": b}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"perf: ONNX latency on {b} failed: {proc.stderr[-500:]}")
        out[b] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _keras_latency_main(backend: str, repeats: int, pairs: list[str]) -> None:
    """Child of :func:`other_backend_latency`: ORT vs Keras on ``backend``, per ``cell=path``."""
    import onnxruntime as ort

    from suite.core.backend import configure

    configure(backend=backend, device="cpu")
    from suite.core.models import build_model
    from suite.deploy.export import LATENCY_BATCHES, measure_latency
    from tasks import get_task

    task = get_task(REF["task"], seq_len=REF["seq_len"])
    out = {}
    for pair in pairs:
        cell, path = pair.split("=", 1)
        model = build_model(cell, task, hidden=REF["hidden"], seed=0)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        out[cell] = measure_latency(model, sess, task, repeats=repeats, batches=LATENCY_BATCHES)
    print(json.dumps(out), flush=True)


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
        _active(),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    from suite.core.backend import CPUS_ENV

    def env_of(i: int) -> dict:  # JAX: each process on its own cores, as a sweep's workers
        if _active() != "jax" or count < 2:
            return env
        cores = os.cpu_count() or 1
        return {**env, CPUS_ENV: ",".join(str((i * threads + k) % cores) for k in range(threads))}

    procs = [
        subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env_of(i)
        )
        for i in range(count)
    ]
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


def _rate_main(cell: str, threads: int, steps: int, repeats: int, backend: str) -> None:
    """Child of :func:`_rate_processes`: one training loop at the scaling grid's config."""
    from suite.core.backend import configure

    configure(threads=threads, backend=backend)
    timed = _suite_timer(cell, SCALING_T, SCALING_HIDDEN)
    print("ready", flush=True)
    sys.stdin.readline()
    print(statistics.median(timed(steps) for _ in range(repeats)), flush=True)


def sweep_wall(workers: int, steps: int) -> dict:
    """Run the scaling grid as ``rnnbench sweep --workers N``; returns its wall seconds and,
    from the store the sweep wrote, when its first train run started and its last one ended
    (seconds after the command started): the part of the wall that no number of workers
    shortens is ``first_start + (wall - last_end)`` (imports, the store, the parent run)."""
    import mlflow

    from tracking.layout import PARENT_TAG

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "grid.toml"
        spec.write_text(SCALING_GRID.format(steps=steps))
        uri = f"sqlite:///{tmp}/s.db"
        cmd = [sys.executable, "-m", "suite.cli", "sweep", str(spec), "--workers", str(workers),
               "--tracking-uri", uri, "--backend", _active()]  # fmt: skip
        env = {**os.environ, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
        t0, p0 = time.time(), time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True, cwd=tmp)
        wall = time.perf_counter() - p0
        client = mlflow.MlflowClient(uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = [r for r in client.search_runs(ids) if PARENT_TAG in r.data.tags]
        return {
            "wall_s": wall,
            "first_start_s": min(r.info.start_time for r in runs) / 1000 - t0,
            "last_end_s": max(r.info.end_time for r in runs) / 1000 - t0,
            "runs": len(runs),
        }


def sweep_bound(one: dict, two: dict, compute_bound: float) -> float:
    """The ``--workers 2 / --workers 1`` wall ratio this machine allows (Amdahl's law).

    The runs' part of the one-worker sweep (its first run's start to its last run's end,
    ``sweep_wall``) shrinks by ``compute_bound`` (two training processes at once vs one alone,
    pinned and threaded as the sweep's workers are: ``scaling_bound``); the two-worker sweep's
    own serial part (before its first run and after its last) is kept as measured: its two
    workers warm up at once on the same cores as the driver, so it is longer than one worker's.
    What is left between the bound and the measured ratio is the runs' scaling.

    >>> one = {"wall_s": 10.0, "first_start_s": 2.0, "last_end_s": 9.0}
    >>> two = {"wall_s": 7.0, "first_start_s": 2.5, "last_end_s": 6.5}
    >>> round(sweep_bound(one, two, 0.5), 2)  # (3.0 s serial + 7 s of runs x 0.5) / 10 s
    0.65
    """
    runs_one = one["wall_s"] - serial_seconds(one)
    return (serial_seconds(two) + runs_one * compute_bound) / one["wall_s"]


def serial_seconds(sweep: dict) -> float:
    """A ``sweep_wall`` result's seconds before its first run started and after its last ended."""
    return sweep["first_start_s"] + (sweep["wall_s"] - sweep["last_end_s"])


COMPARE_HIDDEN = (64, 128)  # hidden sizes of the backend comparison
GPU_LENGTHS = (100, 1000)  # T of the GPU table
CPU_LENGTHS = (50, 100, 200, 400)  # T of the scaling-in-T measurement


PERF_POPULATION = {False: 16, True: 64}  # largest population of population_table (CPU, GPU)


def perf_configs(cells: list[str], gpu: bool) -> list:
    """The largest single run ``perf`` trains per cell, for the up-front memory check: the
    longest T it measures at the reference batch and hidden size (its largest population
    holds ``PERF_POPULATION[gpu]`` such models at a shorter T; the check counts that many).

    Example:
        >>> [c.seq_len for c in perf_configs(["lstm"], gpu=False)]  # doctest: +SKIP
        [400]
    """
    from suite.core.train import TrainConfig

    T = max(GPU_LENGTHS if gpu else CPU_LENGTHS)
    return [TrainConfig(task=REF["task"], seq_len=T, cell=c, hidden=REF["hidden"],
                        batch_size=REF["batch"]) for c in cells if c != ATTENTION_CELL]  # fmt: skip


def attention_configs(quick: bool) -> list:
    """The largest runs of the attention section (one model each), for the memory check."""
    from suite.core.train import TrainConfig

    T = max(attention_lengths(quick))
    return [TrainConfig(task=REF["task"], seq_len=T, cell=c, hidden=ATTENTION_HIDDEN,
                        batch_size=REF["batch"]) for c in ("lstm", ATTENTION_CELL)]  # fmt: skip


def installed_backends() -> list[str]:
    """The Keras backends installed here (by distribution: a JAX process blocks TF imports)."""
    import importlib.metadata as md

    from suite.core.backend import BACKENDS

    dists = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",)}
    found = []
    for b in BACKENDS:
        for name in dists[b]:
            try:
                md.distribution(name)
            except md.PackageNotFoundError:
                continue
            found.append(b)
            break
    return found


def _compare_main(backend: str, steps: int, repeats: int, cells: list[str]) -> None:
    """Child of :func:`backend_comparison`: suite steps/s per cell and hidden on one backend."""
    from suite.core.backend import configure

    configure(backend=backend, device="cpu")
    out = {
        cell: {str(h): suite_steps_per_second(cell, REF["seq_len"], steps, repeats, h) for h in COMPARE_HIDDEN}
        for cell in cells
    }  # fmt: skip
    print(json.dumps(out), flush=True)


def backend_comparison(cells: list[str], steps: int, repeats: int, rounds: int) -> dict:
    """Suite steps/s on every installed backend, each cell at hidden 64 and 128 (T = 100, CPU).

    One child process per backend and round (a process runs one Keras backend); rounds
    alternate the backends (TF, JAX, TF, JAX, ...) so a change in load hits both; medians.
    """
    runs: dict[str, list[dict]] = {}
    for _ in range(rounds):
        for b in installed_backends():
            cmd = [
                sys.executable,
                "-m",
                "suite.perf",
                "--compare",
                b,
                str(steps),
                str(repeats),
                *cells,
            ]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": b}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise RuntimeError(f"perf: backend {b} failed: {out.stderr[-500:]}")
            runs.setdefault(b, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        b: {c: {h: statistics.median(r[c][h] for r in rs) for h in rs[0][c]} for c in cells}
        for b, rs in runs.items()
    }


def torch_reference(
    cell: str, T: int, steps: int, device: str, hidden: int = REF["hidden"]
) -> float | None:
    """Train steps/s of plain PyTorch (cuDNN on a GPU) at the suite's shapes; ``None`` without torch.

    The same model (recurrent layer + linear head on the last step), Adam 1e-3, global norm
    clipping at 1, batch 64; one fixed batch already on the device (no data generation).
    """
    try:
        import torch
    except ImportError:
        return None
    dev = "cuda" if device == "gpu" else "cpu"
    if dev == "cuda" and not torch.cuda.is_available():
        return None
    torch.manual_seed(0)
    kinds = {"lstm": (torch.nn.LSTM, {}), "chrono_lstm": (torch.nn.LSTM, {}), "gru": (torch.nn.GRU, {}),
             "simple_rnn": (torch.nn.RNN, {"nonlinearity": "tanh"}), "irnn": (torch.nn.RNN, {"nonlinearity": "relu"}),
             "relu_rnn": (torch.nn.RNN, {"nonlinearity": "relu"})}  # fmt: skip
    if cell not in kinds:  # ortho_rnn, leaky_rnn, sigmoid_rnn: no PyTorch RNN activation
        return None
    cls, kw = kinds[cell]
    rnn = cls(2, hidden, batch_first=True, **kw).to(dev)
    head = torch.nn.Linear(hidden, 1).to(dev)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(REF["batch"], T, 2, device=dev)
    y = torch.rand(REF["batch"], device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss = ((head(out[:, -1]).squeeze(-1) - y) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    def timed():
        for _ in range(steps):
            step()
        if dev == "cuda":
            torch.cuda.synchronize()

    return steps / _median_seconds(timed, 3)


POP_HIDDEN = 64  # the population table's hidden size (as in the H100 measurement of the issue)
POP_GOAL = {"size": 64, "speedup": 25.0, "cells": ("lstm", "gru"), "seq_len": 100}
POP_CPU_GOAL = 1.0  # model-steps/s of 16 members / one model alone, every cell, on a CPU


def population_rate(cell: str, T: int, P: int, steps: int) -> float:
    """Model-steps/s of a population of ``P`` models (JAX), each drawing its own data as in a run.

    Adding task, batch 64, hidden ``POP_HIDDEN``, Adam with global_clipnorm=1; the vmapped,
    masked step of ``suite.core.population`` with every member live; median of 3 timed blocks.
    """
    from suite.core.models import build_model
    from suite.core.population import PopulationStepper
    from suite.core.train import TrainConfig, _batches, make_loss, make_optimizer
    from tasks import get_task

    cfg = TrainConfig(task=REF["task"], seq_len=T, cell=cell, clip="global_clipnorm=1",
                      hidden=POP_HIDDEN, batch_size=REF["batch"], backend="jax")  # fmt: skip
    task = get_task(cfg.task, seq_len=T)
    models = [build_model(cell, task, hidden=POP_HIDDEN, seed=s) for s in range(P)]
    stepper = PopulationStepper(models, task, make_optimizer(cfg), make_loss(task), cfg.clip_spec)
    streams = [_batches(task, REF["batch"], np.random.default_rng(s)) for s in range(P)]

    def timed():
        for _ in range(steps):
            stepper.step_streams(streams)
        stepper.sync()

    return P * steps / _median_seconds(timed, 3)


def population_table(cells: list[str], gpu: bool, quick: bool) -> dict:
    """Model-steps/s for populations of 1, 16 and 64 (GPU; 1 and 16 on a CPU) per cell and T."""
    sizes = (1, 16, 64) if gpu else (1, 16)
    lengths = GPU_LENGTHS if gpu else (REF["seq_len"],)
    steps = (20 if quick else 100) if gpu else (5 if quick else 20)
    # On a CPU each block trains the same model-steps at every size (one model: 16x the
    # steps): 20 steps of one model take ~0.1 s here, too short a block to time on a shared
    # machine (16 members vs one read 0.77-1.19x for one cell in three such runs).
    work = {P: steps if gpu else steps * max(sizes) // P for P in sizes}
    out: dict = {}
    for cell in cells:
        for T in lengths:
            rates = {str(P): population_rate(cell, T, P, work[P]) for P in sizes}
            one = rates["1"]
            out.setdefault(cell, {})[str(T)] = {
                "model_steps_s": rates,
                "speedup": {P: r / one for P, r in rates.items()},
            }
    return out


def gpu_lengths(cells: list[str], steps: int) -> dict:
    """Suite steps/s per cell at T = 100 and 1000 on the GPU, next to plain PyTorch cuDNN."""
    out: dict = {}
    for cell in cells:
        for T in GPU_LENGTHS:
            out.setdefault(cell, {})[str(T)] = {
                "suite_steps_s": suite_steps_per_second(cell, T, steps, 3),
                "torch_steps_s": torch_reference(cell, T, steps, "gpu"),
            }
    return out


def run_perf(cells: list[str], quick: bool, device: str = "auto", progress=None) -> dict:
    """Run every measurement; returns the JSON-friendly results with goals and misses.

    On a GPU the CPU-only parts (backend comparison, sweep scaling across cores) are
    skipped and the GPU table (T = 100 and 1000, PyTorch cuDNN reference) is measured.
    """
    from suite.core.backend import configure, release_freed_memory

    dev = configure(device=device)
    gpu = dev["device"] == "gpu"
    # attention is no recurrence: the transformer is measured against the LSTM as T grows
    # (attention_cost), not by the recurrent goals (linear in T, FLOP/s of the gates, ...)
    attention = ATTENTION_CELL in cells
    cells = [c for c in cells if c != ATTENTION_CELL]
    steps, repeats = (60, 2) if quick else (200, 5)
    lengths = CPU_LENGTHS
    report = progress or (lambda msg: None)

    def say(msg: str) -> None:
        # each measurement starts with the heap the last one freed handed back (on JAX it is
        # otherwise kept: attention at T = 1000 left 16 GiB resident for the rest of the run)
        release_freed_memory()
        report(msg)

    out: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {dev['device_name']}",
        "backend": dev["backend"],
        "device": dev["device"],
        "date": time.strftime("%Y-%m-%d"),
        "quick": quick,
        "reference": REF,
        "goals": GOALS,
        "cells": {},
    }
    from tasks import get_task

    input_dim = get_task(REF["task"], seq_len=REF["seq_len"]).input_dim
    tmp = tempfile.TemporaryDirectory()  # each cell's chosen ONNX, for the other backend
    onnx_dir = Path(tmp.name)
    say("dense matmul peak")
    peak = matmul_peak(2048, 3 if quick else 5)  # 1024 reads ~25 % lower here
    out["matmul_peak_gflops"] = peak / 1e9
    for cell in cells:
        r: dict = {}
        say(f"{cell}: suite loop vs model.fit")
        r.update(suite_vs_fit(cell, REF["seq_len"], steps, repeats))
        r["fit_ratio"] = r["suite_steps_s"] / r["fit_steps_s"]
        flops = train_flops(cell, REF["batch"], REF["seq_len"], input_dim, REF["hidden"])
        r["train_gflops"] = flops * r["suite_steps_s"] / 1e9
        r["peak_fraction"] = r["train_gflops"] * 1e9 / peak
        say(f"{cell}: recurrent matmul ceiling")
        ceiling = recurrent_matmul_ceiling(cell, REF["batch"], REF["seq_len"], REF["hidden"])
        r["ceiling_fraction"] = ceiling / peak
        say(f"{cell}: time per step vs T")
        # every length timed the same way (T = 100 too: its suite/fit blocks alternate with fit,
        # which would make the ratio compare two methods), the lengths' blocks alternating
        r["ms_per_step"] = ms_per_step_by_T(cell, lengths, max(20, steps // 2), repeats)
        r["linear_400_100"] = r["ms_per_step"]["400"] / r["ms_per_step"]["100"]
        say(f"{cell}: peak RSS of a training process")
        r["peak_rss_mb"] = peak_rss_mb(cell, 50 if quick else 200)
        say(f"{cell}: inference latency, onnxruntime (measured graph form) vs Keras")
        r["latency"] = inference_latency(cell, onnx_dir / f"{cell}.onnx", 10 if quick else 30)
        out["cells"][cell] = r
    say("inference latency on the other installed backend")
    for b, by_cell in other_backend_latency(
        {c: onnx_dir / f"{c}.onnx" for c in out["cells"]}, 10 if quick else 30
    ).items():
        for cell, lat in by_cell.items():
            out["cells"][cell].setdefault("latency_other", {})[b] = lat
    tmp.cleanup()
    if dev["backend"] == "jax":
        say("populations: model-steps/s for 1, 16 (and 64 on a GPU) models in one compiled step")
        out["populations"] = population_table(cells, gpu, quick)
    if attention:
        say("attention: transformer vs LSTM steps/s as T grows")
        missing: dict = {}
        out["attention"] = attention_cost(attention_lengths(quick), not_measured=missing)
        if missing:
            out["attention_not_measured"] = missing
    if gpu:
        say("GPU: suite vs PyTorch cuDNN at T = 100 and 1000")
        out["gpu"] = gpu_lengths(cells, 50 if quick else 200)
        return out
    say("backends: TensorFlow vs JAX steps/s at hidden 64 and 128")
    out["backends"] = backend_comparison(cells, steps, repeats, 1 if quick else 2)
    s_steps = 300 if quick else 1000  # enough work per run that start-up does not dominate
    out["sweep"] = sweep_scaling(s_steps, 100 if quick else 200, 1 if quick else 3, say)
    return out


def sweep_scaling(steps: int, bound_steps: int, rounds: int, say=lambda msg: None) -> dict:
    """``--workers 2`` vs ``--workers 1`` against the bound, in ``rounds`` rounds.

    Each round runs both sweeps and measures the compute bound right after them, so its ratio
    and its bound come from the same minutes of this machine; one round's gap (ratio - bound)
    read 0.035-0.15 in four rounds of one evening here, the compute bound alone 0.42-0.52. The
    result is the round with the median gap, whole (every number in it from that round),
    with every round's ratio, bound and compute bound under ``"rounds"``.
    """
    results = []
    for i in range(rounds):
        tag = f" (round {i + 1} of {rounds})" if rounds > 1 else ""
        say(f"sweep scaling: --workers 1 vs 2{tag}")
        w1, w2 = sweep_wall(1, steps), sweep_wall(2, steps)
        say(f"sweep scaling: one training process alone vs two at once{tag}")
        bound = scaling_bound(bound_steps, 3)
        results.append({
            "workers1_s": w1["wall_s"],
            "workers2_s": w2["wall_s"],
            "workers_ratio": w2["wall_s"] / w1["wall_s"],
            "compute_bound": bound["bound"],
            "bound": sweep_bound(w1, w2, bound["bound"]),
            "timeline": {"workers1": w1, "workers2": w2},
            "bound_detail": bound,
            "grid": f"4 configs, adding T={SCALING_T}, hidden {SCALING_HIDDEN}, {steps} steps each",
        })  # fmt: skip
    return median_round(results)


def median_round(results: list[dict]) -> dict:
    """Of several sweep-scaling rounds, the one whose gap (ratio - bound) is the median (the
    lower middle one for an even count), whole, with ``round`` (1-based) and every round's
    ratio, bound and compute bound under ``rounds``.

    >>> rs = [{"workers_ratio": r, "bound": b, "compute_bound": 0.5}
    ...       for r, b in [(0.80, 0.70), (0.75, 0.72), (0.90, 0.70)]]
    >>> median_round(rs)["round"]  # gaps 0.10, 0.03, 0.20
    1
    """
    order = sorted(
        range(len(results)), key=lambda i: results[i]["workers_ratio"] - results[i]["bound"]
    )
    chosen = order[(len(results) - 1) // 2]
    return {**results[chosen], "round": chosen + 1, "rounds": [
        {k: r[k] for k in ("workers_ratio", "bound", "compute_bound")} for r in results
    ]}  # fmt: skip


def _mark(value: float, goal: float, higher_is_better: bool) -> str:
    ok = value >= goal if higher_is_better else value <= goal
    return "ok" if ok else "MISS"


def _whole_sweep_text(s: dict) -> str:
    one, two = s["timeline"]["workers1"], s["timeline"]["workers2"]
    runs1, runs2 = one["wall_s"] - serial_seconds(one), two["wall_s"] - serial_seconds(two)
    return (
        f"; bound for the whole sweep {s['bound']:.2f}: the runs' part of the --workers 1 wall "
        f"({runs1:.1f} s, first run's start to last run's end, from the store) times the compute "
        f"bound, plus the --workers 2 sweep's start-up and finish ({serial_seconds(two):.1f} s; "
        f"{serial_seconds(one):.1f} s with one worker). The runs' part itself: {runs1:.1f} s -> "
        f"{runs2:.1f} s ({runs2 / runs1:.2f})."
    )


def _rounds_text(s: dict) -> str:
    """The rounds behind a sweep-scaling result ('' for one round)."""
    rounds = s.get("rounds") or []
    if len(rounds) < 2:
        return ""
    each = "; ".join(f"{r['workers_ratio']:.2f} vs {r['bound']:.2f} (compute {r['compute_bound']:.2f})"
                     for r in rounds)  # fmt: skip
    return (f" Round {s['round']} of {len(rounds)}, the one with the median gap, is quoted; "
            f"every round's ratio vs bound: {each}.")  # fmt: skip


def _workers_mark(sweep: dict, goals: dict) -> str:
    """ok when ``--workers 2`` beats one worker and is within the margin of the bound
    (results from before the whole-sweep bound: the compute bound)."""
    bound = sweep.get("bound", sweep["compute_bound"])
    ratio = sweep["workers_ratio"]
    return "ok" if ratio < 1.0 and ratio <= bound + goals["workers_margin"] else "MISS"


def onnx_table(res: dict) -> list[str]:
    """The ONNX latency table's lines: per cell the graph form, ORT and Keras p50 at every batch
    and the speedups (Keras / ORT) on each backend, marked against ``ORT_GOAL`` at every batch
    ([] for results without the per-batch measurement)."""
    cells = {
        c: r["latency"] for c, r in res["cells"].items() if "graph_form" in r.get("latency", {})
    }
    if not cells:
        return []
    batches = sorted({int(k[len("speedup_b"):]) for lat in cells.values() for k in lat
                      if k.startswith("speedup_b")})  # fmt: skip
    active = res.get("backend", "tensorflow")
    others = sorted({b for r in res["cells"].values() for b in r.get("latency_other", {})})
    bs = "/".join(map(str, batches))
    goal = f"goal >= {ORT_GOAL:.1f}" + (f", b1 >= {ORT_B1_GOAL:.0f}" if 1 in batches else "")
    head = f"| cell | graph form | ORT ms b{bs} | {active} ms | ORT/{active} ({goal}) |"
    head += "".join(f" {b} ms | ORT/{b} ({goal}) |" for b in others)
    lines = [
        "",
        f"ONNX inference (onnxruntime on the CPU; {REF['task']}, T = {REF['seq_len']}, hidden "
        f"{REF['hidden']}; one graph per cell, its form chosen by the exporter's measurement; p50 "
        "ms at each batch; speedup = Keras p50 / ORT p50, each backend in its own process next "
        "to the same ONNX file):",
        "",
        head,
        "|---|---|---|---|---|" + "---|---|" * len(others),
    ]

    def cols(lat: dict) -> str:
        ms = "/".join(f"{lat[f'keras_p50_ms_b{B}']:.2f}" for B in batches)
        sp = [lat[f"speedup_b{B}"] for B in batches]
        marks = _mark(min(sp), ORT_GOAL, True)
        if 1 in batches:
            marks += f", b1 {_mark(lat['speedup_b1'], ORT_B1_GOAL, True)}"
        return f" {ms} | {'/'.join(f'{v:.1f}x' for v in sp)} {marks} |"

    misses_b1 = []
    for cell, lat in cells.items():
        ort_ms = "/".join(f"{lat[f'ort_p50_ms_b{B}']:.2f}" for B in batches)
        row = f"| {cell} | {lat['graph_form']} | {ort_ms} |" + cols(lat)
        for b in [active, *others]:
            o = lat if b == active else res["cells"][cell].get("latency_other", {}).get(b)
            if o:
                row += "" if b == active else cols(o)
                if 1 in batches and o["speedup_b1"] < ORT_B1_GOAL:
                    misses_b1.append(_b1_reason(cell, b, o, lat.get("form_latency_ms") or {}))
            else:
                row += " n/a | n/a |"
        lines.append(row)
    if misses_b1:
        lines += ["", f"Below {ORT_B1_GOAL:.0f}x at batch 1, with the limit this run measured "
                  "(the fastest ONNX form at batch 1 in the exporter's own timing):", ""]  # fmt: skip
        lines += [f"- {m}" for m in misses_b1]
    return lines


def _b1_reason(cell: str, backend: str, lat: dict, forms: dict) -> str:
    """Why ORT/Keras at batch 1 is below ``ORT_B1_GOAL`` for one cell: what the fastest graph
    form measured at batch 1 would give, and the ORT time 4x would need."""
    keras_ms, ort_ms = lat["keras_p50_ms_b1"], lat["ort_p50_ms_b1"]
    need = keras_ms / ORT_B1_GOAL
    at_b1 = {f: by_b["1"] for f, by_b in forms.items() if "1" in by_b}
    text = (f"{cell} on {backend}: Keras {keras_ms:.3f} ms, ORT {ort_ms:.3f} ms "
            f"({lat['speedup_b1']:.1f}x); {ORT_B1_GOAL:.0f}x needs ORT at {need:.3f} ms")  # fmt: skip
    if at_b1:
        form, best = min(at_b1.items(), key=lambda kv: kv[1])
        text += f"; the fastest form, {form}, took {best:.3f} ms (at most {keras_ms / best:.1f}x)"
    return text


def to_markdown(res: dict) -> str:
    g = res["goals"]
    lines = [
        f"rnnbench perf ({'quick' if res['quick'] else 'full'}) — {res['machine']}, {res['date']}; "
        f"reference: batch {REF['batch']}, T = {REF['seq_len']}, hidden {REF['hidden']}, adding task. "
        f"Backend: {res.get('backend', 'tensorflow')}. "
        f"Dense matmul peak ({res.get('backend', 'tensorflow')}, float32): {res['matmul_peak_gflops']:.0f} GFLOP/s.",
        "",
        f"| cell | suite steps/s | fit steps/s | suite/fit (goal >= {g['fit_ratio']:.1f}) | GFLOP/s "
        f"| of peak (goal >= {g['peak_fraction']:.0%} LSTM/GRU) | matmul ceiling | ms/step T=50/100/200/400 "
        f"| t(400)/t(100) (goal <= {g['linear_400_100']:.1f}) | peak RSS MB | ORT/Keras b1 | ORT/Keras b64 |",
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
    lines += onnx_table(res)
    if res.get("backends"):
        bk = res["backends"]
        names = list(bk)
        head = " | ".join(f"{b} h{h}" for h in COMPARE_HIDDEN for b in names)
        ratio = len(names) == 2
        lines += [
            "",
            f"Backends on this CPU (suite steps/s, T = {REF['seq_len']}, batch {REF['batch']}; "
            "one process per backend, medians):",
            "",
            f"| cell | {head} |" + ("".join(f" {names[1]}/{names[0]} h{h} |" for h in COMPARE_HIDDEN) if ratio else ""),
            "|---|" + "---|" * (len(names) * len(COMPARE_HIDDEN) + (len(COMPARE_HIDDEN) if ratio else 0)),
        ]  # fmt: skip
        for cell in bk[names[0]]:
            vals = [f"{bk[b][cell][str(h)]:.1f}" for h in COMPARE_HIDDEN for b in names]
            rat = (
                [
                    f"{bk[names[1]][cell][str(h)] / bk[names[0]][cell][str(h)]:.2f}"
                    for h in COMPARE_HIDDEN
                ]
                if ratio
                else []
            )
            lines.append(f"| {cell} | " + " | ".join(vals + rat) + " |")  # fmt: skip
    if res.get("gpu"):
        lines += [
            "",
            f"GPU (train steps/s, batch {REF['batch']}, hidden {REF['hidden']}; PyTorch: plain cuDNN "
            "reference, same shapes, one batch kept on the device):",
            "",
            "| cell | " + " | ".join(f"suite T={T} | PyTorch T={T} | suite/PyTorch T={T}" for T in GPU_LENGTHS) + " |",
            "|---|" + "---|---|---|" * len(GPU_LENGTHS),
        ]  # fmt: skip
        for cell, byT in res["gpu"].items():
            cols = []
            for T in GPU_LENGTHS:
                r = byT[str(T)]
                ref = r["torch_steps_s"]
                cols += [f"{r['suite_steps_s']:.1f}", f"{ref:.1f}" if ref else "n/a (no torch)",
                         f"{r['suite_steps_s'] / ref:.2f}" if ref else "n/a"]  # fmt: skip
            lines.append(f"| {cell} | " + " | ".join(cols) + " |")
    if res.get("attention"):
        lines += attention_markdown(res["attention"], res.get("attention_not_measured"))
    if res.get("populations"):
        pops = res["populations"]
        sizes = list(next(iter(next(iter(pops.values())).values()))["model_steps_s"])
        goal = POP_GOAL
        cpu = res.get("device") != "gpu"
        layout = ("the members one after another (jax.lax.map)" if cpu
                  else "all members in one jax.vmap")  # fmt: skip
        lines += [
            "",
            f"Populations (JAX, one compiled step: {layout}; adding, batch {REF['batch']}, "
            f"hidden {POP_HIDDEN}; model-steps/s, speedup over one model; goal: >= "
            f"{goal['speedup']:.0f}x at {goal['size']} members for {'/'.join(goal['cells'])} at "
            f"T = {goal['seq_len']} on a GPU, >= {POP_CPU_GOAL:.1f}x at 16 for every cell on a CPU):",
            "",
            "| cell | T | "
            + " | ".join(f"P={P}" for P in sizes)
            + f" | speedup at P={sizes[-1]} |",
            "|---|---|" + "---|" * (len(sizes) + 1),
        ]
        for cell, byT in pops.items():
            for T, r in byT.items():
                sp = r["speedup"][sizes[-1]]
                judged = (
                    cell in goal["cells"]
                    and int(T) == goal["seq_len"]
                    and int(sizes[-1]) == goal["size"]
                )
                if cpu and sizes[-1] == "16":
                    mark = f" {_mark(sp, POP_CPU_GOAL, True)}"
                else:
                    mark = f" {_mark(sp, goal['speedup'], True)}" if judged else ""
                rates = " | ".join(f"{r['model_steps_s'][P]:.0f}" for P in sizes)
                lines.append(f"| {cell} | {T} | {rates} | {sp:.1f}x{mark} |")
    s = res.get("sweep")
    if not s:
        return "\n".join(lines)
    lines += [
        "",
        f"Sweep scaling ({s['grid']}): --workers 1 {s['workers1_s']:.1f} s, --workers 2 {s['workers2_s']:.1f} s, "
        f"ratio {s['workers_ratio']:.2f} (goal <= bound + {g['workers_margin']:.2f} and < 1) {_workers_mark(s, g)}; "
        f"compute bound on this machine {s['compute_bound']:.2f} (one training process using every core vs "
        "two at once with half each, pinned as the sweep's workers are, same run)"
        + (_whole_sweep_text(s) if "bound" in s else ".")
        + _rounds_text(s),
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
                "backend": res.get("backend", "tensorflow"),
                "quick": res["quick"],
                **{f"ref_{k}": v for k, v in REF.items()},
                **{
                    f"{c}_graph_form": r["latency"]["graph_form"]
                    for c, r in res["cells"].items()
                    if "graph_form" in r["latency"]
                },  # fmt: skip
            }
        )
        metrics = {"matmul_peak_gflops": res["matmul_peak_gflops"]}
        if res.get("sweep"):
            metrics["sweep_workers_ratio"] = res["sweep"]["workers_ratio"]
            metrics["sweep_compute_bound"] = res["sweep"]["compute_bound"]
            if "bound" in res["sweep"]:
                metrics["sweep_bound"] = res["sweep"]["bound"]
        for b, by_cell in (res.get("backends") or {}).items():
            for cell, by_h in by_cell.items():
                for h, v in by_h.items():
                    metrics[f"{b}_{cell}_h{h}_steps_s"] = v
        for cell, by_T in (res.get("populations") or {}).items():
            for T, r in by_T.items():
                for P, v in r["model_steps_s"].items():
                    metrics[f"pop_{cell}_T{T}_P{P}_model_steps_s"] = v
        for cell, by_T in (res.get("gpu") or {}).items():
            for T, r in by_T.items():
                metrics[f"gpu_{cell}_T{T}_steps_s"] = r["suite_steps_s"]
                if r["torch_steps_s"]:
                    metrics[f"gpu_{cell}_T{T}_torch_steps_s"] = r["torch_steps_s"]
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
            for k, v in r["latency"].items():
                if k.startswith("speedup_b"):  # b1, b16, b64, b256
                    metrics[f"{cell}_ort_{k}"] = v
            for b, lat in r.get("latency_other", {}).items():
                for k, v in lat.items():
                    if k.startswith("speedup_b"):
                        metrics[f"{cell}_ort_vs_{b}_{k}"] = v
        mlflow.log_metrics(metrics)
        for name in ("perf.json", "perf.md"):  # only what perf wrote (--out may hold anything)
            mlflow.log_artifact(str(out_dir / name), "perf")
    return out_dir / "perf.md"


if __name__ == "__main__":  # internal children of `rnnbench perf`
    if len(sys.argv) == 7 and sys.argv[1] == "--rate":
        _rate_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif len(sys.argv) >= 6 and sys.argv[1] == "--compare":
        _compare_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "--keras-latency":
        _keras_latency_main(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    elif len(sys.argv) >= 6 and sys.argv[1] == "--attention":
        _attention_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    else:
        sys.exit(
            "usage: python -m suite.perf --rate CELL THREADS STEPS REPEATS BACKEND | "
            "--compare BACKEND STEPS REPEATS CELL... | --keras-latency BACKEND REPEATS CELL=ONNX... | "
            "--attention CELL DEVICE STEPS T... "
            "(use `rnnbench perf`)"
        )
