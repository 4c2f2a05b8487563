"""The ``rnnbench`` command line (typer).

Only light modules are imported at the top: every command imports what it needs
(TensorFlow, MLflow, onnxruntime) inside its body, so ``rnnbench --help`` is instant.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from suite.core.models import CELLS
from suite.core.train import TrainConfig
from suite.deploy.export import CHAMPION_ALIAS, REGISTERED_NAME, champion_uri
from suite.errors import UserError
from suite.study.spec import preset_names
from tasks import TASK_NAMES, canonical_options
from tracking.layout import DEFAULT_EXPERIMENT
from tracking.store import TrackingError

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
    rich_markup_mode=None,  # help texts show [default: ...] and 'rnnbench[cluster]' literally
)


@app.callback()
def _root() -> None:
    """Can gradient clipping make a vanilla RNN learn long-range dependencies the way LSTM
    and GRU do? Train, sweep and report, measured."""


BACKEND_HELP = "tensorflow | jax [default: $KERAS_BACKEND, else tensorflow]."


def _backend_or_error(backend: str | None) -> str:
    """The backend to use (flag, else $KERAS_BACKEND, else tensorflow), checked."""
    from suite.core.backend import check_backend, default_backend

    return check_backend(backend or default_backend())  # a ConfigError is a user error


# Options shared by several commands (one definition each).
TrackingUri = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]."
    ),
]
Experiment = Annotated[str, typer.Option(help="MLflow experiment name.")]
Device = Annotated[
    str, typer.Option(help="auto | cpu | gpu (auto: GPU when the backend sees one).")
]


def _device_or_error(device: str) -> str:
    from suite.core.backend import DEVICES

    if device not in DEVICES:
        raise UserError(f"Unknown --device {device!r}; choose one of: {', '.join(DEVICES)}.")
    return device


def _open_store(tracking_uri: str | None, missing: str | None = None) -> str:
    """The tracking URI to use, checked (a ``TrackingError`` is a one-line user error).

    Args:
        missing: when given, a sqlite store that does not exist yet is an error with this
            hint (commands that only read must not create an empty store).
    """
    from tracking import check_tracking_uri, resolve_tracking_uri, sqlite_path

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    if missing and (store := sqlite_path(uri)) and not store.exists():
        raise UserError(f"no tracking store at {uri}; {missing}")
    return uri


POPULATION_AUTO = 64  # members per population for --population auto (JAX on a GPU)
POPULATION_AUTO_CPU = 16  # at most, for --population auto on JAX on a CPU (see below)


def _population_size(
    value: str, backend: str, device: str, configs: int = 1, workers: int = 1
) -> int:
    """``--population auto|off|N`` -> members per population (1: every run alone).

    auto: JAX only. On a GPU, ``POPULATION_AUTO``. On a CPU a population runs its members one
    after another in one compiled step, 1.1-1.3x the model-steps/s of the runs alone
    (``suite.core.population.members_per_call``), but it is one job: auto takes at most
    ``POPULATION_AUTO_CPU`` members and leaves at least one job per worker (``configs`` runs
    on ``workers``), so populations never idle a core the runs alone would use.
    """
    text = value.strip().lower()
    if text == "off":
        return 1
    if text == "auto":
        if backend != "jax":
            return 1
        if device == "auto":
            from suite.core.backend import check_gpu_visible

            try:
                check_gpu_visible("jax")
                device = "gpu"
            except RuntimeError:
                device = "cpu"
        if device == "gpu":
            return POPULATION_AUTO
        return max(1, min(POPULATION_AUTO_CPU, configs // max(1, workers)))
    try:
        size = int(text)
    except ValueError:
        raise UserError(
            f"--population must be auto, off or a number >= 1, got {value!r}."
        ) from None
    if size < 1:
        raise UserError(f"--population must be auto, off or a number >= 1, got {value!r}.")
    if size > 1 and backend != "jax":
        raise UserError(
            f"--population {size} trains on the JAX backend only; add --backend jax "
            "(or use --population off)."
        )
    return size


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
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="Task option KEY=VALUE for the tasks that have it, e.g. -o num_recall=5.",
        ),
    ] = None,
) -> None:
    """List the tasks: input width, output kind, loss, baseline at T, solved criterion."""
    from tasks import TASK_NAMES, TASKS

    options = _parse_options(option)
    known = {n: {f.name for f in dataclasses.fields(TASKS[n])} - {"seq_len"} for n in TASK_NAMES}
    unknown = sorted(k for k in options if not any(k in names for names in known.values()))
    if unknown:
        allowed = sorted(set().union(*known.values()))
        raise UserError(f"Unknown task option(s) {unknown}; options: {', '.join(allowed)}.")
    if seq_len < 1:
        raise UserError(f"--seq-len must be >= 1, got {seq_len}.")
    too_short = [
        f"{n} (min {TASKS[n].min_seq_len})" for n in TASK_NAMES if seq_len < TASKS[n].min_seq_len
    ]
    if too_short:
        raise UserError(f"--seq-len {seq_len} is below the minimum of: {', '.join(too_short)}.")
    rows = [
        _task_or_error(n, seq_len, **{k: v for k, v in options.items() if k in known[n]}).describe()
        for n in TASK_NAMES
    ]
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
            r["output_kind"].replace("_", " ")
            + (f" ({r['num_classes']})" if r["num_classes"] else ""),
            "MSE" if r["loss"] == "mse" else "cross-entropy",
            f"{r['baseline_loss']:.4f}",
            r["solved_when"],
        )
    Console().print(table)


def _parse_options(items: list[str] | None) -> dict:
    """``["num_symbols=4", "distractors=false"]`` -> ``{"num_symbols": 4, "distractors": False}``."""
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option expects KEY=VALUE, got {item!r}.")
        low = raw.strip().lower()
        value: object
        if low in ("true", "false"):
            value = low == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key.strip()] = value
    return out


def _quiet_mlflow() -> None:
    import logging

    import mlflow  # noqa: F401  (configures its loggers on import; lower them afterwards)

    logging.getLogger("mlflow").setLevel(logging.WARNING)


# The defaults of `rnnbench train` are TrainConfig's (one place).
_TRAIN = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


@app.command("train")
def train_cmd(
    task: Annotated[str, typer.Option(help=f"Task: {' | '.join(TASK_NAMES)}.")] = _TRAIN["task"],
    seq_len: Annotated[int, typer.Option("--seq-len", "-T", help="Dependency length T.")] = _TRAIN[
        "seq_len"
    ],
    cell: Annotated[str, typer.Option(help=f"Cell: {' | '.join(CELLS)}.")] = _TRAIN["cell"],
    clip: Annotated[
        str,
        typer.Option(
            help="none | clipnorm=TAU | global_clipnorm=TAU | clipvalue=TAU (Keras names) | "
            "normalize=TAU (global norm rescaled to exactly TAU)."
        ),
    ] = _TRAIN["clip"],
    hidden: Annotated[int, typer.Option(help="Recurrent units.")] = _TRAIN["hidden"],
    batch_size: Annotated[int, typer.Option(help="Fresh samples per train step.")] = _TRAIN[
        "batch_size"
    ],
    optimizer: Annotated[
        str,
        typer.Option(
            help="Optimizer recipe NAME[:KEY=VALUE,...]: adam | rmsprop | sgd, keys lr and "
            "momentum, e.g. sgd:lr=0.01,momentum=0.9 (keys left out take --lr / --momentum)."
        ),
    ] = _TRAIN["optimizer"],
    lr: Annotated[float, typer.Option(help="Learning rate.")] = _TRAIN["lr"],
    momentum: Annotated[float, typer.Option(help="SGD momentum (sgd only).")] = _TRAIN["momentum"],
    omega: Annotated[
        float,
        typer.Option(
            help="Pascanu et al. 2013's regulariser weight α for simple_rnn/irnn (0: off)."
        ),
    ] = _TRAIN["omega"],
    max_steps: Annotated[int, typer.Option(help="Stop after this many train steps.")] = _TRAIN[
        "max_steps"
    ],
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop after this much training time (eval excluded).")
    ] = _TRAIN["max_seconds"],
    eval_every: Annotated[
        int, typer.Option(help="Steps between evaluations and diagnostics.")
    ] = _TRAIN["eval_every"],
    seed: Annotated[int, typer.Option(help="Seeds data and weights.")] = _TRAIN["seed"],
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Task option KEY=VALUE, e.g. -o num_symbols=4."),
    ] = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    device: Device = "auto",
    backend: Annotated[str | None, typer.Option(help=f"Keras backend: {BACKEND_HELP}")] = None,
) -> None:
    """Train one cell with one clip setting on one task; log it to MLflow.

    Example: rnnbench train --task adding --seq-len 50 --cell irnn --clip global_clipnorm=1 --max-steps 3000
    """
    from suite.core.optim import parse_recipe

    try:
        recipe = parse_recipe(optimizer)
    except ValueError as e:
        raise UserError(str(e)) from None
    if momentum and recipe.name != "sgd":
        raise UserError(f"--momentum applies to sgd only, got --optimizer {optimizer!r}.")
    opt = recipe.settings({"lr": lr, "momentum": momentum})
    config = TrainConfig(
        task=task,
        seq_len=seq_len,
        cell=cell,
        clip=clip,
        hidden=hidden,
        batch_size=batch_size,
        **opt,
        omega=omega,
        max_steps=max_steps,
        max_seconds=max_seconds,
        eval_every=eval_every,
        seed=seed,
        task_options=canonical_options(task, _parse_options(option)),
        backend=_backend_or_error(backend),
    )
    try:
        config.validate()
        from suite.core.memory import check_fits

        check_fits([config])
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    _device_or_error(device)
    uri = _open_store(tracking_uri)

    from rich.console import Console

    from suite.core.backend import configure
    from suite.study.progress import TrainProgress

    dev = configure(device=device, backend=config.backend)  # DeviceError: one line, exit 2
    _quiet_mlflow()
    from suite.study.record import run_and_log

    console = Console(stderr=True)
    console.print(
        f"[bold]{config.run_name}[/] on {dev['backend']}, {dev['device_name']} -> {uri} "
        f"(experiment {experiment!r})"
    )
    with TrainProgress(config.max_steps, "train", console) as progress:
        run_id, result = run_and_log(config, uri, experiment, callbacks=[progress])
    print(f"{config.run_name}: {result.summary()}  [run {run_id}]")


@app.command("sweep")
def sweep_cmd(
    spec: Annotated[
        str, typer.Argument(help=f"A preset ({', '.join(preset_names())}) or a FILE.toml.")
    ],
    workers: Annotated[
        int | None, typer.Option(help="Training processes at once [default: one per core, max 8].")
    ] = None,
    executor: Annotated[
        str, typer.Option(help="local | ray (Ray: pip install 'rnnbench[cluster]').")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume/--no-resume", help="Skip configs that already have a FINISHED run."),
    ] = True,
    ignore_running: Annotated[
        bool,
        typer.Option(
            "--ignore-running",
            help="Run even if the same sweep is running on the store in another live process "
            "(by default that is refused: configs could train twice).",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the grid and what resume skips (--critical: the bracket plan and round 1).",
        ),
    ] = False,
    show: Annotated[
        bool, typer.Option("--show", help="Print the spec's TOML (copy it to edit).")
    ] = False,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = DEFAULT_EXPERIMENT,
    device: Device = "auto",
    backend: Annotated[
        str | None,
        typer.Option(
            help=f"Keras backend of every run: {BACKEND_HELP} A spec may set it in [train]."
        ),
    ] = None,
    population: Annotated[
        str,
        typer.Option(
            help="auto | off | N: train configs that differ only in seed as one vectorised "
            "population of up to N (JAX backend). auto (JAX): 64 on a GPU; on a CPU up to 16, at least one job per worker."
        ),
    ] = "auto",
    critical: Annotated[
        bool | None,
        typer.Option(
            "--critical/--no-critical",
            help="--critical: find each task x cell x clip's critical length instead of running "
            "the whole grid: bisect T over the spec's seq_lens (at least two per task; solving "
            "assumed monotone in T), all seeds at each probed T, solved when at least half the "
            "seeds are. Each round probes every open bracket's midpoint as one batch of runs; "
            "a bracket ends at adjacent lengths (longest solved, shortest failed) or at an "
            "undecided probe. `rnnbench report` adds a Critical length table and figure. "
            "[default: the spec's `critical = true`, else off]",
        ),
    ] = None,
    check_monotone: Annotated[
        bool,
        typer.Option(
            "--check-monotone",
            help="With --critical: once the bisection ends, probe each bracket's neighbours "
            "(the lengths just below its longest T solved and just above its shortest T failed) "
            "and flag outcomes that are not monotone in T (critical.json, the report).",
        ),
    ] = False,
) -> None:
    """Run a grid of task x seq_len x cell x clip x seed: one parent MLflow run, one child per config.

    Resumable: run the same command again after a crash, kill or Ctrl-C to finish the rest.
    With --critical, bisect T instead (how long can each cell go?): only the probed lengths
    are trained, and a rerun replays the bisection from the finished runs.
    """
    from suite.study.spec import load_spec
    from suite.study.sweep import check_executor, default_workers

    if backend is not None:
        _backend_or_error(backend)
    sweep_spec = load_spec(spec).with_backend(backend)  # a SpecError is a user error
    sweep_backend = sweep_spec.backend
    if show:
        print(sweep_spec.source, end="")
        return
    critical = sweep_spec.critical if critical is None else critical
    if critical:
        from suite.study.critical import make_brackets

        brackets = make_brackets(sweep_spec)  # a spec with one length per task: exit 2
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}.")
    _device_or_error(device)
    from suite.core.memory import check_fits

    try:
        check_fits(full_grid := sweep_spec.grid())  # every config, before the store is opened
    except ValueError as e:
        raise UserError(f"spec {sweep_spec.origin}: {e}") from None
    uri = _open_store(tracking_uri)
    check_executor(executor, ray_address, uri)
    if executor == "ray" and not dry_run:
        from suite.study.sweep import join_ray

        join_ray(ray_address)  # a cluster that cannot be joined: one line, nothing written
    n = len(full_grid)
    pop_size = _population_size(population, sweep_backend, device, n, min(workers, n))
    if pop_size > 1 and any(c.max_seconds is not None for c in full_grid):
        if population.strip().lower() != "auto":  # members share one clock: no per-run time cap
            raise UserError(
                f"--population {population} cannot train runs with max_seconds (the members "
                "share one clock); use --population off, or drop max_seconds from the spec."
            )
        pop_size = 1  # auto: a time-capped spec trains every run alone
    if device == "gpu" and executor == "local" and not dry_run:
        from suite.core.backend import check_gpu_visible

        check_gpu_visible(sweep_backend)  # before any worker starts or any run is written

    from rich.console import Console

    console = Console(stderr=True)
    grid = sweep_spec.grid()
    if critical:
        from suite.study.critical import probe_configs

        configs = probe_configs(sweep_spec)
        grid = [c for b in brackets for c in configs[b.next_probe()]]  # the first round
    if dry_run:
        _quiet_mlflow()
        from suite.study.sweep import dry_run as plan_lines

        if critical:
            from suite.study.critical import plan_text

            print("\n".join(plan_text(sweep_spec, brackets)))
            print("round 1:")
        print(
            "\n".join(
                plan_lines(
                    sweep_spec,
                    uri,
                    experiment,
                    resume,
                    pop_size,
                    grid=grid,
                    workers=min(workers, len(grid)),
                )  # fmt: skip
            )
        )
        return
    from tracking.store import init_store

    if critical:
        init_store(uri)  # a new sqlite store: its first open serialised across processes
        return _critical_sweep(
            sweep_spec, spec, uri, experiment, workers, executor, ray_address, device,
            console, pop_size, resume, brackets, len(grid), tracking_uri, backend, check_monotone,
        )  # fmt: skip

    import contextlib

    from suite.study.sweep import LocalPool, plan_sweep, run_sweep, summary_rows

    # Local workers start first, every input checked: they warm up (Keras, MLflow imports,
    # ~5 s) while the store is created and opened (~2 s) and the grid planned, not after it;
    # a worker left without a job is killed.
    local = executor == "local"
    pool_ctx = LocalPool(min(workers, len(grid)), device, sweep_backend) if local else None
    with pool_ctx or contextlib.nullcontext() as pool:
        init_store(uri)  # a new sqlite store: its first open serialised across processes
        _quiet_mlflow()
        plan = plan_sweep(sweep_spec, uri, experiment, resume=resume)
        plan.ignore_running = ignore_running
        if plan.parent_run_id and not ignore_running:  # refuse before printing anything
            import mlflow

            from suite.study.sweep import check_not_running

            check_not_running(mlflow.MlflowClient(uri), plan.parent_run_id)
        console.print(
            f"[bold]sweep {sweep_spec.name}[/]: {len(grid)} configs, {len(plan.done)} already finished, "
            f"{len(plan.todo)} to run on {min(workers, max(1, len(plan.todo))) if local else 'Ray'} "
            f"{'workers' if local else ''} ({sweep_backend}) -> {uri} (experiment {experiment!r})"
        )
        outcome = run_sweep(
            plan, uri, experiment, workers, executor, ray_address, device, console, pool, pop_size
        )
    if outcome.interrupted:
        _interrupted(console, spec, tracking_uri, experiment, backend)
    _print_summary(summary_rows(plan, uri, experiment), sweep_spec.name)
    print(f"parent run {outcome.parent_run_id}; failed runs: {len(outcome.failed)}")
    if outcome.failed:
        raise typer.Exit(1)


def _interrupted(console, spec: str, tracking_uri, experiment: str, backend) -> None:
    """Say how to resume an interrupted sweep (the same command), and exit 130."""
    console.print(
        f"[yellow]Interrupted.[/] Finished runs are kept; resume with: rnnbench sweep {spec}"
        + (f" --tracking-uri {tracking_uri}" if tracking_uri else "")
        + (f" --experiment {experiment}" if experiment != DEFAULT_EXPERIMENT else "")
        + (f" --backend {backend}" if backend else "")
    )
    raise typer.Exit(130)


@app.command("report")
def report_cmd(
    experiment: Experiment = DEFAULT_EXPERIMENT,
    sweep: Annotated[
        str | None, typer.Option(help="Parent run id of the sweep [default: the latest sweep].")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="Output folder [default: reports/<sweep name>/].")
    ] = None,
    tracking_uri: TrackingUri = None,
    ui_url: Annotated[
        str | None,
        typer.Option(
            help="MLflow UI that report.html's run links open [default: the tracking server, "
            "or http://127.0.0.1:5000 where the printed `mlflow ui` command serves a sqlite store]."
        ),
    ] = None,
) -> None:
    """Answer the question from a sweep's runs: report.md, report.html (one self-contained page) and figures, attached to its parent run.

    Prints the answer, the claims the sweep decided, those it cannot test (with the reason)
    and the command that opens the MLflow UI.
    """
    from tracking import sqlite_path

    if ui_url is not None and not ui_url.startswith(("http://", "https://")):
        raise UserError(f"--ui-url must be an http(s) address, got {ui_url!r}.")
    uri = _open_store(tracking_uri, "run `rnnbench sweep quick` first (or pass --tracking-uri).")
    _quiet_mlflow()
    from rich.console import Console

    from suite.findings.data import load_sweep
    from suite.findings.report import DEFAULT_UI, write_report

    console = Console(stderr=True)
    with console.status("reading the sweep from MLflow"):
        data = load_sweep(uri, experiment, sweep)
    out_dir = Path(out) if out else Path("reports") / data.name
    with console.status("writing the report"):
        path = write_report(data, out_dir, ui_url=ui_url)
    from suite.findings.answer import QUESTION, answer, decided, untestable_lines
    from suite.findings.claims import check_claims

    findings = check_claims(data)
    print(
        f"{QUESTION}\nAnswer, from the {len(data.finished)} finished runs of sweep {data.name!r}:"
    )
    for sentence in answer(data, findings):
        print(f"  - {sentence}")
    print("Claims decided:")
    for c in decided(findings):
        print(f"  {c.number}. {c.label}: {c.text}")
    if not decided(findings):
        print("  none")
    untestable = untestable_lines(findings)
    if untestable:
        print("Not testable in this sweep:")
        for line in untestable:
            print(f"  {line}")
    html_path = path.with_name("report.html")
    print(
        f"Report: {html_path.resolve()} (open in a browser) and {path.name} beside it: the verdict, "
        f"solve table, figures, rules and every run; attached to parent run "
        f"{data.parent_run_id} under report/"
    )
    ui_uri = f"sqlite:///{store.resolve()}" if (store := sqlite_path(uri)) else uri
    runs_view = f"#/experiments/{data.experiment_id}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {uri.rstrip('/')}/{runs_view}")
    else:
        import shlex

        # this interpreter's own MLflow: works even where `mlflow` is not on PATH (tox's venv)
        mlflow_cmd = f"{shlex.quote(sys.executable)} -m mlflow"
        port = DEFAULT_UI.rsplit(":", 1)[1]
        print(
            f"MLflow UI: {mlflow_cmd} ui --backend-store-uri {ui_uri} --host 127.0.0.1 --port {port}"
        )
        print(
            f"           then open {DEFAULT_UI}/{runs_view}\n"
            "           (the runs table: expand the sweep run to see its children; which columns "
            "to add: docs/mlflow.md), or run `tox -e ui` after `tox -e bench`"
        )


@app.command("export")
def export_cmd(
    experiment: Annotated[
        str, typer.Option(help="MLflow experiment to pick winners from.")
    ] = DEFAULT_EXPERIMENT,
    task: Annotated[
        str | None,
        typer.Option(
            help="Export the winner of every T of this task (with --seq-len: of that T only)."
        ),
    ] = None,
    seq_len: Annotated[
        int | None,
        typer.Option(
            "--seq-len", "-T", help="Only the winners at this length (with --task or --all)."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Export the winner of every task@T.")] = False,
    run: Annotated[str | None, typer.Option(help="Export this run id instead of a winner.")] = None,
    out: Annotated[str, typer.Option(help="Folder for the .onnx files.")] = "reports/onnx",
    tracking_uri: TrackingUri = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="Only runs trained on this backend (tensorflow | jax) [default: the backend "
            "that trained the winners]."
        ),
    ] = None,
) -> None:
    """Export winning models to ONNX (native RNN/LSTM/GRU ops), check them in onnxruntime, register them.

    Winner per task@T: the solved run with the smallest seconds_to_solve; if none solved, the lowest
    val_loss_ratio, flagged unsolved. Registered as rnnbench-{task}-T{seq_len} with alias champion;
    re-exporting the same run with an unchanged ONNX reuses its version.
    """
    if not (all_ or run or task):
        raise UserError("say what to export: --all, --task TASK [--seq-len T], or --run RUN_ID.")
    if seq_len is not None and seq_len < 1:
        raise UserError(f"--seq-len must be >= 1, got {seq_len}.")
    if task is not None:
        from tasks import TASK_NAMES

        if task not in TASK_NAMES:
            raise UserError(f"Unknown task {task!r}; choose one of: {', '.join(TASK_NAMES)}.")
    uri = _open_store(tracking_uri, "no runs to export (run `rnnbench train` or a sweep first).")
    _quiet_mlflow()
    from suite.deploy.export import candidate_for_run, candidates, export_one, ops_label, winners

    if backend is not None:
        _backend_or_error(backend)
    if run:
        chosen = [candidate_for_run(uri, run)]
    else:
        cands = candidates(uri, experiment)
        if backend is not None:
            cands = [c for c in cands if c.backend == backend]
        chosen = winners(cands, task, seq_len)
    if not chosen:
        what = f" for {task}" + (f"@{seq_len}" if seq_len else "") if task else ""
        on = f" trained on {backend}" if backend else ""
        raise UserError(
            f"no finished runs{on} to export{what} in experiment {experiment!r} at {uri}."
        )
    used = sorted({c.backend for c in chosen})
    if len(used) > 1:
        raise UserError(
            f"the winners were trained on {' and '.join(used)}; one export runs one Keras "
            f"backend: run it once per backend with --backend {used[0]} and --backend {used[1]}."
        )
    _backend_or_error(used[0])
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title="ONNX exports (onnxruntime vs Keras)")
    for col in (
        "task@T",
        "cell",
        "clip",
        "status",
        "ops",
        "parity",
        "metric",
        "ORT/Keras b1",
        "ORT/Keras b64",
        "registered",
    ):
        table.add_column(col, no_wrap=col in ("task@T", "registered", "clip", "ops"))
    bad = 0
    for cand in chosen:
        with console.status(
            f"exporting {cand.task}@{cand.seq_len} ({cand.cell}, run {cand.run_id[:8]})"
        ):
            r = export_one(cand, uri, experiment, Path(out))
        p, lat = r["parity"], r["latency"]
        bad += not (p["parity_ok"] and p["metric_agrees"])
        status = (
            "[green]solved[/]" if cand.status == "solved" else f"[yellow]{cand.status.upper()}[/]"
        )
        table.add_row(
            f"{cand.task}@{cand.seq_len}", cand.cell,
            cand.clip + (f" · {cand.optimizer}" if cand.optimizer != "adam" else ""), status,
            ops_label(r),
            f"{p['parity_max_abs_diff']:.1e} " + ("ok" if p["parity_ok"] else "[red]FAIL[/]"),
            "agrees" if p["metric_agrees"] else "[red]differs[/]",
            f"{lat['speedup_b1']:.1f}x", f"{lat['speedup_b64']:.1f}x",
            f"{r['registered']} (v{r['version']}" + (", reused)" if r["reused"] else ")"),
        )  # fmt: skip
        print(f"{r['path']}  <- run {cand.run_id} ({cand.status})")
    Console(width=max(140, Console().width)).print(table)
    if bad:
        raise typer.Exit(1)


@app.command("infer")
def infer_cmd(
    model: Annotated[
        str,
        typer.Argument(
            help=f"A .onnx file or a registered model: models:/{REGISTERED_NAME}@{CHAMPION_ALIAS}, "
            "the winner `rnnbench export` registered (a task variant adds its options, e.g. "
            f"-num_recall3), e.g. {champion_uri('adding', 50)}."
        ),
    ],
    input: Annotated[
        str | None, typer.Option("--input", help="Run on this .npy array [batch, time, features].")
    ] = None,
    n: Annotated[
        int, typer.Option(help="Samples of fresh task data (from the model's metadata).")
    ] = 512,
    seq_len: Annotated[
        int | None,
        typer.Option("--seq-len", "-T", help="Length of the generated data [default: trained T]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 0,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI for models:/ URIs.")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option("--out", help="Write the full prediction array to this .npy file (numpy)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON, predictions included.")
    ] = False,
) -> None:
    """Run an exported model with onnxruntime (no TensorFlow): its predictions (a preview; --out
    or --json for all), the task metric and solved or not on generated data, latency."""
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}.")
    if seq_len is not None and seq_len < 1:
        raise UserError(f"--seq-len must be >= 1, got {seq_len}.")
    from suite.deploy.onnx_infer import (
        check_out_path,
        preview_lines,
        run_inference,
        save_predictions,
        to_json,
    )

    out_path = check_out_path(out) if out is not None else None  # before any work
    if model.startswith("models:/"):
        _quiet_mlflow()
    r = run_inference(model, input, n=n, seq_len=seq_len, seed=seed, tracking_uri=tracking_uri)
    if out_path is not None:
        save_predictions(r["predictions"], out_path)
        r["predictions_path"] = str(out_path)
    if as_json:
        print(json.dumps(to_json(r), indent=2))
        return
    head = f"{r['task']}@{r['seq_len']} {r['cell']} ({r['clip']}), trained: {r['trained_status']}"
    if "loss" in r:
        acc = f", accuracy {r['accuracy']:.4f}" if "accuracy" in r else ""
        verdict = "SOLVED" if r["solved"] else "FAIL (not solved)"
        print(
            f"{head}: {verdict} on {r['batch']} fresh samples; loss {r['loss']:.4g} "
            f"(baseline {r['baseline_loss']:.4g}){acc}; solved when {r['solved_when']}"
        )
    else:
        print(f"{head}: output shape {r['output_shape']} for input of {r['batch']} sequences")
    print(
        f"latency batch 1: p50 {r['latency_ms_b1_p50']:.3f} ms, p95 {r['latency_ms_b1_p95']:.3f} ms (onnxruntime)"
    )
    print("\n".join(preview_lines(r)))
    if out_path is not None:
        print(f"full predictions {r['output_shape']} written to {out_path} (numpy.load reads it)")
    else:
        print("full predictions: --out FILE.npy writes them, --json prints them")


@app.command("perf")
def perf_cmd(
    cells: Annotated[
        list[str] | None,
        typer.Option(
            "--cells",
            help=f"Cells to measure (repeat the option) [default: all of {', '.join(CELLS)}].",
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer steps and repeats: a few minutes.")
    ] = False,
    out: Annotated[
        str, typer.Option(help="Output folder for perf.json and perf.md.")
    ] = "reports/perf",
    device: Device = "auto",
    tracking_uri: TrackingUri = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help=f"Keras backend measured: {BACKEND_HELP} On a CPU the run also compares "
            "every installed backend."
        ),
    ] = None,
) -> None:
    """Benchmark the suite: loop vs bare model.fit, FLOP/s vs matmul peak, scaling in T, RSS, ORT vs Keras, backends, workers; on a GPU: T = 100 and 1000 vs PyTorch cuDNN."""
    from suite.core.models import CELLS

    backend = _backend_or_error(backend)
    chosen = cells or list(CELLS)
    bad = [c for c in chosen if c not in CELLS]
    if bad:
        raise UserError(f"Unknown cell(s) {bad}; choose from: {', '.join(CELLS)}.")
    _device_or_error(device)
    uri = _open_store(tracking_uri)  # perf logs to the experiment rnnbench-perf
    from rich.console import Console

    from suite.core.backend import configure
    from suite.perf import run_perf, save_and_log, to_markdown

    dev = configure(device=device, backend=backend)  # --device gpu without a GPU: one line
    from suite.core.memory import check_fits
    from suite.perf import ATTENTION_CELL, PERF_POPULATION, attention_configs, perf_configs

    gpu = dev["device"] == "gpu"
    try:  # every config perf trains, before anything is measured or logged
        check_fits(perf_configs(chosen, gpu), copies=PERF_POPULATION[gpu])
        if ATTENTION_CELL in chosen:
            check_fits(attention_configs(quick), copies=1)
    except ValueError as e:
        need = str(e).split("; use ")[0]  # perf's sizes are fixed: no size flags to suggest
        raise UserError(f"perf: {need}; measure fewer --cells or on a larger machine") from None
    console = Console(stderr=True)
    with console.status("perf") as status:
        res = run_perf(chosen, quick, device, progress=lambda msg: status.update(f"perf: {msg}"))
    _quiet_mlflow()
    path = save_and_log(res, Path(out), uri)
    print(to_markdown(res))
    print(
        f"\nWritten: {path} and {path.parent / 'perf.json'}; logged to experiment rnnbench-perf at {uri}"
    )


def _critical_sweep(
    sweep_spec, spec, uri, experiment, workers, executor, ray_address, device, console,
    pop_size, resume, brackets, first_round, tracking_uri, backend, check_monotone=False,
) -> None:  # fmt: skip
    """``rnnbench sweep --critical``: bisect T round by round (suite.study.critical)."""
    import contextlib
    import functools

    from suite.findings.critical import critical_rows, probe_outcomes
    from suite.study.critical import max_rounds, run_critical
    from suite.study.sweep import LocalPool

    local = executor == "local"
    pool_ctx = (  # later rounds probe no more brackets than the first: its workers stay warm
        LocalPool(min(workers, first_round), device, sweep_spec.backend, keep_warm=True)
        if local
        else None
    )
    with pool_ctx or contextlib.nullcontext() as pool:
        _quiet_mlflow()
        rounds = max(max_rounds(len(b.lens)) for b in brackets)
        console.print(
            f"[bold]sweep {sweep_spec.name} --critical[/]: {len(brackets)} brackets (task x cell x "
            f"clip), at most {rounds} rounds, {len(sweep_spec.seeds)} seeds per probe, on "
            f"{min(workers, first_round) if local else 'Ray'}{' workers' if local else ''} "
            f"({sweep_spec.backend}) -> {uri} (experiment {experiment!r})"
        )
        judge = functools.partial(probe_outcomes, uri, experiment)
        outcome = run_critical(
            sweep_spec, uri, experiment, judge, workers, executor, ray_address, device,
            console, pool, pop_size, resume, check_monotone,
        )  # fmt: skip
    if outcome.interrupted:
        _interrupted(console, f"{spec} --critical", tracking_uri, experiment, backend)
    rows = critical_rows(uri, outcome.parent_run_id) if outcome.parent_run_id else None
    _print_critical(rows or [], sweep_spec.name)
    print(
        f"parent run {outcome.parent_run_id}; {outcome.rounds} rounds; "
        f"{outcome.trained} runs trained now; failed runs: {len(outcome.failed)}"
    )
    if outcome.failed:
        raise typer.Exit(1)


def _print_critical(rows, name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from suite.findings.critical import row_texts

    table = Table(title=f"sweep {name} --critical: longest T solved per cell x clip")
    for col in (
        "task",
        "cell",
        "clip",
        "longest T solved",
        "bracket",
        "probes: solved / n (95 % CI)",
        *(["end check"] if any(r.checks for r in rows) else []),
    ):
        table.add_column(col, no_wrap=col in ("task", "clip"))
    for r in rows:
        t = row_texts(r)
        extra = [t["checks"]] if any(r.checks for r in rows) else []
        table.add_row(r.task, r.cell, r.clip, t["longest"], t["bracket"], t["probes"], *extra)
    Console(width=max(120, Console().width)).print(table)


def _print_summary(rows: list[dict], name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sweep {name}: solved seeds / runs, median steps and seconds to solve")
    optimizers = len({r.get("optimizer", "adam") for r in rows}) > 1
    cols = ("task@T", "cell", "clip", *(("optimizer",) if optimizers else ()), "result")
    for col in (*cols, "steps", "seconds", "best val/base"):
        table.add_column(col, no_wrap=col in ("task@T", "clip", "optimizer"))
    for r in rows:
        if r["finished"] < r["runs"]:
            result = f"[yellow]{r['solved']}/{r['runs']} ({r['runs'] - r['finished']} missing)[/]"
        elif r["solved"]:
            result = f"[green]{r['solved']}/{r['runs']} solved[/]"
        else:
            result = "[red]FAIL[/]"
        if r["diverged"]:
            result += f" [magenta]{r['diverged']} diverged[/]"
        table.add_row(
            f"{r['task']}@{r['seq_len']}",
            r["cell"],
            r["clip"],
            *((r.get("optimizer", "adam"),) if optimizers else ()),
            result,
            f"{r['median_steps']:.0f}" if r["median_steps"] is not None else "-",
            f"{r['median_seconds']:.1f}" if r["median_seconds"] is not None else "-",
            f"{r['best_ratio']:.3g}" if r["best_ratio"] is not None else "-",
        )
    Console(width=max(100, Console().width)).print(table)


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
    except (UserError, TrackingError) as e:  # library errors meant for the user, by type
        print(f"rnnbench: error: {_one_line(e)}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        print("rnnbench: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
