"""``rnnbench perf``'s bookkeeping: the analytic FLOP count and the goal marks.

The measurements themselves are a benchmark (``rnnbench perf``), not a test.
"""

from suite.perf import GOALS, REF, to_markdown, train_flops


def test_train_flops_counts_gate_blocks_and_both_passes():
    # LSTM, B=1, T=1, d=2, H=3, one scalar output: 3 passes x 2 FLOPs x (4 gates x 3 x (2 + 3) + 3 x 1)
    assert train_flops("lstm", 1, 1, 2, 3) == 3 * 2 * (4 * 3 * 5 + 3)
    # linear in batch and (recurrent part) in T; GRU has 3 gate blocks, SimpleRNN/IRNN one
    assert train_flops("gru", 64, 100, 2, 128) == 64 * train_flops("gru", 1, 100, 2, 128)
    assert train_flops("simple_rnn", 1, 10, 2, 8) == train_flops("irnn", 1, 10, 2, 8)
    rnn, gru = (
        train_flops("simple_rnn", 1, 100, 2, 8, out=0),
        train_flops("gru", 1, 100, 2, 8, out=0),
    )
    assert gru == 3 * rnn


def _result(fit_ratio, peak_fraction, linear, workers_ratio):
    cell = {
        "suite_steps_s": 30.0,
        "fit_steps_s": 30.0 / fit_ratio,
        "fit_ratio": fit_ratio,
        "block_ratios": [fit_ratio - 0.1, fit_ratio, fit_ratio + 0.05],
        "train_gflops": 80.0,
        "peak_fraction": peak_fraction,
        "ceiling_fraction": 0.62,
        "ms_per_step": {50: 10.0, 100: 20.0, 200: 40.0, 400: 20.0 * linear},
        "linear_400_100": linear,
        "peak_rss_mb": 900.0,
        "latency": {"speedup_b1": 5.0, "speedup_b64": 2.0},
    }
    return {
        "quick": True,
        "machine": "test",
        "date": "2026-11-25",
        "reference": REF,
        "goals": GOALS,
        "matmul_peak_gflops": 200.0,
        "cells": {"lstm": cell},
        "sweep": {
            "workers1_s": 10.0,
            "workers2_s": 10.0 * workers_ratio,
            "workers_ratio": workers_ratio,
            "compute_bound": 0.65,
            "bound": 0.68,
            "timeline": {
                "workers1": {"wall_s": 10.0, "first_start_s": 0.6, "last_end_s": 9.8},
                "workers2": {"wall_s": 7.0, "first_start_s": 0.9, "last_end_s": 6.8},
            },
            "grid": "g",
        },
    }


def test_markdown_marks_each_goal_met_or_missed():
    good = to_markdown(_result(1.2, 0.61, 3.9, 0.72))
    assert "MISS" not in good
    assert (
        "1.20 ok" in good
        and "61% ok" in good
        and "3.90 ok" in good
        and "0.72 (goal <= bound + 0.05 and < 1) ok" in good  # bound 0.68
    )
    bad = to_markdown(_result(0.9, 0.30, 4.5, 0.74))
    assert "0.90 MISS (0.80-0.95)" in bad and "30% MISS" in bad and "4.50 MISS" in bad
    assert "0.74 (goal <= bound + 0.05 and < 1) MISS" in bad
    assert "compute bound on this machine 0.65" in bad and "| 62% |" in bad
    assert "bound for the whole sweep 0.68" in bad
    assert "start-up and finish (1.1 s; 0.8 s with one worker)" in bad
    assert "The runs' part itself: 9.2 s -> 5.9 s (0.64)." in bad


