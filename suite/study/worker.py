"""A sweep worker: trains the configs it is sent, one at a time, each in its own MLflow run.

Local sweeps start ``python -m suite.study.worker --threads N --device D --backend B`` processes that read one
JSON job per line on stdin and answer one ``@@rnnbench@@ {json}`` line on stdout per job.
A worker that crashes (even a segfault) takes down only the job it was running; the sweep
records that run as FAILED and starts a fresh worker. On Linux a worker dies with its sweep
(``PR_SET_PDEATHSIG``), so a ``kill -9`` of the sweep leaves no orphan to finish a run twice.
The Ray executor calls :func:`run_job` inside Ray tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from suite.core.train import TrainCallbacks

MARK = "@@rnnbench@@ "


def set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


def run_job(job: dict, threads: int | None = None, device: str = "auto") -> dict:
    """Train one sweep job and return a JSON-friendly summary.

    The job's freed buffers go back to the system before the next job
    (``suite.core.backend.release_freed_memory``): a worker holds what one run uses, not the
    largest heap any of its runs grew.

    Args:
        job: ``{"config": TrainConfig fields, "tracking_uri", "experiment", "parent_run_id"}``.
    """
    from suite.core.backend import release_freed_memory

    try:
        return _run_job(job, threads, device)
    finally:
        release_freed_memory()


def _run_job(job: dict, threads: int | None, device: str) -> dict:
    import logging

    from suite.core.backend import configure

    first = job["configs"][0] if "configs" in job else job["config"]
    configure(device=device, threads=threads, backend=first.get("backend"))
    import mlflow  # noqa: F401

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from suite.core.train import TrainConfig
    from suite.study.record import run_and_log

    if "configs" in job:
        return _run_population(job)
    config = TrainConfig(**job["config"])
    try:
        run_id, r = run_and_log(
            config,
            job["tracking_uri"],
            job["experiment"],
            parent_run_id=job.get("parent_run_id"),
            callbacks=[_CrashDrill(config.run_name)],
        )
    except Exception as e:  # recorded as FAILED by run_and_log; the sweep goes on
        return {"ok": False, "hash": config.config_hash(), "error": f"{type(e).__name__}: {e}"}
    return _summary(config, run_id, r)


def _summary(config, run_id: str, r) -> dict:
    return {
        "ok": True,
        "hash": config.config_hash(),
        "run_id": run_id,
        "status": r.status,
        "steps": r.steps,
        "steps_to_solve": r.steps_to_solve,
        "seconds_to_solve": r.seconds_to_solve,
        "train_seconds": r.train_seconds,
        "val_loss_ratio": r.val_loss_ratio,
    }


def _run_population(job: dict) -> dict:
    """A population job: ``{"configs": [...], "hashes": [...], ...}`` -> one summary per member."""
    from suite.core.train import TrainConfig
    from suite.study.record import run_population_and_log

    configs = [TrainConfig(**c) for c in job["configs"]]
    try:
        done = run_population_and_log(
            configs,
            job["tracking_uri"],
            job["experiment"],
            parent_run_id=job.get("parent_run_id"),
        )
    except Exception as e:  # every member recorded as FAILED; the sweep goes on
        return {"ok": False, "hash": job["hash"], "error": f"{type(e).__name__}: {e}"}
    members = [_summary(c, run_id, r) for c, (run_id, r) in zip(configs, done, strict=True)]
    return {"ok": True, "hash": job["hash"], "members": members}


def _stop_on_sigterm() -> None:
    """The sweep stops a worker with SIGTERM: the run in flight ends KILLED, then we exit.

    Ctrl-C in a terminal reaches every process of the group; workers ignore SIGINT and
    leave it to the sweep, which sends SIGTERM, so the KILLED bookkeeping is not cut short.
    """
    import signal

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the clean-up finish
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, handler)


class _CrashDrill(TrainCallbacks):
    """Fire drill for the crash handling: ``RNNBENCH_CRASH_DRILL=<run name>`` makes the worker
    segfault (a real SIGSEGV) right after that run started. Off unless the variable is set."""

    def __init__(self, run_name: str) -> None:
        self.armed = os.environ.get("RNNBENCH_CRASH_DRILL") == run_name

    def on_start(self, config, task, model) -> None:
        if self.armed:
            import signal

            os.kill(os.getpid(), signal.SIGSEGV)


def warm_up(threads: int | None, device: str, backend: str | None = None) -> None:
    """Import and configure the heavy modules before the first job arrives.

    The sweep starts its workers before it sets up its own MLflow parent run, so these
    seconds (TensorFlow, Keras, MLflow imports) overlap with the parent's instead of
    adding to every sweep's wall time.
    """
    from suite.core.backend import configure

    configure(device=device, threads=threads, backend=backend)
    import keras  # noqa: F401
    import mlflow  # noqa: F401

    try:  # what opening a sqlite store imports at the first job (~0.6 s here)
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    except ImportError:  # an MLflow without it: the first job imports what it needs
        pass
    import suite.core.train  # noqa: F401
    import suite.study.record  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default=None)
    args = parser.parse_args()
    set_parent_death_signal()
    _stop_on_sigterm()
    try:
        warm_up(args.threads, args.device, args.backend)
        for line in sys.stdin:
            if not line.strip():
                continue
            result = run_job(json.loads(line), threads=args.threads, device=args.device)
            sys.stdout.write(MARK + json.dumps(result) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        sys.exit(130)
    # No more jobs: every run is ended and its result sent. Skip the interpreter's
    # teardown (TensorFlow's takes ~1.7 s here), which the sweep would otherwise wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
