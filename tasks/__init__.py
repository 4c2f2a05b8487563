"""Synthetic long-range tasks: ``get_task(name, seq_len=T, **options)``.

Example:
    >>> import numpy as np
    >>> from tasks import get_task, TASK_NAMES
    >>> TASK_NAMES
    ('adding', 'copy', 'delayed_recall')
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

TASKS: dict[str, type[Task]] = {t.name: t for t in (AddingTask, CopyTask, DelayedRecallTask)}
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


__all__ = [
    "CROSSENTROPY",
    "FINAL_CLASS",
    "FINAL_SCALAR",
    "MSE",
    "PER_STEP_CLASS",
    "TASKS",
    "TASK_NAMES",
    "Task",
    "get_task",
]
