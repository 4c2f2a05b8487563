"""Size a sweep from a rate sweep's store: what each (cell, task, T) population cost on the GPU,
and the wall time a spec of such populations needs on ``--workers W``.

Usage (here, on the store the kit brought back):
    python tools/gpu/size_preset.py --store sqlite:///out/mlflow.db gpu [--workers 8]

The rate sweep (tools/gpu/rates.toml) trains every shape for 1000 steps with the preset's
evaluation interval and worker count. From each population member's run it reads:
  * seconds per train step: the run's ``train_seconds`` over its ``steps`` (training only);
  * seconds per evaluation: from the ``train_seconds`` history, wall time between two
    evaluations less the training time between them (evaluation, diagnostics, logging);
  * fixed seconds: the run's wall time less the two above (build, compile, first eval, end).
A population of the spec then costs fixed + steps x per-step + evaluations x per-eval; a shape
not measured takes its per-step cost from the same cell and task at the nearest T, scaled by
T. The wall time is the spec's jobs, in the sweep's own order, handed to the first free of W
workers (no early stop for solved runs: an upper bound), plus the measured worker start-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def shape_costs(tracking_uri: str) -> tuple[dict, float]:
    """{(cell, task, T): {"step", "eval", "fixed", "members"}} and the worker start-up seconds."""
    import mlflow

    from tracking import sqlite_path
    from tracking.layout import (
        DEFAULT_EXPERIMENT,
        PARENT_TAG,
        POPULATION_TAG,
        TRAINING_RUNS,
        all_runs,
    )

    store = sqlite_path(tracking_uri)
    if store is not None and not store.is_file():
        raise SystemExit(f"error: no store at {store} (the kit's mlflow.db: pass its path)")
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    if exp is None:
        raise SystemExit(f"error: no experiment {DEFAULT_EXPERIMENT!r} in {tracking_uri}")
    runs = [r for r in all_runs(client, exp.experiment_id, TRAINING_RUNS)
            if r.info.status == "FINISHED" and r.data.tags.get(POPULATION_TAG)]  # fmt: skip
    if not runs:
        raise SystemExit(f"error: no finished population run in {tracking_uri}")
    parents = {r.data.tags.get(PARENT_TAG) for r in runs} - {None}
    starts = [client.get_run(p).info.start_time for p in parents]
    first = min(r.info.start_time for r in runs)
    startup = (first - min(starts)) / 1000 if starts else 0.0
    by_shape: dict = {}
    for r in runs:
        p, m = r.data.params, r.data.metrics
        steps, train_s = m.get("steps"), m.get("train_seconds")
        if not steps or train_s is None:
            continue
        hist = sorted(client.get_metric_history(r.info.run_id, "train_seconds"),
                      key=lambda x: x.step)  # fmt: skip
        evals = [(b.timestamp - a.timestamp) / 1000 - (b.value - a.value)
                 for a, b in zip(hist, hist[1:], strict=False)]  # fmt: skip
        per_eval = max(0.0, statistics.median(evals)) if evals else 0.0
        wall = (r.info.end_time - r.info.start_time) / 1000
        key = (p["cell"], p["task"], int(p["seq_len"]))
        by_shape.setdefault(key, []).append(
            {
                "step": train_s / steps,
                "eval": per_eval,
                "n_eval": len(hist),
                "fixed": max(0.0, wall - train_s - len(hist) * per_eval),
            }  # fmt: skip
        )
    out = {}
    for key, rows in by_shape.items():
        out[key] = {k: statistics.median(r[k] for r in rows) for k in ("step", "eval", "fixed")}
        out[key]["members"] = len(rows)
    return out, startup


def cost_of(costs: dict, cell: str, task: str, T: int) -> tuple[dict, str]:
    """The measured cost of a shape, or the nearest measured T of the same cell and task, its
    per-step seconds scaled by T; ``(cost, how)``."""
    if (cell, task, T) in costs:
        return costs[(cell, task, T)], "measured"
    near = [k for k in costs if k[0] == cell and k[1] == task]
    if not near:
        raise SystemExit(f"error: no measured {cell} on {task} at any T to scale from")
    k = min(near, key=lambda k: abs(k[2] - T))
    c = dict(costs[k])
    c["step"] *= T / k[2]
    return c, f"scaled from T={k[2]}"


def estimate(
    spec_name: str, costs: dict, startup: float, workers: int, population: int | None = None
):
    """(wall seconds, rows of (name, seconds, how)) of running ``spec_name``'s grid on
    ``workers`` workers, jobs in the sweep's order, each to the first free worker; populations
    of up to ``population`` members [default: ``--population auto`` on a GPU]."""
    import heapq

    from suite.cli import POPULATION_AUTO
    from suite.core.population import split_populations
    from suite.study.spec import load_spec

    grid = load_spec(spec_name).grid()
    rows, free = [], [startup] * workers
    for pop in split_populations(grid, population or POPULATION_AUTO):
        c = pop[0]
        cost, how = cost_of(costs, c.cell, c.task, c.seq_len)
        secs = (
            cost["fixed"]
            + c.max_steps * cost["step"]
            + (c.max_steps // c.eval_every) * cost["eval"]
        )
        t = heapq.heappop(free)
        heapq.heappush(free, t + secs)
        rows.append((f"{c.task}@{c.seq_len} {c.cell} {c.clip} x{len(pop)}", secs, how))
    return max(free), rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="preset name or TOML path to size (e.g. gpu)")
    ap.add_argument("--store", required=True, help="the rate sweep's tracking URI")
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    costs, startup = shape_costs(args.store)
    print(f"measured: {len(costs)} shapes; worker start-up {startup:.1f} s")
    print(
        f"{'cell':11} {'task':15} {'T':>4} {'ms/step':>8} {'steps/s':>8} {'s/eval':>7} {'fixed s':>8}"
    )
    for (cell, task, T), c in sorted(costs.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        print(f"{cell:11} {task:15} {T:>4} {1000 * c['step']:8.2f} {1 / c['step']:8.0f} "
              f"{c['eval']:7.2f} {c['fixed']:8.1f}")  # fmt: skip
    wall, rows = estimate(args.spec, costs, startup, args.workers)
    print(f"\n{args.spec}: {len(rows)} populations on {args.workers} workers")
    for name, secs, how in rows:
        print(f"  {name:48} {secs:7.1f} s  {how}")
    total = sum(s for _, s, _ in rows)
    print(f"population-seconds {total:.0f}; estimated wall {wall:.0f} s ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
