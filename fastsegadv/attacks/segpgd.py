"""SegPGD and SegFGSM (Gu et al., ECCV 2022, 001 Algorithm 1, Eq. 4-5)."""
from __future__ import annotations

from ..losses import Weighting
from .driver import run_attack
from .objectives import WeightedCE


def segpgd(model, images, labels, *, eps: float = 8 / 255, alpha: float = 0.01, steps: int = 10,
           schedule: str = "linear", lam: float | None = None, random_start: bool = True,
           ignore_index: int = 255, **options):
    """SegPGD: PGD on ``(1 - lambda(t)) CE`` on correct and ``lambda(t) CE`` on wrong pixels; ``schedule``
    in linear/log/exp (Eq. 5), ``constant`` (with ``lam``) or ``only_correct``."""
    obj = WeightedCE(Weighting(segpgd=schedule, lam=lam), ignore_index=ignore_index)
    return run_attack(model, images, labels, objective=obj, eps=eps, alpha=alpha, steps=steps,
                      random_start=random_start, ignore_index=ignore_index, **options)


def segfgsm(model, images, labels, *, eps: float = 8 / 255, ignore_index: int = 255, **options):
    """SegFGSM (001 §3.1): one step of size eps on the CE of the correctly classified pixels only
    (SegPGD with T = 1, lambda = 0)."""
    obj = WeightedCE(Weighting(segpgd="only_correct"), ignore_index=ignore_index)
    return run_attack(model, images, labels, objective=obj, eps=eps, alpha=eps, steps=1,
                      ignore_index=ignore_index, **options)
