"""Process set-up for the Keras backend that trains: which backend, which device, threads.

Keras 3 runs on TensorFlow or JAX (``--backend``). The choice is fixed before ``keras`` is
first imported (with the default backend, ``import keras`` imports TensorFlow), so every
entry point calls :func:`configure` (or :func:`select_backend`) before anything that
imports Keras. A JAX process never imports TensorFlow.

Example:
    >>> from suite.core.backend import configure
    >>> configure(backend="jax", device="cpu")["backend"]      # doctest: +SKIP
    'jax'
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from suite.errors import ConfigError, DeviceError

DEVICES = ("auto", "cpu", "gpu")
BACKENDS = ("tensorflow", "jax")
_configured: dict | None = None

NO_GPU = {
    "tensorflow": (
        "--device gpu was requested but TensorFlow sees no GPU; install the `gpu` extra "
        "(pip install 'rnnbench[gpu]') on a machine with an NVIDIA GPU, or use --device cpu."
    ),
    "jax": (
        "--device gpu was requested but JAX sees no GPU; install the `jax-cuda` extra "
        "(pip install 'rnnbench[jax-cuda]') on a machine with an NVIDIA GPU, or use --device cpu."
    ),
}


def default_backend() -> str:
    """``$KERAS_BACKEND`` when it names a supported backend, else ``tensorflow``."""
    env = os.environ.get("KERAS_BACKEND", "").strip().lower()
    return env if env in BACKENDS else "tensorflow"


def check_backend(backend: str) -> str:
    """Raise ``ConfigError`` naming ``backend`` unless it is supported (and installed, for JAX)."""
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}.")
    if backend == "jax":
        import importlib.util

        if importlib.util.find_spec("jax") is None:
            raise ConfigError(
                "--backend jax needs JAX: pip install 'rnnbench[jax]' (CPU) or "
                "'rnnbench[jax-cuda]' (NVIDIA GPU)."
            )
    return backend


def active_backend() -> str | None:
    """The backend this process runs Keras on (configured or imported), else ``None``."""
    if _configured is not None:
        return _configured["backend"]
    if "keras" not in sys.modules:
        return None
    return sys.modules["keras"].backend.backend()


def select_backend(backend: str | None = None) -> str:
    """Fix the Keras backend of this process (before ``keras`` is imported) and return it.

    Raises:
        ConfigError: unknown backend, or JAX asked for but not installed.
        DeviceError: Keras already runs on another backend in this process.
    """
    backend = check_backend(backend or default_backend())
    active = active_backend()
    if active is not None and active != backend:
        raise DeviceError(
            f"this process already runs Keras on {active!r}; --backend {backend} needs a new "
            "process (a Keras backend is fixed when keras is first imported)."
        )
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        # Small models: take GPU memory as needed, not 75 % up front, so several JAX
        # processes (sweep workers, perf's children) can share one GPU.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if backend == "jax" and "tensorflow" not in sys.modules:
        # Keras probes `import tensorflow` when it is installed even on JAX (its serializer
        # checks for tf.TensorShape when saving a model): that costs seconds and GBs and
        # breaks the promise that a JAX run never imports TensorFlow. Python's documented
        # block (a None entry in sys.modules) makes that probe answer "not available".
        sys.modules["tensorflow"] = None
    return backend


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ info/warning lines unless the user asked for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _stderr_captured():
    """Capture fd 2 (C++ start-up chatter printed before absl logging starts).

    Set RNNBENCH_TF_LOGS=1 to see it. The captured text is replayed if an error escapes.
    """
    if os.environ.get("RNNBENCH_TF_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """Import TensorFlow quietly (no C++ start-up banner) and return the module."""
    quiet_tensorflow()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _stderr_captured():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # e.g. retracing notes when a process trains many models
        tf.config.list_physical_devices("GPU")  # the CUDA probe prints here too
    return tf


@contextlib.contextmanager
def _without_sklearn():
    """Keep scikit-learn out of ``import keras`` (a scoped version of the TensorFlow block in
    :func:`select_backend`).

    Keras imports scikit-learn for its ``keras.wrappers`` when it is installed (MLflow
    installs it): 1.2 s of every training process's start (measured: ``import keras`` on
    TensorFlow 5.9 s -> 4.7 s of CPU) for wrappers rnnbench never uses; Keras treats it as
    absent. The block is lifted afterwards, so a later ``import sklearn`` works as usual.
    """
    if "sklearn" in sys.modules or "keras" in sys.modules:
        yield
        return
    sys.modules["sklearn"] = None
    try:
        yield
    finally:
        if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
            del sys.modules["sklearn"]


def import_jax(device: str = "auto"):
    """Import JAX for ``device`` (``cpu`` hides any GPU: set before JAX starts) and return it."""
    if device == "cpu" and "jax" not in sys.modules:
        os.environ["JAX_PLATFORMS"] = "cpu"
    with _stderr_captured():
        import jax

        jax.devices()  # the platform probe (and its warnings) happen here
    return jax


def _jax_gpus(jax) -> list:
    try:
        return jax.devices("gpu")
    except RuntimeError:  # "Unknown backend gpu" / no CUDA plugin
        return []


def gpu_device_nodes() -> bool:
    """False where no GPU can be visible to any backend, told without importing one: on
    Linux a GPU reaches a process through its device files (``/dev/nvidia*`` for NVIDIA's
    driver, ``/dev/kfd`` for ROCm, ``/dev/dxg`` under WSL 2); without any, ``--device gpu``
    is refused before TensorFlow's ~10 s of import. Elsewhere: True (ask the backend)."""
    if not sys.platform.startswith("linux"):
        return True
    import glob

    return bool(
        glob.glob("/dev/nvidia*") or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg")
    )


