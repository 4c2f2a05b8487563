"""Sweep specs: a TOML file (or a named preset shipped in ``suite/study/presets/``) -> a grid.

A spec lists tasks, seq_lens, cells, clips and seeds, the shared training settings of
``rnnbench train`` under ``[train]``, and per-task overrides under ``[overrides.TASK]``
(any ``[train]`` key, plus ``seq_lens`` and the task's ``options``)::

    name = "mine"
    tasks = ["adding", "copy"]
    seq_lens = [50, 100]
    cells = ["simple_rnn", "irnn", "lstm", "gru"]
    clips = ["none", "global_clipnorm=1"]
    seeds = [0, 1, 2]

    [train]
    hidden = 64
    max_steps = 2000

    [overrides.copy]
    seq_lens = [20, 50]
    max_steps = 4000
    options = {num_recall = 5}

``optimizers`` (optional) is the optimizer axis: recipes as ``rnnbench train --optimizer``
reads them (``suite.core.optim``), e.g. ``optimizers = ["adam", "sgd:lr=0.01,momentum=0.9"]``;
keys a recipe leaves out take ``[train]``'s ``lr``/``momentum``. Without it every run uses
the ``[train]`` optimizer, exactly as before the axis existed (same grid, hashes and names).
A ``clips`` entry may add Pascanu et al.'s regulariser: ``"global_clipnorm=1+omega=2"``
(the ``omega`` train setting); it applies to simple_rnn and irnn only, so the grid leaves
such an entry out for other cells.

``critical = true`` at the top runs the spec as a critical-length sweep (as
``rnnbench sweep --critical``): T is bisected over ``seq_lens`` per task x cell x clip.

Example:
    >>> spec = load_spec("quick")
    >>> len(spec.grid()) > 0
    True
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from suite.core.train import TrainConfig
from suite.errors import UserError
from tasks import canonical_options

GRID_KEYS = ("tasks", "seq_lens", "cells", "clips", "seeds")
OPTIONAL_GRID_KEYS = ("optimizers",)  # absent: the [train] optimizer only
TOP_KEYS = (
    "name", "description", "critical", *GRID_KEYS, *OPTIONAL_GRID_KEYS, "train", "overrides"
)  # fmt: skip
RECIPE_FIELDS = ("optimizer",)  # a [train] key the optimizers axis replaces
# TrainConfig fields a spec may set (the grid axes are set by the grid itself).
TRAIN_KEYS = tuple(
    f.name
    for f in fields(TrainConfig)
    if f.name not in ("task", "seq_len", "cell", "clip", "seed", "task_options")
)
OVERRIDE_KEYS = (*TRAIN_KEYS, "seq_lens", "options")


class SpecError(UserError, ValueError):
    """A spec problem, with the key and (where it can be found) the line."""


def preset_names() -> list[str]:
    return sorted(
        p.name[:-5]
        for p in resources.files("suite.study.presets").iterdir()
        if p.name.endswith(".toml")
    )


def preset_text(name: str) -> str:
    path = resources.files("suite.study.presets") / f"{name}.toml"
    if not path.is_file():
        raise SpecError(
            f"Unknown preset {name!r}; presets: {', '.join(preset_names())}, or a path to a .toml file."
        )
    return path.read_text()


@dataclass
class SweepSpec:
    name: str
    tasks: list[str]
    seq_lens: list[int]
    cells: list[str]
    clips: list[str]
    seeds: list[int]
    train: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    description: str = ""
    source: str = ""  # the TOML text
    origin: str = ""  # preset name or file path
    critical: bool = False  # run as a critical-length sweep (bisect T; see suite.study.critical)
    optimizers: list[str] | None = None  # optimizer recipes (None: the [train] optimizer)

    def with_backend(self, backend: str | None) -> SweepSpec:
        """This spec with every run on ``backend`` (``None``: keep the spec's own choice)."""
        if backend is not None:
            self.train["backend"] = backend
            for ov in self.overrides.values():
                ov.pop("backend", None)
        return self

    @property
    def backend(self) -> str:
        """The one Keras backend every run of this sweep trains on."""
        found = sorted({c.backend for c in self.grid()})
        if len(found) != 1:
            raise SpecError(
                f"spec {self.origin} mixes backends {found}; a sweep trains on one backend "
                "(run one sweep per backend, e.g. with --backend)."
            )
        return found[0]

    def spec_hash(self) -> str:
        return hashlib.sha256("\n".join(c.config_hash() for c in self.grid()).encode()).hexdigest()[
            :16
        ]

    def grid(self) -> list[TrainConfig]:
        """Every config of the sweep, validated, in a stable order (an ``omega`` treatment is
        left out for cells it does not apply to)."""
        from suite.core.omega import OMEGA_CELLS
        from suite.core.optim import parse_recipe
        from tracking.layout import parse_treatment

        try:
            recipes = [parse_recipe(r) for r in self.optimizers] if self.optimizers else [None]
            treatments = [parse_treatment(c) for c in self.clips]
        except ValueError as e:
            raise SpecError(f"spec {self.origin}: {e}") from None
        out = []
        for task in self.tasks:
            ov = dict(self.overrides.get(task, {}))
            lens = ov.pop("seq_lens", self.seq_lens)
            options = ov.pop("options", {})
            settings = {**self.train, **ov}
            for seq_len, cell, (clip, omega), recipe, seed in itertools.product(
                lens, self.cells, treatments, recipes, self.seeds
            ):
                if omega and cell not in OMEGA_CELLS:
                    continue
                run = dict(settings)
                if recipe is not None:
                    run.update(recipe.settings(settings))
                if omega:
                    run["omega"] = omega
                cfg = TrainConfig(
                    task=task,
                    seq_len=seq_len,
                    cell=cell,
                    clip=clip,
                    seed=seed,
                    task_options=canonical_options(task, options),
                    **run,
                )
                try:
                    cfg.validate()
                except (ValueError, TypeError) as e:
                    raise SpecError(f"spec {self.origin}: {e}") from None
                out.append(cfg)
        if not out:
            raise SpecError(
                f"spec {self.origin}: the grid is empty (every clips entry with omega needs a "
                f"cell it applies to: {', '.join(OMEGA_CELLS)})."
            )
        return out


def _line_of(text: str, key: str) -> str:
    for i, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*(\[+\s*)?[\w.\"]*\b{re.escape(key)}\b", line):
            return f" (line {i})"
    return ""


def load_spec(name_or_path: str) -> SweepSpec:
    """Load a preset by name or a TOML file by path, validated.

    Raises:
        SpecError: unknown preset or file, TOML syntax error, unknown key, bad value,
            empty grid. The message names the key and, where found, its line.
    """
    p = Path(name_or_path)
    if name_or_path.endswith(".toml") or p.exists():
        if not p.is_file():
            raise SpecError(
                f"Sweep file {name_or_path!r} not found; presets: {', '.join(preset_names())}."
            )
        text, origin = p.read_text(), str(p)
    else:
        text, origin = preset_text(name_or_path), name_or_path
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"TOML syntax error in {origin}: {e}") from None

    def bad_key(key: str, where: str, allowed) -> SpecError:
        return SpecError(
            f"Unknown key {key!r}{where}{_line_of(text, key)} in {origin}; allowed: {', '.join(allowed)}."
        )

    for key in data:
        if key not in TOP_KEYS:
            raise bad_key(key, "", TOP_KEYS)
    for key in data.get("train", {}):
        if key not in TRAIN_KEYS:
            raise bad_key(key, " in [train]", TRAIN_KEYS)
    overrides = data.get("overrides", {})
    for task, ov in overrides.items():
        if task not in data.get("tasks", []):
            raise SpecError(
                f"[overrides.{task}]{_line_of(text, task)} in {origin} names a task not in tasks = {data.get('tasks')}."
            )
        for key in ov:
            if key not in OVERRIDE_KEYS:
                raise bad_key(key, f" in [overrides.{task}]", OVERRIDE_KEYS)
    for key in GRID_KEYS:
        value = data.get(key)
        if not isinstance(value, list) or not value:
            raise SpecError(
                f"{key!r}{_line_of(text, key)} in {origin} must be a non-empty list, got {value!r} (empty grid)."
            )
    optimizers = data.get("optimizers")
    if optimizers is not None:
        if not isinstance(optimizers, list) or not optimizers:
            raise SpecError(
                f"'optimizers'{_line_of(text, 'optimizers')} in {origin} must be a non-empty list "
                f'of recipes such as "sgd:lr=0.01,momentum=0.9", got {optimizers!r}.'
            )
        clash = [
            f"[{where}] {key}"
            for where, table in [("train", data.get("train", {}))]
            + [(f"overrides.{t}", ov) for t, ov in overrides.items()]
            for key in RECIPE_FIELDS
            if key in table
        ]
        if clash:
            raise SpecError(
                f"{clash[0]}{_line_of(text, 'optimizer')} in {origin} conflicts with 'optimizers': "
                "the optimizers list names each run's optimizer; drop the key."
            )
    critical = data.get("critical", False)
    if not isinstance(critical, bool):
        raise SpecError(
            f"'critical'{_line_of(text, 'critical')} in {origin} must be true or false, got {critical!r}."
        )
    spec = SweepSpec(
        name=str(data.get("name", Path(origin).stem)),
        critical=critical,
        description=str(data.get("description", "")),
        tasks=list(data["tasks"]),
        seq_lens=list(data["seq_lens"]),
        cells=list(data["cells"]),
        clips=list(data["clips"]),
        seeds=list(data["seeds"]),
        optimizers=[str(o) for o in optimizers] if optimizers else None,
        train=dict(data.get("train", {})),
        overrides={k: dict(v) for k, v in overrides.items()},
        source=text,
        origin=origin,
    )
    spec.grid()  # validates every config (unknown task/cell, bad clip, T < minimum, ...)
    return spec
