"""The GPU kit's rate table, measured before anything else so that it comes back even when a
later step runs out of time: model-steps/s of populations of 1, 16 and 64 models and one
model's steps/s next to plain PyTorch cuDNN, per cell at T = 100 and 1000.

Usage: KERAS_BACKEND=jax python3 tools/gpu/pop_rates.py OUT.json [--cells lstm,gru] [--steps 20]
       [--device gpu]

The measurements are ``rnnbench perf``'s own (``suite.perf.population_rate``, ``suite_steps_per_second``,
``torch_reference``: adding task, batch 64, Adam, global_clipnorm=1; hidden 64 for populations,
128 for the one-model table); this script only runs the GPU part of them, in the order that
matters most, and rewrites OUT.json after every measurement (a timeout keeps what finished).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed block (3 blocks)")
    ap.add_argument("--device", default="gpu")
    args = ap.parse_args()

    from suite.core.backend import configure

    dev = configure(backend="jax", device=args.device)
    from suite import perf

    cells = args.cells.split(",")
    res: dict = {"device": dev, "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
                 "population_hidden": perf.POP_HIDDEN, "reference": perf.REF,
                 "populations": {}, "one_model": {}}  # fmt: skip
    t0 = time.perf_counter()

    def save(what: str) -> None:
        args.out.write_text(json.dumps(res, indent=1))
        print(f"[{time.perf_counter() - t0:6.1f}s] {what}", flush=True)

    sizes = (1, 16, 64) if dev["device"] == "gpu" else (1, 16)
    for T in perf.GPU_LENGTHS:  # T = 100 first: the goal is stated there
        for cell in cells:
            row = res["populations"].setdefault(cell, {}).setdefault(str(T), {})
            for P in sizes:
                rate = perf.population_rate(cell, T, P, args.steps)
                row[str(P)] = rate
                save(f"population {cell} T={T} P={P}: {rate:.0f} model-steps/s"
                     + (f" ({rate / row['1']:.1f}x one)" if P > 1 else ""))  # fmt: skip
    for T in perf.GPU_LENGTHS:
        for cell in cells + [c for c in ("simple_rnn",) if c not in cells]:
            suite_rate = perf.suite_steps_per_second(cell, T, args.steps * 2, 3)
            try:  # the reference is a bonus: its failure must not cost the rest
                torch_rate = perf.torch_reference(cell, T, args.steps * 2, args.device)
            except Exception as e:  # noqa: BLE001
                torch_rate = None
                res.setdefault("errors", []).append(f"torch {cell} T={T}: {type(e).__name__}: {e}")
            res["one_model"].setdefault(cell, {})[str(T)] = {"suite_steps_s": suite_rate,
                                                            "torch_steps_s": torch_rate}  # fmt: skip
            save(f"one model {cell} T={T}: suite {suite_rate:.0f} steps/s, torch "
                 + (f"{torch_rate:.0f}" if torch_rate else "-"))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
