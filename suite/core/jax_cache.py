"""JAX's persistent compilation cache, shared by every rnnbench process on the machine.

A JAX run compiles its train step, its evaluation and its gradient profile with XLA before
the first step; on a CPU that is seconds per run, which a short run never amortises. With
the cache on, the first run of a shape writes the compiled executables to a folder and every
later process that traces the same computation (another seed, a rerun, another sweep worker)
loads them instead of compiling: seeds and reruns of one config compile once.

Folder: ``$RNNBENCH_JAX_CACHE`` [default: ``$XDG_CACHE_HOME/rnnbench/jax``, else
``~/.cache/rnnbench/jax``]; ``RNNBENCH_JAX_CACHE=off`` turns it off. Every executable is
cached, however fast it compiled (JAX's own default skips those under one second).

Each run logs how the cache served it (:func:`counts`, read before and after training):
``jax_cache_hits``, ``jax_cache_misses`` (compilations that found no entry and wrote one)
and ``jax_compile_seconds_saved`` (JAX's estimate: the compile time an entry recorded minus
the time to load it; below zero for executables that compile faster than they load).

Example:
    >>> import jax                                                  # doctest: +SKIP
    >>> enable(jax)                                                 # doctest: +SKIP
    '/home/me/.cache/rnnbench/jax'
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RNNBENCH_JAX_CACHE"
_COUNTS = {"jax_cache_hits": 0, "jax_cache_misses": 0, "jax_compile_seconds_saved": 0.0}
_EVENTS = {
    "/jax/compilation_cache/cache_hits": "jax_cache_hits",
    "/jax/compilation_cache/cache_misses": "jax_cache_misses",
}
_state = {"dir": None, "listening": False}


def cache_dir() -> Path | None:
    """The cache folder this process uses (None: turned off)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in ("off", "0", "false", "none"):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnbench" / "jax"


def _on_event(event: str, **_) -> None:
    if event in _EVENTS:
        _COUNTS[_EVENTS[event]] += 1


def _on_duration(event: str, duration: float, **_) -> None:
    if event == "/jax/compilation_cache/compile_time_saved_sec":
        _COUNTS["jax_compile_seconds_saved"] += float(duration)


def enable(jax) -> str | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir` (once per process)
    and count its hits and misses; returns the folder, or None when it is turned off."""
    folder = cache_dir()
    if folder is None:
        return None
    if _state["dir"] is None:
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        _state["dir"] = str(folder)
    if not _state["listening"]:
        from jax import monitoring

        monitoring.register_event_listener(_on_event)
        monitoring.register_event_duration_secs_listener(_on_duration)
        _state["listening"] = True
    return _state["dir"]


def counts() -> dict:
    """The cache's hits, misses and compile seconds saved so far in this process."""
    return dict(_COUNTS)


def since(before: dict) -> dict:
    """What the cache did since ``before`` (a :func:`counts`), as a run's metrics."""
    now = counts()
    return {k: float(now[k] - before.get(k, 0)) for k in now}  # floats: MLflow probes other types
