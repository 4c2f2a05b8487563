"""Optimizer recipes: ``NAME[:KEY=VALUE,...]``, one string per optimizer a run or a sweep uses.

    adam                          Adam, the learning rate of the base settings (default 1e-3)
    sgd                           plain SGD (Pascanu et al. 2013: lr 0.01, no momentum)
    sgd:momentum=0.9              SGD with momentum 0.9
    sgd:lr=0.01,momentum=0.9      both set
    rmsprop:lr=0.0005             RMSprop

A recipe sets ``optimizer`` and whatever keys it names (``lr``, ``momentum``); the keys it
leaves out keep the base settings (a spec's ``[train]`` table, or ``rnnbench train``'s
``--lr``/``--momentum``), except ``momentum``, which only SGD has: a non-SGD recipe sets it
to 0. The same form is read by ``rnnbench train --optimizer`` and a spec's ``optimizers``
list (the sweep's optimizer axis).

Example:
    >>> parse_recipe("sgd:lr=0.01,momentum=0.9")
    OptimizerRecipe(name='sgd', lr=0.01, momentum=0.9)
    >>> parse_recipe("adam").settings({"lr": 0.003, "momentum": 0.0})
    {'optimizer': 'adam', 'lr': 0.003, 'momentum': 0.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OPTIMIZERS = ("adam", "rmsprop", "sgd")
RECIPE_KEYS = ("lr", "momentum")
VALID_FORMS = (
    "NAME or NAME:KEY=VALUE[,KEY=VALUE] with NAME in adam, rmsprop, sgd and KEY in lr, "
    "momentum (e.g. sgd:lr=0.01,momentum=0.9)"
)


@dataclass(frozen=True)
class OptimizerRecipe:
    """A parsed recipe: ``lr``/``momentum`` are ``None`` where the recipe leaves them to the
    base settings."""

    name: str
    lr: float | None = None
    momentum: float | None = None

    def __str__(self) -> str:
        keys = [f"{k}={getattr(self, k):g}" for k in RECIPE_KEYS if getattr(self, k) is not None]
        return self.name + (":" + ",".join(keys) if keys else "")

    def settings(self, base: dict) -> dict:
        """The ``TrainConfig`` fields this recipe gives on top of ``base`` (its ``lr`` and
        ``momentum`` where the recipe leaves them out)."""
        lr = self.lr if self.lr is not None else base.get("lr", 1e-3)
        momentum = self.momentum if self.momentum is not None else base.get("momentum", 0.0)
        if self.name != "sgd":
            momentum = 0.0
        return {"optimizer": self.name, "lr": lr, "momentum": momentum}


def parse_recipe(text: str) -> OptimizerRecipe:
    """Parse an optimizer recipe.

    Raises:
        ValueError: naming what was received and the valid forms.
    """
    raw = str(text).strip()
    name, _, rest = raw.partition(":")
    name = name.strip().lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r} in {text!r}; valid forms: {VALID_FORMS}.")
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or key not in RECIPE_KEYS:
            raise ValueError(
                f"Invalid optimizer recipe {text!r}: {part!r}; valid forms: {VALID_FORMS}."
            )
        if key in values:
            raise ValueError(f"Invalid optimizer recipe {text!r}: {key} given twice.")
        try:
            values[key] = float(value)
        except ValueError:
            raise ValueError(
                f"Invalid optimizer recipe {text!r}: {key} = {value!r} is not a number."
            ) from None
        if not math.isfinite(values[key]):
            raise ValueError(f"Invalid optimizer recipe {text!r}: {key} must be finite.")
    if "momentum" in values and name != "sgd":
        raise ValueError(f"Invalid optimizer recipe {text!r}: momentum applies to sgd only.")
    return OptimizerRecipe(name, values.get("lr"), values.get("momentum"))