def test_the_whole_sweep_bound_keeps_the_serial_part():
    from suite.perf import sweep_bound

    # 7 s of runs with one worker halve; the two-worker sweep's own 3.5 s before its first
    # run and after its last stay
    one = {"wall_s": 10.0, "first_start_s": 2.0, "last_end_s": 9.0}
    two = {"wall_s": 7.0, "first_start_s": 3.0, "last_end_s": 6.5}
    assert sweep_bound(one, two, 0.5) == 0.7
    assert sweep_bound(one, one, 1.0) == 1.0  # no scaling, the same start-up: no gain
    # a faster second worker never makes a sweep ratio of 2 workers >= 1 "ok"
    res = _result(1.0, 0.5, 4.0, 1.02)
    res["sweep"]["bound"] = 0.99
    assert "1.02 (goal <= bound + 0.05 and < 1) MISS" in to_markdown(res)


def test_the_sweep_scaling_quotes_its_median_round_whole():
    from suite.perf import median_round

    rounds = [
        {"workers_ratio": 0.80, "bound": 0.70, "compute_bound": 0.50, "workers1_s": 30.0},
        {"workers_ratio": 0.76, "bound": 0.61, "compute_bound": 0.42, "workers1_s": 29.0},
        {"workers_ratio": 0.72, "bound": 0.69, "compute_bound": 0.52, "workers1_s": 27.0},
    ]
    got = median_round(rounds)  # gaps 0.10, 0.15, 0.03: the first round is the median
    assert got["round"] == 1 and got["workers1_s"] == 30.0 and got["bound"] == 0.70
    assert [r["compute_bound"] for r in got["rounds"]] == [0.50, 0.42, 0.52]
    res = _result(1.0, 0.5, 4.0, 0.80)
    res["sweep"].update(bound=0.70, round=1, rounds=got["rounds"])
    md = to_markdown(res)
    assert "0.80 (goal <= bound + 0.05 and < 1) MISS" in md
    assert "Round 1 of 3, the one with the median gap, is quoted" in md
    assert "0.76 vs 0.61 (compute 0.42)" in md
    assert "Round 1 of" not in to_markdown(_result(1.0, 0.5, 4.0, 0.80))  # one round: no list


def test_markdown_backend_comparison_and_gpu_tables():
    res = _result(1.0, 0.5, 4.0, 0.6)
    res["backend"] = "jax"
    res["backends"] = {
        "tensorflow": {"lstm": {"64": 40.0, "128": 20.0}},
        "jax": {"lstm": {"64": 60.0, "128": 10.0}},
    }
    md = to_markdown(res)
    assert "Backend: jax." in md and "Dense matmul peak (jax, float32)" in md
    assert "| lstm | 40.0 | 60.0 | 20.0 | 10.0 | 1.50 | 0.50 |" in md
    del res["sweep"], res["backends"]
    res["gpu"] = {
        "lstm": {
            "100": {"suite_steps_s": 150.0, "torch_steps_s": 300.0},
            "1000": {"suite_steps_s": 20.0, "torch_steps_s": None},
        }
    }
    md = to_markdown(res)
    assert "| lstm | 150.0 | 300.0 | 0.50 | 20.0 | n/a (no torch) | n/a |" in md
    assert "Sweep scaling" not in md  # not measured on a GPU


def test_markdown_headers_read_the_goals():
    res = _result(1.2, 0.61, 3.9, 0.55)
    res["goals"] = {**GOALS, "fit_ratio": 1.5, "linear_400_100": 5.0}
    md = to_markdown(res)
    assert "suite/fit (goal >= 1.5)" in md and "t(400)/t(100) (goal <= 5.0)" in md


def test_markdown_population_table_marks_the_speedup_goal():
    res = _result(1.0, 0.5, 4.0, 0.6)
    del res["sweep"]

    def row(one, big):
        return {
            "model_steps_s": {"1": one, "16": one * 8, "64": big},
            "speedup": {"1": 1.0, "16": 8.0, "64": big / one},
        }

    res["populations"] = {"lstm": {"100": row(300.0, 8700.0), "1000": row(26.0, 260.0)},
                          "irnn": {"100": row(300.0, 600.0)}}  # fmt: skip
    md = to_markdown(res)
    assert "| lstm | 100 | 300 | 2400 | 8700 | 29.0x ok |" in md
    assert "| lstm | 1000 | 26 | 208 | 260 | 10.0x |" in md  # the goal is set at T = 100
    assert "| irnn | 100 | 300 | 2400 | 600 | 2.0x |" in md  # and for LSTM/GRU only
    res["populations"]["lstm"]["100"] = row(300.0, 3000.0)
    assert "| lstm | 100 | 300 | 2400 | 3000 | 10.0x MISS |" in to_markdown(res)


