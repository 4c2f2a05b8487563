"""Synthetic long-range tasks: ``get_task(name, seq_len=T, **options)``.

Example:
    >>> import numpy as np
    >>> from tasks import get_task, TASK_NAMES
    >>> TASK_NAMES
    ('adding', 'copy', 'delayed_recall', 'temporal_order')
    >>> task = get_task("copy", seq_len=100)
    >>> round(task.baseline_loss, 4)
    0.1733
"""

from __future__ import annotations

from dataclasses import fields

from tasks.adding import AddingTask
from tasks.base import CROSSENTROPY, FINAL_CLASS, FINAL_SCALAR, MSE, PER_STEP_CLASS, Task
from tasks.copy_memory import CopyTask
from tasks.delayed_recall import DelayedRecallTask
from tasks.temporal_order import TemporalOrderTask

TASKS: dict[str, type[Task]] = {
    t.name: t for t in (AddingTask, CopyTask, DelayedRecallTask, TemporalOrderTask)
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str, seq_len: int = 100, **options) -> Task:
    """Build a task by name.

    Args:
        name: one of ``TASK_NAMES``.
        seq_len: T, the dependency length (each task states its minimum).
        **options: task-specific options, e.g. ``num_symbols=8`` for ``delayed_recall``.

    Raises:
        ValueError: unknown name or option, or ``seq_len`` below the task's minimum.
    """
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}.")
    cls = TASKS[name]
    allowed = [f.name for f in fields(cls) if f.name != "seq_len"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for task {name!r}; "
            f"allowed: {', '.join(allowed) if allowed else 'none'}."
        )
    return cls(seq_len=seq_len, **options)


def canonical_options(name: str, options: dict, every_default: bool = False) -> dict:
    """``options`` as a config stores them: an option the task added later
    (``Task.implicit_defaults``) is dropped while it equals its default, so a config that
    spells out a default hashes like one that leaves it out (and like runs logged before the
    option existed). Unknown names are kept (``get_task`` rejects them).

    Args:
        every_default: drop every option that equals its default (what names a task variant,
            e.g. the registered ONNX model ``rnnbench-copy-T50-num_recall3``).

    Example:
        >>> canonical_options("copy", {"num_recall": 10, "alphabet": 4})
        {'alphabet': 4}
    """
    cls = TASKS.get(name)
    if cls is None:
        return dict(options)
    defaults = {f.name: f.default for f in fields(cls)}
    return {
        k: v
        for k, v in options.items()
        if not (
            (every_default or k in cls.implicit_defaults)
            and k in defaults
            and type(v) is type(defaults[k])
            and v == defaults[k]
        )
    }


__all__ = [
    "CROSSENTROPY",
    "FINAL_CLASS",
    "FINAL_SCALAR",
    "MSE",
    "PER_STEP_CLASS",
    "TASKS",
    "TASK_NAMES",
    "Task",
    "canonical_options",
    "get_task",
]
