"""The architecture as tests: which package may import which (``suite/__init__.py`` draws it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the rnnbench packages it may import (besides itself)
ALLOWED = {
    "tasks": set(),
    "tracking": set(),
    "suite.core": {"tasks", "tracking", "suite.errors"},
    "suite.study": {"tasks", "tracking", "suite.errors", "suite.core"},
    "suite.findings": {"tasks", "tracking", "suite.errors"},
    "suite.deploy": {"tasks", "tracking", "suite.errors", "suite.core"},
}
OURS = ("suite", "tasks", "tracking")


def _imports(path: Path) -> set[str]:
    """Every rnnbench module a file imports (at the top or inside a function)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return {m for m in out if m.split(".")[0] in OURS}


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "suite" else parts[0]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(package):
    folder = ROOT / package.replace(".", "/")
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for mod in _imports(path):
            target = _package_of(mod)
            if target != package and target not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_importing_tracking_loads_nothing_from_suite():
    code = (
        "import sys, tracking, tracking.layout, tracking.logger, tracking.store\n"
        "print(sorted(m for m in sys.modules if m == 'suite' or m.startswith('suite.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(
    "task, T, cell, clip, seed",
    [("adding", 50, "irnn", "global_clipnorm=1", 0), ("delayed_recall", 7, "simple_rnn", "clipvalue=0.1", 12),
     ("copy", 10, "chrono_lstm", "none", 3)],
)  # fmt: skip
def test_run_names_read_back(task, T, cell, clip, seed):
    from tracking.layout import parse_run_name, run_name

    name = run_name(task, T, cell, clip, seed)
    assert parse_run_name(name) == {
        "task": task, "seq_len": str(T), "cell": cell, "clip": clip, "seed": str(seed),
        "optimizer": "adam",
    }  # fmt: skip
    assert parse_run_name("sweep-quick") is None
    wide = run_name(task, T, cell, clip, seed, "sgd(lr=0.01)", hidden=64)
    assert parse_run_name(wide)["hidden"] == "64" and wide != run_name(
        task, T, cell, clip, seed, "sgd(lr=0.01)"
    )


def test_a_train_run_and_a_sweep_child_of_other_hidden_sizes_have_other_names():
    from suite.core.train import TrainConfig

    a = TrainConfig(task="adding", seq_len=20, cell="lstm", clip="none")
    b = TrainConfig(task="adding", seq_len=20, cell="lstm", clip="none", hidden=64)
    assert a.run_name == "adding-T20-lstm-none-s0"  # the default size: names as before
    assert b.run_name == "adding-T20-lstm-none-h64-s0"
