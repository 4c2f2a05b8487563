"""README and docs/*.md: every relative link points at a file of the repository (a clone has
nothing outside it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve_inside_the_repo(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"
        assert ROOT in path.parents or path == ROOT, f"{page.name} links outside the repo: {target}"


def test_readme_is_a_front_page():
    """The README opens with the two commands, stays short, and leaves the rest to docs/."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    head = text.split("## ", 1)[0]
    assert "pip install tox && tox -e bench" in head and "pip install tox && tox " in head
    for page in sorted((ROOT / "docs").glob("*.md")):  # every docs page reachable from it
        assert f"docs/{page.name}" in text, f"README does not link docs/{page.name}"


def _help(*args: str) -> str:
    import re

    from typer.testing import CliRunner

    from suite.cli import app

    out = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert out.exit_code == 0, out.output
    return re.sub(r"\s+", " ", out.output)


def test_help_texts_list_exactly_the_presets_and_cells_the_code_has():
    import re

    from suite.core.models import CELLS

    sweep = _help("sweep")
    listed = re.search(r"A preset \(([^)]*)\)", sweep).group(1).split(", ")
    presets = sorted(p.stem for p in (ROOT / "suite" / "study" / "presets").glob("*.toml"))
    assert listed == presets, listed
    for cmd in ("train", "perf"):
        text = _help(cmd)
        named = [c for c in re.findall(r"[a-z_]+", text) if c in CELLS]
        assert set(named) == set(CELLS), (cmd, named)
    assert "all four" not in _help("perf")