def jax_gpu_plugin_installed() -> bool:
    """Whether a JAX GPU backend could load here, answered without importing JAX.

    JAX reaches a GPU only through a PJRT plugin (``jax-cuda12-plugin``, ``jax-cuda13-plugin``,
    the ROCm ones): a module of the ``jax_plugins`` namespace package or a ``jax_plugins``
    entry point, which is where JAX itself looks for them. Without one, JAX on this machine is
    CPU-only, and a sweep driver need not spend the ~2.5 s of ``import jax`` to learn it.
    """
    import importlib.metadata as md
    import importlib.util

    return importlib.util.find_spec("jax_plugins") is not None or bool(
        md.entry_points(group="jax_plugins")
    )


def check_gpu_visible(backend: str | None = None) -> None:
    """Raise ``DeviceError`` (:data:`NO_GPU`) unless ``backend`` sees a GPU on this machine.

    Cheap next to a run (builds no model), so a process that only starts others (a sweep)
    can refuse ``--device gpu`` before it writes anything.
    """
    backend = check_backend(backend or default_backend())
    if not gpu_device_nodes():
        raise DeviceError(NO_GPU[backend])
    if backend == "jax":
        if not jax_gpu_plugin_installed() or not _jax_gpus(import_jax()):
            raise DeviceError(NO_GPU["jax"])
    elif not import_tensorflow().config.list_physical_devices("GPU"):
        raise DeviceError(NO_GPU["tensorflow"])


