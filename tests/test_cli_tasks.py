"""`rnnbench tasks` and the CLI's contract: JSON matches the API, one-line errors, instant --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import run_cli

from tasks import TASK_NAMES, get_task


def test_tasks_json_matches_the_api():
    out = run_cli("tasks", "--json", "--seq-len", "100")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == list(TASK_NAMES)
    for r in rows:
        d = get_task(r["name"], seq_len=100).describe()
        assert (
            r["seq_len"] == 100 and r["loss"] == d["loss"] and r["solved_when"] == d["solved_when"]
        )
        assert r["baseline_loss"] == pytest.approx(d["baseline_loss"], abs=1e-12)
    assert [round(r["baseline_loss"], 4) for r in rows] == [0.1667, 0.1733, 2.0794, 1.3863]


def test_tasks_table_and_other_length():
    out = run_cli("tasks", "-T", "50")
    assert out.returncode == 0
    for name in TASK_NAMES:
        assert name in out.stdout
    assert f"{10 * 2.0794415416798357 / 70:.4f}" in out.stdout  # copy baseline at T = 50


@pytest.mark.parametrize(
    "args",
    [["tasks", "--seq-len", "0"], ["tasks", "--seq-len", "abc"], ["tasks", "--seq-len", "1"],
     ["tasks", "--nope"], ["no-such-command"]],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(args):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert out.stdout == ""


def test_help_imports_no_heavy_module():
    code = (
        "import sys\nfrom suite.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['sweep', '--help'], ['tasks', '--json']):\n"
        "    sys.argv = ['rnnbench', *argv]\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "print('HEAVY', [m for m in ('tensorflow', 'keras', 'mlflow', 'onnxruntime') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    for cmd in ("tasks", "train", "sweep", "report", "export", "infer"):
        assert cmd in out.stdout
