"""Run a sweep: a parent MLflow run with one nested child run per config, resumable.

- Resume (default): a config whose ``rnnbench.config_hash`` already has a FINISHED run in
  the experiment is skipped; runs left RUNNING by a crash or kill are marked KILLED and
  re-run. The parent run of an earlier attempt at the same grid is reused.
- Local executor: ``workers`` long-lived worker processes (``suite.study.worker``, see
  ``LocalPool``), TensorFlow's threads split so they don't oversubscribe the cores. Each
  worker writes its own runs to the store (sqlite takes the few concurrent writes; see
  README). A worker that crashes fails only its run.
- Ray executor: one Ray task per config (``num_cpus=1`` or ``num_gpus=1``), logging to
  the same tracking URI.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from suite.core.train import TrainConfig
from suite.errors import UserError
from suite.study.spec import SweepSpec
from suite.study.worker import MARK
from tracking import (
    BACKEND_TAG,
    ERROR_TAG,
    HASH_TAG,
    HEARTBEAT_TAG,
    KIND_TAG,
    MODE_TAG,
    OWNER_TAG,
    PARENT_TAG,
    POPULATION_TAG,
    SPEC_HASH_TAG,
    SPEC_NAME_TAG,
    STATUS_TAG,
    TRAINING_RUNS,
    all_runs,
    latest_per_config,
)


def default_workers() -> int:
    """One worker per core (an RNN step is a chain of small ops: processes beat threads)."""
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass
class SweepPlan:
    spec: SweepSpec
    grid: list[TrainConfig]
    done: dict[str, str]  # config hash -> FINISHED run id (skipped when resuming)
    stale: list[str]  # RUNNING run ids left by a crash (marked KILLED when the sweep starts)
    parent_run_id: str | None  # an earlier attempt's parent run, reused when resuming
    mode: str = ""  # "" (the full grid) | "critical" (a round of probes: suite.study.critical)
    label: str = ""  # what the progress bar calls this batch [default: the spec's name]
    ignore_running: bool = False  # run even if another live process runs this sweep's parent

    @property
    def parent_key(self) -> str:
        """The parent run's ``rnnbench.spec_hash`` tag: the spec hash, ``-MODE`` appended for
        a mode other than the full grid (so a critical sweep and a grid sweep of one spec
        keep separate parents)."""
        return spec_key(self.spec, self.mode)

    @property
    def todo(self) -> list[TrainConfig]:
        return [c for c in self.grid if c.config_hash() not in self.done]


@dataclass
class SweepOutcome:
    parent_run_id: str
    results: dict[str, dict] = field(default_factory=dict)  # hash -> worker result
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False


def spec_key(spec: SweepSpec, mode: str = "") -> str:
    """The ``rnnbench.spec_hash`` tag of a sweep parent (see ``SweepPlan.parent_key``)."""
    return spec.spec_hash() + (f"-{mode}" if mode else "")


def plan_sweep(
    spec: SweepSpec,
    tracking_uri: str,
    experiment: str,
    resume: bool = True,
    grid: list[TrainConfig] | None = None,
    mode: str = "",
) -> SweepPlan:
    """Work out what a sweep will run, without starting anything.

    Args:
        grid: the configs to run [default: the spec's whole grid]; a critical sweep passes
            one round of probes.
        mode: ``""`` or ``"critical"``: which parent run of this spec to reuse.
    """
    import mlflow

    grid = spec.grid() if grid is None else grid
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    done: dict[str, str] = {}
    stale: list[str] = []
    parent = None
    if resume and exp is not None:
        hashes = {c.config_hash() for c in grid}
        runs = [r for r in all_runs(client, exp.experiment_id, TRAINING_RUNS)
                if r.data.tags.get(HASH_TAG) in hashes]  # fmt: skip
        done = {h: r.info.run_id for h, r in latest_per_config(runs).items()}
        stale = [r.info.run_id for r in runs if r.info.status == "RUNNING"]
        parents = all_runs(
            client, exp.experiment_id, f"tags.`{SPEC_HASH_TAG}` = '{spec_key(spec, mode)}'"
        )
        if parents:
            parent = max(parents, key=lambda r: r.info.start_time).info.run_id
    return SweepPlan(spec, grid, done, stale, parent, mode)


def measured_seconds(tracking_uri: str, experiment: str) -> dict[tuple, list[float]]:
    """Wall seconds of the finished training runs in the store, by (backend, cell, task,
    hidden, max_steps): the rates :func:`estimate_seconds` scales from. Reads only."""
    import mlflow

    from tracking import sqlite_path

    store = sqlite_path(tracking_uri)
    if store is not None and not store.exists():
        return {}
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    out: dict[tuple, list[float]] = {}
    for r in all_runs(client, exp.experiment_id, TRAINING_RUNS):
        p, t = r.data.params, r.data.tags
        if r.info.status != "FINISHED" or not r.info.end_time or t.get(POPULATION_TAG):
            continue
        key = (t.get(BACKEND_TAG), p.get("cell"), p.get("task"), p.get("hidden"),
               p.get("max_steps"))  # fmt: skip
        per_T = (r.info.end_time - r.info.start_time) / 1000 / max(1, int(p.get("seq_len", 1)))
        out.setdefault(key, []).append(per_T)
    return out


def estimate_seconds(todo: list[TrainConfig], measured: dict, workers: int) -> tuple:
    """(estimated wall seconds, configs with a measured rate) for running ``todo`` on
    ``workers`` processes: each config's time is the median wall time per time step of the
    store's finished runs of the same backend, cell, task, hidden size and step budget,
    times its T (a run's time is about linear in T), capped by its ``max_seconds``; configs
    with no such run are not estimated."""
    import statistics

    total, known = 0.0, 0
    for c in todo:
        got = measured.get((c.backend, c.cell, c.task, str(c.hidden), str(c.max_steps)))
        if not got:
            continue
        secs = statistics.median(got) * c.seq_len
        if c.max_seconds is not None:
            secs = min(secs, c.max_seconds + 10)  # the cap, plus start-up and evaluation
        total += secs
        known += 1
    return total / max(1, workers), known


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``_count(1, "job")`` -> ``'1 job'``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{max(1, m)} min"


def dry_run(
    spec: SweepSpec,
    tracking_uri: str,
    experiment: str,
    resume: bool = True,
    population: int = 1,
    grid: list[TrainConfig] | None = None,
    workers: int = 1,
) -> list[str]:
    """What ``rnnbench sweep --dry-run`` prints: a summary line first (counts, and the wall
    time estimated from the store's measured runs, :func:`estimate_seconds`), then one
    line per config (run, or skip when it already has a FINISHED run). Reads the store;
    never creates one.

    Args:
        population: members per population (1: every run alone), as ``plan_jobs`` groups them.
        grid: the configs to plan [default: the spec's grid] (a critical sweep's first round).
        workers: training processes at once, for the estimate.
    """
    from tracking import sqlite_path

    store = sqlite_path(tracking_uri)
    done: dict = {}
    if store is None or store.exists():
        done = plan_sweep(spec, tracking_uri, experiment, resume=resume, grid=grid).done
    grid = spec.grid() if grid is None else grid
    todo = [c for c in grid if c.config_hash() not in done]
    units = plan_jobs(todo, population)
    pops = [u for u in units if len(u) > 1]
    how = (
        f" as {_count(len(units), 'job')} ({_count(len(pops), 'population')} of up to {population})"
        if pops
        else ""
    )
    lines = [
        f"{_count(len(grid), 'config')}; {len(done)} finished (skipped on resume); {len(todo)} to run{how}"
    ]
    if todo and not pops:
        secs, known = estimate_seconds(todo, measured_seconds(tracking_uri, experiment), workers)
        if known:
            part = "" if known == len(todo) else f" for the {known} of {len(todo)} with one"
            lines.append(
                f"estimated wall time on {workers} worker(s): about {_duration(secs)}{part} "
                "(from this store's finished runs of the same cell, task, hidden size and "
                "step budget, scaled by T)"
            )
        else:
            lines.append(
                "estimated wall time: no finished run of these configs' cell, task, hidden size "
                "and step budget in this store to measure from (the presets' measured times: "
                "docs/sweeps.md)"
            )
    lines += [
        f"{'skip (finished)' if c.config_hash() in done else 'run':16} {c.run_name}" for c in grid
    ]
    return lines


def check_executor(executor: str, ray_address: str | None, tracking_uri: str) -> None:
    if executor not in ("local", "ray"):
        raise UserError(f"Unknown --executor {executor!r}; choose local or ray.")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(
                "--executor ray needs Ray: install the cluster extra, pip install 'rnnbench[cluster]'."
            ) from None
        remote = ray_address not in (None, "", "local")
        if remote and urlparse(tracking_uri).scheme in ("", "file", "sqlite"):
            raise UserError(
                f"a Ray cluster at {ray_address} runs on other machines, which cannot write the local "
                f"store {tracking_uri}; pass --tracking-uri http://HOST:5000, an `mlflow server` "
                "every worker reaches (with logins: docs/sharing.md)."
            )


class LocalPool:
    """``workers`` worker processes fed from one queue by one thread each.

    The workers start at once and warm up (import TensorFlow, Keras, MLflow: ~5 s) while the
    sweep plans and sets up its parent run; a worker left without a job is killed. Use as a
    context manager: on exit every worker is stopped and the log folder removed.
    """

    def __init__(
        self, workers: int, device: str, backend: str = "tensorflow", keep_warm: bool = False
    ) -> None:
        self.workers, self.device, self.backend = workers, device, backend
        self.keep_warm = keep_warm  # keep idle workers between run() calls (critical rounds)
        self.used: set[int] = set()  # slots whose worker has been given a job
        # TensorFlow's threads split so the workers don't oversubscribe the cores
        self.threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        self._logs = tempfile.TemporaryDirectory(prefix="rnnbench-workers-")
        self.log_dir = Path(self._logs.name)
        self.stopping = threading.Event()
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.ready = {slot: self._spawn(slot) for slot in range(workers)}

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc) -> None:
        for slot, proc in self.ready.items():  # idle workers kept warm between runs
            if proc.poll() is not None:
                continue
            if slot not in self.used:
                proc.kill()  # still warming up, never given a job: nothing to lose
                continue
            try:
                proc.stdin.close()  # the worker exits at once
                proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.shutdown(grace=15)  # no-op when every worker has exited
        self._logs.cleanup()

    def _spawn(self, slot: int) -> subprocess.Popen:
        from suite.core.backend import CPUS_ENV

        log = open(self.log_dir / f"worker{slot}.log", "ab")
        cmd = [
            sys.executable,
            "-m",
            "suite.study.worker",
            "--threads",
            str(self.threads),
            "--device",
            self.device,
            "--backend",
            self.backend,
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        cpus = self._cpus(slot)
        if cpus:  # JAX on a CPU: the worker pins itself to its cores (suite.core.backend)
            env[CPUS_ENV] = ",".join(map(str, sorted(cpus)))
        # No preexec_fn (unsafe while the pool's threads run): the worker sets its own
        # parent-death signal and CPU affinity when it starts.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
            env=env,
        )
        with self.lock:
            self.procs.append(proc)
        return proc

    def _cpus(self, slot: int) -> set[int] | None:
        """The cores of worker ``slot`` for a JAX CPU sweep with several workers, else ``None``.

        TensorFlow takes its thread counts (``--threads``); XLA has no such setting, so each
        JAX worker is pinned to its own ``threads`` cores (without it, 2 JAX workers on 2
        cores ran a grid 1.33x slower than 1 worker: measured with ``rnnbench perf``).
        """
        if self.backend != "jax" or self.device == "gpu" or self.workers < 2:
            return None
        if not hasattr(os, "sched_setaffinity"):
            return None
        allowed = sorted(os.sched_getaffinity(0))
        start = (slot * self.threads) % len(allowed)
        return {allowed[(start + i) % len(allowed)] for i in range(self.threads)}

    def run(self, jobs: list[dict], on_start, on_done) -> None:
        q: queue.Queue = queue.Queue()
        for job in jobs:
            q.put(job)

        def slot_loop(slot: int) -> None:
            proc = self.ready.pop(slot, None)
            used = False
            while not self.stopping.is_set():
                try:
                    job = q.get_nowait()
                except queue.Empty:
                    break
                if proc is None or proc.poll() is not None:
                    proc = self._spawn(slot)
                on_start(job)
                used, result = True, None
                try:
                    proc.stdin.write(json.dumps(job) + "\n")
                    proc.stdin.flush()
                    for line in proc.stdout:
                        if line.startswith(MARK):
                            result = json.loads(line[len(MARK) :])
                            break
                except (BrokenPipeError, OSError):
                    pass
                if result is None:  # the worker died mid-run
                    if self.stopping.is_set():
                        return
                    code = proc.wait()
                    tail = _tail(self.log_dir / f"worker{slot}.log")
                    how = f"signal {-code}" if code < 0 else f"exit code {code}"
                    result = {
                        "ok": False,
                        "crashed": True,
                        "hash": job["hash"],
                        "error": f"worker died ({how}){': ' + tail if tail else ''}",
                    }
                    proc = None
                on_done(job, result)
            if proc is not None and proc.poll() is None:
                if self.keep_warm and not self.stopping.is_set():
                    self.ready[slot] = proc  # the next run() starts with it
                    if used:
                        self.used.add(slot)
                    return
                if used:
                    proc.stdin.close()  # the worker exits at once (see suite.study.worker.main)
                else:
                    proc.kill()  # still warming up, never given a job: nothing to lose
                proc.wait()

        threads = [
            threading.Thread(target=slot_loop, args=(i,), daemon=True) for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            self.stopping.set()
            self.shutdown(grace=15)
            raise

    def shutdown(self, grace: float = 15) -> None:
        """SIGTERM every worker (its run in flight ends KILLED), then wait, then kill."""
        import signal

        deadline = time.time() + grace
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()


def _tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


RAY_REACH_TIMEOUT_S = 5.0  # a cluster whose port does not answer is reported within this
FORWARDED_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def join_ray(ray_address: str | None) -> None:
    """Join (or start, without an address) the Ray cluster the sweep's tasks run on, before
    the sweep writes anything to the store: a cluster that cannot be joined is a one-line
    error naming the address and the likely cause, and no parent run is left RUNNING.

    The driver's MLflow credentials (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN``)
    travel to the tasks in Ray's ``runtime_env``, so remote workers can log to an
    authenticated tracking server.

    Raises:
        UserError: the address does not answer, or Ray refused to connect (most often a
            cluster with token authentication whose token this machine lacks).
    """
    import ray

    if ray.is_initialized():
        return
    if ray_address in (None, "", "local"):  # a Ray of our own: address="local" starts one
        # even where another Ray's address is recorded in /tmp/ray (it would join that one)
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        return
    if ray_address != "auto":  # "auto": the cluster `ray start` recorded on this machine
        _check_ray_port(ray_address)
    import logging

    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    # Ray's driver tries the cluster's GCS once a second, ~20 times, before it gives up; the
    # port already answered (above), so a refusal (most often a missing token) is final:
    # 8 tries (Ray reads this variable; one the user set is kept)
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "8")
    error = None
    with _captured_stderr() as said:  # Ray's C++ client retries loudly on fd 2: keep it aside
        try:
            ray.init(
                address=ray_address,
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
                logging_level=logging.ERROR,
                runtime_env={"env_vars": env} if env else None,
            )
        except Exception as e:
            error = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    if error is None:
        return
    token_on = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    refused = "Unauthenticated" in said() or "InvalidAuthToken" in said()
    if refused and token_on:
        cause = (
            "the cluster refused this machine's token: use the head's (`ray get-auth-token` "
            "there) in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    elif refused or not token_on:
        cause = (
            ("the cluster requires a token: " if refused else "if it uses tokens: ")
            + "export RAY_AUTH_MODE=token and put the head's token (`ray get-auth-token` there) "
            "in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    else:
        cause = "check that the head runs the same Ray version as this machine"
    raise UserError(
        f"cannot join the Ray cluster at {ray_address}: its port answers but Ray could not "
        f"connect ({error}); {cause}"
    )


@contextlib.contextmanager
def _captured_stderr():
    """Send file descriptor 2 (native code writes there too) to a temporary file for the
    block; yields a function that returns what was written."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        text: list[str] = []
        try:
            yield lambda: "".join(text)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode(errors="replace"))


def _check_ray_port(ray_address: str) -> None:
    """``HOST:PORT`` must accept a TCP connection (Ray itself retries for minutes)."""
    import socket

    address = ray_address.removeprefix("ray://")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--ray-address {ray_address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the head's "
            "`ray start --head --port` address)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=RAY_REACH_TIMEOUT_S):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UserError(
            f"cannot reach the Ray cluster at {ray_address} ({reason}); check that "
            f"`ray start --head --port {port}` runs on {host} and that the port is open to "
            "this machine"
        ) from None


def _run_ray(jobs, ray_address, device, on_start, on_done) -> None:
    import ray

    from suite.study.worker import run_job

    join_ray(ray_address)
    use_gpu = device == "gpu"
    remote = ray.remote(num_cpus=0 if use_gpu else 1, num_gpus=1 if use_gpu else 0, max_retries=0)(
        run_job
    )
    pending = {}
    for job in jobs:
        pending[remote.remote(job, 1, device)] = job
        on_start(job)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            job = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # a crashed Ray worker fails only this run
                result = {
                    "ok": False,
                    "crashed": True,
                    "hash": job["hash"],
                    "error": f"{type(e).__name__}: {e}",
                }
            on_done(job, result)


def run_sweep(
    plan: SweepPlan,
    tracking_uri: str,
    experiment: str,
    workers: int,
    executor: str = "local",
    ray_address: str | None = None,
    device: str = "auto",
    console=None,
    pool: LocalPool | None = None,
    population: int = 1,
) -> SweepOutcome:
    """Run ``plan.todo`` under a parent run; returns what happened.

    Args:
        pool: a ``LocalPool`` started earlier (the CLI starts it before planning, so the
            workers warm up meanwhile); default: one is started here for the local executor.
        population: train configs that differ only in seed as populations of up to this
            many members (JAX backend; 1: every run alone). See :func:`plan_jobs`.
    """
    args = (plan, tracking_uri, experiment, executor, ray_address, device, console)
    if executor == "ray" or pool is not None:  # a pool passed in stays its caller's to close
        return _run_sweep(*args, pool, population)
    with LocalPool(min(workers, max(1, len(plan.todo))), device, plan.spec.backend) as pool:
        return _run_sweep(*args, pool, population)


HEARTBEAT_S = 20.0  # a running sweep renews its parent's heartbeat tag this often
STALE_S = 90.0  # a heartbeat older than this is a sweep that died (killed, crashed): ignored


def owner() -> str:
    """``host:pid`` of this process: who runs a sweep."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def check_not_running(client, parent_id: str, now: float | None = None) -> None:
    """Refuse to run a sweep whose parent another live process is running.

    The sweep's parent run carries ``rnnbench.owner`` (host:pid) and ``rnnbench.heartbeat``
    (renewed every {HEARTBEAT_S:.0f} s while it runs). A parent that is RUNNING with a
    heartbeat younger than {STALE_S:.0f} s from another process means the same sweep is
    running: one line says who and since when, and how to go on. A stale heartbeat (a crashed
    machine), or an owner on this host whose process is gone (a sweep killed with SIGKILL),
    never blocks.

    Raises:
        UserError: the sweep is running elsewhere.
    """
    run = client.get_run(parent_id)
    tags = run.data.tags
    beat, who = tags.get(HEARTBEAT_TAG), tags.get(OWNER_TAG)
    if run.info.status != "RUNNING" or not beat or who == owner():
        return
    age = (time.time() if now is None else now) - float(beat)
    if age > STALE_S or _dead_here(who):
        return
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.info.start_time / 1000))
    raise UserError(
        f"sweep {tags.get(SPEC_NAME_TAG, parent_id)} is already running on this store "
        f"(parent run {parent_id}, process {who}, started {since}, heartbeat {age:.0f} s ago); "
        "wait for it to finish, or stop it (kill its pid) and run the same command to resume; "
        "--ignore-running runs it anyway (configs may then train twice)."
    )


def _dead_here(who: str | None) -> bool:
    """Whether ``host:pid`` names a process of this host that no longer exists (a sweep
    killed with SIGKILL a moment ago: its heartbeat is fresh, its process gone)."""
    import socket

    host, _, pid = (who or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Heartbeat:
    """Renews a sweep parent's heartbeat tag from a daemon thread while the sweep runs."""

    def __init__(self, client, parent_id: str, every: float = HEARTBEAT_S) -> None:
        self.client, self.parent_id, self.every = client, parent_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _beat(self) -> None:
        self.client.set_tag(self.parent_id, HEARTBEAT_TAG, f"{time.time():.0f}")

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self._beat()
            except Exception:  # a missed beat is not an error; the next one retries
                pass

    def __enter__(self) -> Heartbeat:
        self.client.set_tag(self.parent_id, OWNER_TAG, owner())
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def plan_jobs(todo: list[TrainConfig], population: int = 1) -> list[list[TrainConfig]]:
    """The units of work: single configs, or populations of configs that differ only in seed
    (at most ``population`` members each). Resume is per member: ``todo`` holds only the
    configs without a FINISHED run, so a killed population reruns just its unfinished members."""
    if population <= 1:
        return [[c] for c in todo]
    from suite.core.population import split_populations

    return split_populations(todo, population)


def _job(configs: list[TrainConfig], tracking_uri, experiment, parent_id) -> dict:
    base = {"tracking_uri": tracking_uri, "experiment": experiment, "parent_run_id": parent_id}
    if len(configs) == 1:
        c = configs[0]
        return {**base, "config": c.to_dict(), "hash": c.config_hash(), "name": c.run_name}
    return {
        **base,
        "configs": [c.to_dict() for c in configs],
        "hashes": [c.config_hash() for c in configs],
        "names": [c.run_name for c in configs],
        "hash": "population-" + "-".join(c.config_hash()[:6] for c in configs),
        "name": f"{configs[0].run_name} +{len(configs) - 1} seeds",
    }


def job_members(job: dict, result: dict) -> list[tuple[str, str, dict]]:
    """``(config hash, run name, member result)`` for each config a job trained."""
    if "configs" not in job:
        return [(job["hash"], job["name"], result)]
    members = result.get("members") if result.get("ok") else None
    if members is None:  # the whole population failed: each member shares the error
        members = [{**result, "hash": h} for h in job["hashes"]]
    return list(zip(job["hashes"], job["names"], members, strict=True))


def _run_sweep(
    plan, tracking_uri, experiment, executor, ray_address, device, console, pool, population=1
):
    import mlflow
    from mlflow.entities import Param
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    client = mlflow.MlflowClient(tracking_uri)
    if plan.parent_run_id and not plan.ignore_running:
        check_not_running(client, plan.parent_run_id)  # before touching its RUNNING runs
    for run_id in plan.stale:  # left RUNNING by a crash or kill: mark KILLED, re-run
        client.set_tag(run_id, STATUS_TAG, "killed")
        client.set_terminated(run_id, "KILLED")
    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.set_experiment(experiment)
    spec = plan.spec
    if plan.parent_run_id:
        parent_id = plan.parent_run_id
        client.update_run(parent_id, status="RUNNING")
    else:
        parent = client.create_run(
            exp.experiment_id,
            run_name=f"sweep-{spec.name}",
            tags={
                KIND_TAG: "sweep",
                SPEC_HASH_TAG: plan.parent_key,
                SPEC_NAME_TAG: spec.name,
                BACKEND_TAG: spec.backend,
                **({MODE_TAG: plan.mode} if plan.mode else {}),
            },
        )
        parent_id = parent.info.run_id
        params = {
            "spec": spec.name,
            "origin": spec.origin,
            "grid_size": len(spec.grid()),  # critical: the most it runs
            **({"mode": plan.mode} if plan.mode else {}),
            "backend": spec.backend,
            **{k: ",".join(map(str, getattr(spec, k))) for k in ("tasks", "seq_lens", "cells",
                                                                  "clips", "seeds")},
            **({"optimizers": " ".join(spec.optimizers)} if spec.optimizers else {}),
        }  # fmt: skip
        # one request (a server with logins checks the password on each)
        client.log_batch(parent_id, params=[Param(k, str(v)) for k, v in params.items()])
        client.log_text(parent_id, spec.source, "sweep.toml")
    outcome = SweepOutcome(parent_id)
    todo = plan.todo
    jobs = [_job(g, tracking_uri, experiment, parent_id) for g in plan_jobs(todo, population)]
    running: dict[str, str] = {}
    lock = threading.Lock()
    progress = Progress(
        TextColumn("[bold]sweep {task.fields[spec]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[running]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    bar = progress.add_task("sweep", total=len(todo), spec=plan.label or spec.name, running="")

    def show() -> None:
        names = list(running.values())
        text = ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")
        progress.update(bar, running=text)

    def on_start(job) -> None:
        with lock:
            running[job["hash"]] = job["name"]
            show()

    def on_done(job, result) -> None:
        with lock:
            running.pop(job["hash"], None)
            for h, name, member in job_members(job, result):
                outcome.results[h] = member
                if not member.get("ok"):
                    outcome.failed.append(name)
                    if result.get("crashed"):
                        _mark_crashed(client, exp.experiment_id, parent_id, h, member["error"])
                    progress.console.print(f"[red]FAILED[/] {name}: {member['error'][:300]}")
                progress.advance(bar)
            show()

    import signal

    def on_sigterm(signum, frame):  # `kill PID` stops the sweep as cleanly as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    heartbeat = Heartbeat(client, parent_id).__enter__()  # others see this sweep is alive
    try:
        with progress:
            if executor == "ray":
                _run_ray(jobs, ray_address, device, on_start, on_done)
            else:
                pool.run(jobs, on_start, on_done)
    except KeyboardInterrupt:
        outcome.interrupted = True
        exp_runs = all_runs(client, exp.experiment_id, f"tags.`{PARENT_TAG}` = '{parent_id}'")
        for run in exp_runs:
            if run.info.status == "RUNNING":
                client.set_tag(run.info.run_id, STATUS_TAG, "killed")
                client.set_terminated(run.info.run_id, "KILLED")
        client.set_terminated(parent_id, "KILLED")
        return outcome
    finally:
        heartbeat.__exit__(None, None, None)
        signal.signal(signal.SIGTERM, previous)
    client.set_terminated(parent_id, "FAILED" if outcome.failed else "FINISHED")
    return outcome


def _mark_crashed(client, experiment_id: str, parent_id: str, config_hash: str, error: str) -> None:
    """The worker died: its run (if it got that far) is RUNNING; record it as FAILED."""
    flt = f"tags.`{HASH_TAG}` = '{config_hash}' and tags.`{PARENT_TAG}` = '{parent_id}'"
    for run in all_runs(client, experiment_id, flt):
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, STATUS_TAG, "failed")
            client.set_tag(run.info.run_id, ERROR_TAG, error[:5000])
            client.set_terminated(run.info.run_id, "FAILED")


def summary_rows(plan: SweepPlan, tracking_uri: str, experiment: str) -> list[dict]:
    """One row per task@T × cell × clip × optimizer, aggregated over seeds, read back from
    MLflow (``clip`` is the treatment label, ``optimizer`` the optimizer label)."""
    import statistics

    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    by_hash: dict[str, object] = {}
    if exp is not None:
        by_hash = latest_per_config(all_runs(client, exp.experiment_id, TRAINING_RUNS))
    groups: dict[tuple, list] = {}
    for c in plan.grid:
        groups.setdefault((c.task, c.seq_len, c.cell, c.treatment, c.optimizer_label), []).append(
            by_hash.get(c.config_hash())
        )
    rows = []
    for (task, T, cell, clip, optimizer), runs in groups.items():
        got = [r for r in runs if r is not None]
        statuses = [r.data.tags.get(STATUS_TAG, "?") for r in got]
        solved = [r for r in got if r.data.tags.get(STATUS_TAG) == "solved"]
        rows.append(
            {
                "task": task,
                "seq_len": T,
                "cell": cell,
                "clip": clip,
                "optimizer": optimizer,
                "runs": len(runs),
                "finished": len(got),
                "solved": len(solved),
                "diverged": statuses.count("diverged"),
                "median_steps": statistics.median(r.data.metrics["steps_to_solve"] for r in solved)
                if solved
                else None,
                "median_seconds": statistics.median(
                    r.data.metrics["seconds_to_solve"] for r in solved
                )
                if solved
                else None,
                "best_ratio": min(
                    (r.data.metrics.get("val_loss_ratio", float("inf")) for r in got), default=None
                ),
            }
        )
    return rows
