"""Rich progress display for one training run (a ``TrainCallbacks``)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from suite.core.train import TrainCallbacks


class TrainProgress(TrainCallbacks):
    """Progress bar with step, train loss, val metric and pre-clip gradient norm.

    Use as a context manager around ``train``/``run_and_log`` with ``callbacks=[progress]``.
    """

    def __init__(self, total_steps: int, label: str, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task_id = self.progress.add_task(label, total=total_steps, stats="")

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_start(self, config, task, model) -> None:
        self.baseline = task.baseline_loss

    def on_steps(self, step: int) -> None:
        self.progress.update(self.task_id, completed=step)

    def on_eval(self, record) -> None:
        m = record.metrics
        val = (
            f"val acc {m['val_accuracy']:.3f}"
            if "val_accuracy" in m
            else f"val/base {m['val_loss_ratio']:.3f}"
        )
        stats = (
            f"loss {m['train_loss']:.4g}  {val}  |g| {m['grad_norm']:.3g} "
            f"(clip {m['clip_fraction']:.0%})"
        )
        self.progress.update(self.task_id, completed=record.step, stats=stats)