def configure(
    device: str = "auto",
    threads: int | None = None,
    deterministic: bool = True,
    backend: str | None = None,
) -> dict:
    """Configure the Keras backend for this process and return what was chosen.

    Args:
        device: ``auto`` (GPU when the backend sees one), ``cpu`` or ``gpu``.
        threads: TensorFlow threads for this process (``None``: TensorFlow's default, all
            cores). Both intra-op and inter-op pools get this many: the backward pass of an
            RNN step has independent branches (dW and dh), and on 2 cores inter-op = 1 made
            LSTM training ~24 % and SimpleRNN ~30 % slower than inter-op = 2 (measured,
            batch 64, T = 100, hidden 128). A sweep gives each of N workers cores / N.
            JAX (XLA) sizes its own CPU thread pool; this setting does not apply to it.
        deterministic: enable TensorFlow op determinism (same seed, same numbers on CPU;
            JAX on CPU is deterministic by default).
        backend: ``tensorflow`` or ``jax`` [default: ``$KERAS_BACKEND``, else tensorflow].
            A later call without ``backend`` returns the first call's choice.

    Returns:
        ``{"backend", "device": "cpu"|"gpu", "device_name": str, "threads": int|None}``;
        on JAX also ``"malloc_kept"``: whether glibc took the settings that let a step reuse
        the memory the previous one freed (``_keep_freed_memory``).

    Raises:
        ConfigError: unknown device or backend, JAX not installed.
        DeviceError: ``--device gpu`` without a visible GPU; Keras already on another backend.
    """
    global _configured
    if device not in DEVICES:
        raise ConfigError(f"Unknown device {device!r}; choose one of: {', '.join(DEVICES)}.")
    if _configured is not None:
        if backend is not None and backend != _configured["backend"]:
            raise DeviceError(
                f"this process already trains on {_configured['backend']!r}; --backend {backend} "
                "needs a new process."
            )
        return _configured
    backend = select_backend(backend or active_backend() or default_backend())
    if device == "gpu" and not gpu_device_nodes():  # before the backend's seconds of import
        raise DeviceError(NO_GPU[backend])
    if backend == "jax":
        _configured = _configure_jax(device, threads)
    else:
        _configured = _configure_tensorflow(device, threads, deterministic)
    return _configured


def _cpu_name() -> str:
    import platform

    return platform.processor() or platform.machine() or "cpu"


CPUS_ENV = "RNNBENCH_CPUS"  # e.g. "0,1": the cores a JAX worker may use (set by sweeps and perf)


def _pin_cpus() -> None:
    """Restrict this process to ``$RNNBENCH_CPUS`` (before JAX starts: XLA sizes its CPU
    thread pool from the cores it may use, and has no thread-count setting of its own)."""
    text = os.environ.get(CPUS_ENV, "").strip()
    if text and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in text.split(",")})


# glibc malloc settings for a JAX process (mallopt parameter numbers from <malloc.h>)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_MALLOC_SETTINGS = (
    (_M_ARENA_MAX, 1),  # XLA's worker threads allocate from the main heap, not 64 MiB arenas
    (_M_MMAP_MAX, 0),  # every buffer from the heap: none mmap'd alone and unmapped on free
    (_M_TRIM_THRESHOLD, -1),  # freed heap kept for the next step: never trimmed
    (_M_TOP_PAD, 64 << 20),  # the heap grows 64 MiB at a time
)


