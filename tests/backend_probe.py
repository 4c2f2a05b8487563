"""Run one backend scenario in a fresh process and print its findings as one JSON line.

A process runs one Keras backend, so the cross-backend tests (test_backends.py) start
``python tests/backend_probe.py SCENARIO BACKEND [ARG]`` once per backend and compare.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np


def _sha(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# the task each cell's start is checked on (every output kind is covered)
START_TASK = {"simple_rnn": "adding", "irnn": "copy", "ortho_rnn": "copy", "lstm": "delayed_recall",
              "chrono_lstm": "delayed_recall", "gru": "adding", "relu_rnn": "adding",
              "leaky_rnn": "copy", "sigmoid_rnn": "delayed_recall", "transformer": "copy"}  # fmt: skip


def start(backend: str, cells: str = "") -> dict:
    """Initial weights, first batch, first-step loss and a short run, per cell (``cells``:
    comma-separated, default all of ``CELLS``)."""
    from suite.core.backend import configure

    configure(backend=backend, device="cpu")
    from suite.core.models import CELLS, build_model
    from suite.core.steps import make_stepper
    from suite.core.train import TrainConfig, _batches, make_loss, make_optimizer
    from tasks import get_task

    out = {}
    for cell in cells.split(",") if cells else CELLS:
        task_name = START_TASK[cell]
        cfg = TrainConfig(task=task_name, seq_len=10, cell=cell, hidden=8, batch_size=16,
                          val_size=64, clip="global_clipnorm=1", backend=backend,
                          max_steps=40, eval_every=20)  # fmt: skip
        task = get_task(task_name, seq_len=10)
        model = build_model(cell, task, hidden=8, seed=0)  # the run's model: seed 0
        weights = _sha(np.asarray(v) for v in model.weights)
        batches = _batches(task, 16, np.random.default_rng(0))  # the run's batches
        x, y = next(batches)
        data = _sha([x, y])
        # the run's 40 steps, by the stepper train() drives (one compiled step, not two): the
        # first step's window, then the validation loss after step 40 (train()'s evaluations
        # and profiles read the weights and change nothing)
        stepper = make_stepper(backend, model, task, make_optimizer(cfg), make_loss(task),
                               cfg.clip_spec)  # fmt: skip
        stepper.train_step(x, y)
        first = stepper.read_window()
        for _ in range(cfg.max_steps - 1):
            stepper.train_step(*next(batches))
        x_val, y_val = task.generate(cfg.val_size, np.random.default_rng(cfg.seed + 10**6))
        out[cell] = {
            "weights": weights,
            "data": data,
            "first_loss": first.train_loss,
            "first_grad_norm": first.grad_norm,
            "val_loss_40": stepper.evaluate(x_val, y_val)["val_loss"],
        }
    return out


def semantics(backend: str) -> dict:
    """Clipping bounds the update, clip kinds fire, the profile, divergence, TF never loaded."""
    from suite.core.backend import configure

    configure(backend=backend, device="cpu")
    from suite.core.models import build_model
    from suite.core.train import TrainConfig, train
    from tasks import get_task

    tiny = dict(seq_len=10, hidden=8, batch_size=16, val_size=32, backend=backend)
    out: dict = {"update": {}}
    for clip in ("global_clipnorm=0.001", "none"):
        task = get_task("adding", seq_len=10)
        model = build_model("simple_rnn", task, hidden=8, seed=0)
        before = [np.array(v) for v in model.trainable_variables]
        cfg = TrainConfig(task="adding", cell="simple_rnn", clip=clip, optimizer="sgd", lr=1.0,
                          max_steps=1, eval_every=1, **tiny)  # fmt: skip
        r = train(cfg, model=model)
        after = [np.array(v) for v in model.trainable_variables]
        delta = float(
            np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before, strict=True)))
        )
        m = r.history[0].metrics
        out["update"][clip] = {"delta": delta, "grad_norm": m["grad_norm"],
                               "clip_fraction": m["clip_fraction"]}  # fmt: skip
    fire = {}
    for clip in ("clipnorm=1e-4", "clipvalue=1e-6", "clipvalue=1e6"):
        cfg = TrainConfig(task="delayed_recall", cell="lstm", clip=clip, max_steps=20,
                          eval_every=10, **tiny)  # fmt: skip
        fire[clip] = train(cfg).history[-1].metrics["clip_fraction"]
    out["fire"] = fire
    r = train(TrainConfig(task="copy", cell="gru", max_steps=10, eval_every=10, **tiny))
    out["profile"] = r.history[-1].profile
    out["input_length"] = get_task("copy", seq_len=10).length
    div = TrainConfig(task="adding", cell="simple_rnn", optimizer="sgd", lr=1000.0,
                      max_steps=100, eval_every=10, **tiny)  # fmt: skip
    out["huge_lr_status"] = train(div).status
    again = [train(TrainConfig(task="delayed_recall", cell="gru", max_steps=20, eval_every=10,
                               **tiny)).history[-1].metrics for _ in range(2)]  # fmt: skip
    out["repeatable"] = again[0] == again[1]
    out["gru_loop"] = gru_loop()
    out["tensorflow_loaded"] = sys.modules.get("tensorflow") is not None
    return out


def gru_loop() -> dict:
    """Keras's own JAX GRU loop (all T steps' input projection in one matmul, then the scan)
    vs the generic loop the suite's JAX step switches a GRU to on a CPU: which one the traced
    program holds, before and after, and their outputs."""
    import jax

    from suite.core.models import build_model
    from suite.core.steps import make_stepper
    from suite.core.train import TrainConfig, make_loss, make_optimizer
    from tasks import get_task

    task = get_task("adding", seq_len=10)
    model = build_model("gru", task, hidden=8, seed=0)
    x, _ = task.generate(16, np.random.default_rng(0))
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    whole_sequence = "tensor<16x10x2xf32>, tensor<2x24xf32>"  # [B, T, d] @ [d, 3H] before the scan

    def traced():  # a new function each time: jit caches a trace per function
        def fn(x):
            return model.stateless_call(tv, ntv, x)[0]

        return {"hoisted": whole_sequence in jax.jit(fn).lower(x).as_text(),
                "out": np.asarray(fn(x))}  # fmt: skip

    before = traced()
    cfg = TrainConfig(task="adding", seq_len=10, cell="gru", hidden=8, backend="jax")
    make_stepper("jax", model, task, make_optimizer(cfg), make_loss(task), cfg.clip_spec)
    after = traced()
    return {"hoisted_before": before["hoisted"], "hoisted_after": after["hoisted"],
            "use_cudnn": model.get_layer("gru").use_cudnn,
            "max_diff": float(np.max(np.abs(before["out"] - after["out"])))}  # fmt: skip


def log(backend: str, uri: str) -> dict:
    """One run logged to ``uri`` with the documented layout."""
    from suite.core.train import TrainConfig
    from suite.study.record import run_and_log

    cfg = TrainConfig(task="delayed_recall", seq_len=10, cell="gru", clip="clipnorm=1", hidden=8,
                      batch_size=16, max_steps=20, eval_every=10, val_size=32, backend=backend)  # fmt: skip
    run_id, r = run_and_log(cfg, uri, "backends")
    return {"run_id": run_id, "hash": cfg.config_hash(), "status": r.status,
            "tensorflow_loaded": sys.modules.get("tensorflow") is not None}  # fmt: skip


def population(backend: str) -> dict:
    """Members of a population vs the same configs trained alone; masked updates."""
    from suite.core.backend import configure

    configure(backend=backend, device="cpu")
    import jax.numpy as jnp

    from suite.core.population import PopulationStepper, train_population
    from suite.core.train import TrainConfig, make_loss, make_optimizer, train
    from tasks import get_task

    def summary(r):
        return {"status": r.status, "steps": r.steps, "steps_to_solve": r.steps_to_solve,
                "first_loss": r.history[0].metrics["train_loss"],
                "val_loss": r.history[-1].metrics["val_loss"],
                "curve": [h.metrics["train_loss"] for h in r.history],
                "weights": [np.asarray(v).tolist() for v in r.model.trainable_variables],
                "evals": [h.step for h in r.history]}  # fmt: skip

    out = {}
    # members that solve at different evaluations
    solve = [TrainConfig(task="delayed_recall", seq_len=8, cell="simple_rnn", hidden=32,
                         batch_size=32, val_size=128, max_steps=400, eval_every=20, lr=3e-3,
                         seed=s, backend=backend) for s in range(4)]  # fmt: skip
    # members of which some diverge (IRNN, lr 0.1, no clipping) and the others go on
    div = [TrainConfig(task="adding", seq_len=10, cell="irnn", hidden=16, batch_size=16,
                       val_size=64, max_steps=100, eval_every=10, lr=0.1, seed=s,
                       backend=backend) for s in range(6)]  # fmt: skip
    for name, cfgs in (("solve", solve), ("diverge", div)):
        out[name] = {
            "population": [summary(r) for r in train_population(cfgs)],
            "alone": [summary(train(c)) for c in cfgs],
        }
    # the mask: a frozen member's state does not move
    task = get_task("adding", seq_len=10)
    from suite.core.models import build_model

    cfg = div[0]
    models = [build_model("lstm", task, hidden=8, seed=s) for s in range(2)]
    st = PopulationStepper(models, task, make_optimizer(cfg), make_loss(task), cfg.clip_spec)
    before = [np.array(a) for a in st.state["trainable"]]
    st.set_active(np.array([True, False]))
    x, y = task.generate(16, np.random.default_rng(0))
    st.train_step(np.stack([x, x]), np.stack([y, y]))
    after = [np.array(a) for a in st.state["trainable"]]
    out["mask"] = {
        "live_moved": any(
            not np.array_equal(a[0], b[0]) for a, b in zip(after, before, strict=True)
        ),
        "frozen_moved": any(
            not np.array_equal(a[1], b[1]) for a, b in zip(after, before, strict=True)
        ),
        "frozen_window_steps": float(jnp.asarray(st.state["window"]["steps"])[1]),
    }
    # the GPU's layout (all members in one vmap) and the CPU's (one after another in the same
    # compiled step): the same states, with a frozen member, after a few steps
    from suite.core.population import members_per_call

    states = {}
    for chunk in (3, 1, 2):
        models = [build_model("gru", task, hidden=8, seed=s) for s in range(3)]
        st = PopulationStepper(models, task, make_optimizer(cfg), make_loss(task),
                               cfg.clip_spec, chunk=chunk)  # fmt: skip
        st.set_active(np.array([True, False, True]))
        for i in range(3):
            xs, ys = zip(
                *(task.generate(16, np.random.default_rng(10 * i + m)) for m in range(3)),
                strict=True,
            )
            st.train_step(np.stack(xs), np.stack(ys))
        states[chunk] = [np.array(a) for a in st.state["trainable"]]
    out["layouts"] = {
        "max_diff": max(
            float(np.max(np.abs(a - b)))
            for c in (1, 2)
            for a, b in zip(states[c], states[3], strict=True)
        ),  # fmt: skip
        "moved": any(
            not np.allclose(a[0], b) for a, b in zip(states[3], before_all(task), strict=True)
        ),  # fmt: skip
        "cpu_chunk": members_per_call(16, "cpu"),
        "gpu_chunk": members_per_call(16, "gpu"),
    }
    return out


def before_all(task):
    """The initial trainable weights of the layouts' first member (GRU, hidden 8, seed 0)."""
    from suite.core.models import build_model

    return [np.asarray(v) for v in build_model("gru", task, hidden=8, seed=0).trainable_variables]


