"""ε and α from a normalised input scale to the [0, 1] image scale this library's attacks use.

Many codebases attack *after* normalisation, ``x_n = (x - mean) / std``, so their ``epsilon=0.03`` is a
radius on ``x_n``. On the image it is ``0.03 * std_c`` per channel: with ImageNet's std
(0.229, 0.224, 0.225) about 0.0068, i.e. 1.73/255, not the 7.65/255 that ``eps=0.03`` means here. Passing
their number as it is attacks 4.4x harder than they did (and a number meant as 8/255 on images, passed
to code that normalises after the attack, is 4.4x too weak there).

An ℓ∞ ball of radius ε on ``x_n`` is a box with a side of ``ε * std_c`` per channel on ``x``. The attacks
take one radius, so the box is reduced to one number: ``"max"`` (default) gives the smallest cube that
contains their box (at least as strong as their attack: robustness is never over-reported), ``"min"``
the largest cube inside it, ``"mean"`` the average side.
"""
from __future__ import annotations

from collections.abc import Sequence

REDUCE = {"max": max, "min": min, "mean": lambda v: sum(v) / len(v)}


def budget_from_normalized(eps: float, alpha: float | None = None, *, std: Sequence[float],
                           reduce: str = "max") -> tuple[float, float | None]:
    """``(eps, alpha)`` on the [0, 1] image scale for values given on ``(x - mean) / std``.

    ``std``: the per-channel standard deviations of that normalisation (e.g. ImageNet's
    ``(0.229, 0.224, 0.225)``). ``reduce``: how the per-channel radii ``eps * std_c`` become one number
    (see the module docstring). Example: ``budget_from_normalized(0.03, 0.01, std=IMAGENET_STD)`` ->
    ``(0.00687, 0.00229)`` (1.75/255 and 0.58/255)."""
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be one of {sorted(REDUCE)}, got {reduce!r}")
    std = [float(s) for s in std]
    if not std or any(s <= 0 for s in std):
        raise ValueError(f"std must be positive per-channel values, got {std}")
    for name, value in (("eps", eps), ("alpha", alpha)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    pick = REDUCE[reduce]
    return pick([eps * s for s in std]), (None if alpha is None else pick([alpha * s for s in std]))


IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
