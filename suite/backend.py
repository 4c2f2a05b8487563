"""TensorFlow set-up: quiet logs, thread counts, device choice, determinism.

Call :func:`configure` once per process before building models; it must run before
TensorFlow creates its runtime (thread pools cannot change afterwards).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

DEVICES = ("auto", "cpu", "gpu")
_configured: dict | None = None


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


NO_GPU = (
    "--device gpu was requested but TensorFlow sees no GPU; install the `gpu` extra "
    "(pip install 'rnnbench[gpu]') on a machine with an NVIDIA GPU, or use --device cpu."
)


def check_gpu_visible() -> None:
    """Raise ``RuntimeError`` (:data:`NO_GPU`) unless TensorFlow sees a GPU on this machine.

    Cheap next to a run (it imports TensorFlow but builds no runtime), so a process that
    only starts others (a sweep) can refuse ``--device gpu`` before it writes anything.
    """
    if not import_tensorflow().config.list_physical_devices("GPU"):
        raise RuntimeError(NO_GPU)


def configure(device: str = "auto", threads: int | None = None, deterministic: bool = True) -> dict:
    """Configure TensorFlow for this process and return what was chosen.

    Args:
        device: ``auto`` (GPU when TensorFlow sees one), ``cpu`` or ``gpu``.
        threads: TensorFlow threads for this process (``None``: TensorFlow's default, all
            cores). Both intra-op and inter-op pools get this many: the backward pass of an
            RNN step has independent branches (dW and dh), and on 2 cores inter-op = 1 made
            LSTM training ~24 % and SimpleRNN ~30 % slower than inter-op = 2 (measured,
            batch 64, T = 100, hidden 128). A sweep gives each of N workers cores / N.
        deterministic: enable TensorFlow op determinism (same seed, same numbers on CPU).

    Returns:
        ``{"device": "cpu"|"gpu", "device_name": str, "threads": int|None}``.
    """
    global _configured
    if device not in DEVICES:
        raise ValueError(f"Unknown device {device!r}; choose one of: {', '.join(DEVICES)}.")
    if _configured is not None:
        return _configured
    tf = import_tensorflow()

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        except RuntimeError:  # runtime already initialised: keep what it has
            pass
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise RuntimeError(NO_GPU)
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
        import platform

        name = platform.processor() or platform.machine() or "cpu"
        kind = "cpu"
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    _configured = {"device": kind, "device_name": f"{kind}: {name}", "threads": threads}
    return _configured