def _keep_freed_memory() -> bool:
    """Let glibc keep the memory a train step frees, for the next step to reuse.

    XLA on a CPU allocates every step's buffers (the activations kept for backprop through T
    steps, one temp block per step: 50 MiB for a SimpleRNN, 164 MiB for an LSTM, 225 MiB for a
    GRU at batch 64, hidden 128, T = 400) with malloc from its worker threads and frees them at
    the step's end. With glibc's defaults each step faulted those pages in again, three ways:

    - a buffer over the mmap threshold is mmap'd alone and unmapped on free (SimpleRNN T = 400:
      t(400)/t(100) 5.9 -> 4.0 without it);
    - a worker thread allocates from its own arena, whose heaps are at most 64 MiB: a larger
      block is mmap'd whatever the mmap settings (LSTM/GRU T = 400: 42,000 faults per step);
      one arena, the main heap, serves every thread instead;
    - the main heap is trimmed when its free top exceeds the trim threshold: a GRU step grows
      it by ~470 MiB and shrinks it again (13,000-20,000 faults per step at a 512 MiB
      threshold); it is never trimmed.

    Measured 2026-12-04 (this 2-core CPU, ms per step at T = 100 / 400): LSTM 68 / 261 ->
    43 / 179, GRU 40 / 199 -> 39 / 165-170, no page faults left at T = 400. The price: a JAX
    process keeps the largest heap it has used (its peak RSS) until it calls
    :func:`release_freed_memory`, as a sweep worker does after each job and ``perf`` after each
    measurement. Returns whether the settings took (``False`` off glibc, e.g. macOS: nothing
    changes there).
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in _MALLOC_SETTINGS)


def release_freed_memory() -> bool:
    """Hand the heap that freed buffers left back to the system (glibc's ``malloc_trim(0)``).

    Between runs, not between steps: a run's steps keep reusing the memory they free
    (:func:`_keep_freed_memory`), and the next run faults in only what it uses. Without it a
    process keeps its largest heap: ``perf``'s attention measurement (the transformer at
    T = 1000, batch 64) left a JAX process at 16 GiB resident, and the rest of the run
    shared the 24 GiB machine with it; after ``malloc_trim(0)``, 0.46 GiB (2026-12-04).
    Returns whether glibc released anything (``False`` off glibc, or nothing to release).
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    return libc.malloc_trim(0) == 1


def _libc():
    """The C library through ctypes, or ``None`` where it cannot be loaded."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _configure_jax(device: str, threads: int | None) -> dict:
    from suite.core.jax_cache import enable

    _pin_cpus()
    malloc_kept = _keep_freed_memory()
    jax = import_jax(device)
    enable(jax)  # seeds and reruns of one shape compile once (suite/core/jax_cache.py)
    with _without_sklearn():
        import keras  # noqa: F401
    gpus = _jax_gpus(jax)
    if device == "gpu" and not gpus:
        raise DeviceError(NO_GPU["jax"])
    if gpus and device != "cpu":
        kind, name = "gpu", gpus[0].device_kind
    else:
        kind, name = "cpu", _cpu_name()
    return {"backend": "jax", "device": kind, "device_name": f"{kind}: {name}", "threads": threads,
            "malloc_kept": malloc_kept}  # fmt: skip


def _configure_tensorflow(device: str, threads: int | None, deterministic: bool) -> dict:
    with _without_sklearn():
        tf = import_tensorflow()
        import keras  # noqa: F401
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        except RuntimeError:  # runtime already initialised: keep what it has
            pass
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DeviceError(NO_GPU["tensorflow"])
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        gpus = []
    if gpus:
        for g in gpus:
            try:
                tf.config.experimental.set_memory_growth(g, True)
            except RuntimeError:
                pass
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        kind = "gpu"
    else:
        name, kind = _cpu_name(), "cpu"
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return {
        "backend": "tensorflow",
        "device": kind,
        "device_name": f"{kind}: {name}",
        "threads": threads,
    }


def backend_requirements(backend: str) -> list[str]:
    """Pinned pip requirements of a model trained on ``backend`` (for its MLflow model)."""
    import importlib.metadata as md

    names = ["keras"] + (["jax", "jaxlib"] if backend == "jax" else ["tensorflow"])
    out = []
    for n in names:
        try:
            out.append(f"{n}=={md.version(n)}")
        except md.PackageNotFoundError:
            out.append(n)
    return out


def compiled_forward(model):
    """``fn(x: np.ndarray) -> np.ndarray``: the model's inference call, compiled once for
    the active backend (a traced ``tf.function`` or a ``jax.jit`` of ``stateless_call``),
    so latency measurements compare like with like."""
    import numpy as np

    if active_backend() == "jax":
        import jax

        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        fn = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
        return lambda x: np.asarray(fn(tv, ntv, x))
    tf = import_tensorflow()
    spec = tf.TensorSpec([None, None, int(model.input_shape[-1])], tf.float32)
    tf_fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return lambda x: tf_fn(tf.constant(x)).numpy()