def copy_curves(backend: str, cells: str, T: str, steps: str, num_recall: str = "10") -> dict:
    """Val accuracy / loss ratio curves of ``cells`` on copy at ``T`` recalling ``num_recall``
    symbols (hidden 128, Adam 1e-3, global_clipnorm=1, batch 64, ``steps`` steps, evaluated
    every 100; the run stops when solved)."""
    from suite.core.backend import configure

    configure(backend=backend, device="cpu")
    from suite.core.train import TrainConfig, train

    out = {}
    for cell in cells.split(","):
        options = {"num_recall": int(num_recall)} if num_recall != "10" else {}
        cfg = TrainConfig(task="copy", seq_len=int(T), cell=cell, hidden=128, optimizer="adam",
                          lr=1e-3, clip="global_clipnorm=1", max_steps=int(steps), eval_every=100,
                          val_size=500, profile_size=16, task_options=options,
                          backend=backend)  # fmt: skip
        r = train(cfg)
        out[cell] = {
            "accuracy": [h.metrics["val_accuracy"] for h in r.history],
            "loss_ratio": [h.metrics["val_loss_ratio"] for h in r.history],
            "seconds": r.train_seconds,
            "status": r.status,
            "steps": r.steps,
        }
    return out


def _libc_malloc():
    """glibc's malloc, free and memset through ctypes, typed for raw blocks."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    return libc


def refaults(mib: int = 640) -> int:
    """Pages a worker thread faults in when it allocates ``mib`` MiB, frees them, and allocates
    and touches the same size again: what each train step of a long-T JAX model does with its
    temp block (suite.core.backend._keep_freed_memory). glibc's defaults: the block comes from
    mmap (a thread arena's heaps hold 64 MiB at most) and goes back on free, so the second
    touch faults every page again. 640 MiB: over a thread arena's heap and over any trim
    threshold below it, such as the 512 MiB this suite once used."""
    import resource
    import threading

    libc = _libc_malloc()
    size, out = mib << 20, {}

    def work():
        for attempt in ("first", "again"):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            block = libc.malloc(size)
            libc.memset(block, 1, size)
            out[attempt] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
            libc.free(block)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out["again"]


def held_mib(mib: int = 640) -> dict:
    """Resident MiB a worker thread's freed ``mib`` MiB block leaves behind, before and after
    ``suite.core.backend.release_freed_memory`` (what a sweep worker calls after each job)."""
    import threading

    from suite.core.backend import release_freed_memory

    libc = _libc_malloc()

    def resident():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    def work():
        block = libc.malloc(mib << 20)
        libc.memset(block, 1, mib << 20)
        libc.free(block)

    release_freed_memory()  # what refaults() left kept
    base = resident()
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    held = resident() - base
    released = release_freed_memory()
    return {"held": held, "released": released, "after": resident() - base}


def together(backend: str, uri: str, *more: str) -> dict:
    """``start``, ``log`` to ``uri`` and each scenario named in ``more`` (``semantics``), keyed
    by scenario, in this one process: one Keras start-up, not three (each scenario builds its
    own models and seeds them, so none depends on what ran before it)."""
    from suite.core.backend import configure

    out = {"start": start(backend), "log": log(backend, uri)}
    out["configured"] = configure(backend=backend, device="cpu")  # what start() configured
    if sys.platform == "linux":
        out["refaults"] = refaults()
        out["held"] = held_mib()
    for name in more:
        out[name] = {"semantics": semantics}[name](backend)
    return out


if __name__ == "__main__":
    scenario, backend, *rest = sys.argv[1:]
    result = {
        "together": together,
        "start": start,
        "semantics": semantics,
        "log": log,
        "population": population,
        "copy_curves": copy_curves,
    }[  # fmt: skip
        scenario
    ](backend, *rest)
    print(json.dumps(result))