def test_save_and_log_logs_only_perfs_own_files(tmp_path):
    """`rnnbench perf --out .` in a folder that holds the store's mlruns/ once copied that
    folder into itself (OSError: File name too long): only perf.json and perf.md are logged."""
    import os

    import mlflow

    from suite.perf import save_and_log

    (tmp_path / "mlruns" / "1" / "abc").mkdir(parents=True)
    (tmp_path / "mlruns" / "1" / "abc" / "meta.yaml").write_text("x")
    (tmp_path / "notes.txt").write_text("not perf's")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the store's artifacts go to ./mlruns, inside --out
    try:
        save_and_log(_result(1.0, 0.5, 4.0, 0.6), tmp_path, uri)
    finally:
        os.chdir(cwd)
    client = mlflow.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("rnnbench-perf").experiment_id])[0]
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "perf")}
    assert logged == {"perf/perf.json", "perf/perf.md"}


def test_attention_cost_measures_both_cells_at_every_length_and_tables_them():
    """A real (tiny) measurement: the suite's loop for the LSTM and the transformer at two
    lengths; the table gives steps/s per T and t(T_max)/t(T_min) per cell."""
    from suite.perf import attention_cost, attention_markdown

    cost = attention_cost(lengths=(8, 16), steps=2)
    assert set(cost) == {"lstm", "transformer"}
    for cell, by_T in cost.items():
        assert list(by_T) == ["8", "16"] and all(v > 0 for v in by_T.values()), cell
    md = "\n".join(attention_markdown(cost))
    assert "| cell | T = 8 | T = 16 | t(16)/t(8) |" in md
    ratio = cost["transformer"]["8"] / cost["transformer"]["16"]
    assert (
        f"| transformer | {cost['transformer']['8']:.2f} | {cost['transformer']['16']:.2f} | {ratio:.1f} |"
        in md
    )


def test_an_attention_child_that_dies_loses_only_its_remaining_lengths():
    """Each cell runs in its own child, one T after another, each rate sent as it is measured:
    a child that fails at some T (here T = 0, which the task refuses; at T = 1000 it could be
    the system killing it for memory) keeps the lengths before it, and the table says why."""
    from suite.perf import attention_cost, attention_markdown

    why: dict = {}
    cost = attention_cost(lengths=(8, 0), steps=2, cells=("lstm",), not_measured=why)
    assert cost["lstm"]["8"] > 0 and cost["lstm"]["0"] is None
    assert why["lstm"].startswith("T = 0: failed: ") and "seq_len" in why["lstm"]
    md = "\n".join(attention_markdown(cost, why))
    assert f"| lstm | {cost['lstm']['8']:.2f} | — | — |" in md
    assert f"lstm not measured at {why['lstm']}" in md


def test_the_lengths_are_timed_in_alternating_blocks(monkeypatch):
    """A real (tiny) measurement: every T's block runs once per repeat, T1, T2, T1, T2, ..., so
    a slow minute hits each length alike; the result is ms per step at each T."""
    from suite import perf

    real, order = perf._suite_timer, []

    def spied(cell, T, hidden=perf.REF["hidden"]):
        timed = real(cell, T, hidden)
        return lambda steps: (order.append(T), timed(steps))[1]

    monkeypatch.setattr(perf, "_suite_timer", spied)
    ms = perf.ms_per_step_by_T("simple_rnn", (8, 32), steps=2, repeats=3, hidden=8)
    assert order == [8, 32, 8, 32, 8, 32]
    assert list(ms) == ["8", "32"] and all(v > 0 for v in ms.values())
