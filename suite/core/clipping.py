"""Clip specs, named exactly as Keras names the optimizer arguments (``normalize`` is ours).

    none                 no clipping
    clipnorm=TAU         each variable's gradient clipped to L2 norm TAU
    global_clipnorm=TAU  all gradients rescaled jointly so their global norm is <= TAU
    clipvalue=TAU        every gradient element clipped to [-TAU, TAU]
    normalize=TAU        all gradients rescaled jointly so their global norm is exactly TAU
                         (up or down; a zero gradient stays zero). Not a Keras optimizer
                         argument: the train step rescales before the optimizer applies
                         (``suite.core.steps.normalize_grads``)

Example:
    >>> parse_clip("global_clipnorm=1")
    ClipSpec(kind='global_clipnorm', tau=1.0)
    >>> parse_clip("global_clipnorm=1").optimizer_kwargs()
    {'global_clipnorm': 1.0}
    >>> parse_clip("normalize=1").optimizer_kwargs()
    {}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KERAS_KINDS = ("clipnorm", "global_clipnorm", "clipvalue")  # Keras optimizer arguments
STEP_KINDS = ("normalize",)  # applied by the train step, before the optimizer
CLIP_KINDS = (*KERAS_KINDS, *STEP_KINDS)
VALID_FORMS = (
    "none, clipnorm=TAU, global_clipnorm=TAU, clipvalue=TAU, normalize=TAU (TAU a positive number)"
)


@dataclass(frozen=True)
class ClipSpec:
    """A parsed clip spec: ``kind`` is ``"none"`` or one of ``CLIP_KINDS``."""

    kind: str = "none"
    tau: float | None = None

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}={self.tau:g}"

    def optimizer_kwargs(self) -> dict:
        """The keyword arguments for a Keras optimizer (``{}`` for ``none`` and the
        ``STEP_KINDS``, which the train step applies itself)."""
        return {self.kind: self.tau} if self.kind in KERAS_KINDS else {}


def parse_clip(spec: str) -> ClipSpec:
    """Parse a clip spec string.

    Args:
        spec: ``"none"`` or ``"KIND=TAU"`` with KIND in ``CLIP_KINDS`` and TAU > 0.

    Raises:
        ValueError: naming what was received and listing the valid forms.
    """
    text = str(spec).strip()
    if text.lower() == "none":
        return ClipSpec()
    kind, sep, value = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in CLIP_KINDS:
        raise ValueError(f"Invalid clip spec {spec!r}; valid forms: {VALID_FORMS}.")
    try:
        tau = float(value)
    except ValueError:
        raise ValueError(
            f"Invalid clip spec {spec!r}: TAU {value.strip()!r} is not a number; valid forms: {VALID_FORMS}."
        ) from None
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(
            f"Invalid clip spec {spec!r}: TAU must be a positive finite number; valid forms: {VALID_FORMS}."
        )
    return ClipSpec(kind, tau)
