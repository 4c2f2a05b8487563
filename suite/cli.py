"""The ``rnnbench`` command line (typer).

Only light modules are imported at the top: every command imports what it needs
(TensorFlow, MLflow, onnxruntime) inside its body, so ``rnnbench --help`` is instant.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from suite.errors import UserError

# typer >= 0.20 vendors click; find its UsageError without importing private modules.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

app = typer.Typer(
    name="rnnbench",
    help=(
        "Can gradient clipping make a vanilla RNN learn long-range dependencies the way "
        "LSTM and GRU do? Train, sweep and report, measured."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Can gradient clipping make a vanilla RNN learn long-range dependencies the way LSTM
    and GRU do? Train, sweep and report, measured."""


def _task_or_error(name: str, seq_len: int, **options):
    from tasks import get_task

    try:
        return get_task(name, seq_len=seq_len, **options)
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None


@app.command("tasks")
def tasks_cmd(
    seq_len: Annotated[
        int, typer.Option("--seq-len", "-T", help="Sequence length T used for the baselines.")
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead.")] = False,
) -> None:
    """List the tasks: input width, output kind, loss, baseline at T, solved criterion."""
    from tasks import TASK_NAMES, TASKS

    if seq_len < 1:
        raise UserError(f"--seq-len must be >= 1, got {seq_len}.")
    too_short = [f"{n} (min {TASKS[n].min_seq_len})" for n in TASK_NAMES if seq_len < TASKS[n].min_seq_len]
    if too_short:
        raise UserError(f"--seq-len {seq_len} is below the minimum of: {', '.join(too_short)}.")
    rows = [_task_or_error(n, seq_len).describe() for n in TASK_NAMES]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rnnbench tasks at T = {seq_len}", expand=False)
    table.add_column("task", no_wrap=True)
    for col in ("input", "output", "loss", "baseline", "solved when"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            f"[{r['input_length']}, {r['input_dim']}]",
            r["output_kind"].replace("_", " ") + (f" ({r['num_classes']})" if r["num_classes"] else ""),
            "MSE" if r["loss"] == "mse" else "cross-entropy",
            f"{r['baseline_loss']:.4f}",
            r["solved_when"],
        )
    Console().print(table)


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors with exit code 2."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="rnnbench", standalone_mode=False)
    except _UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `rnnbench`: show the help
            sys.exit(0)  # typer has printed the help already
        where = e.ctx.command_path if e.ctx is not None else "rnnbench"
        print(f"{where}: error: {_one_line(e.format_message())} (see --help)", file=sys.stderr)
        sys.exit(2)
    except UserError as e:
        print(f"rnnbench: error: {_one_line(e)}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("rnnbench: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
