"""CosPGD (Agnihotri & Keuper, ICML 2024): PGD on ``cos(softmax(z), onehot(y)) * CE``."""
from __future__ import annotations

from ..losses import Weighting
from .driver import run_attack
from .objectives import WeightedCE


def cospgd(model, images, labels, *, eps: float = 8 / 255, alpha: float = 0.01, steps: int = 10,
           activation: str = "softmax", random_start: bool = True, ignore_index: int = 255, **options):
    """CosPGD; ``activation="sigmoid"`` gives the sigmoid variant."""
    obj = WeightedCE(Weighting(cospgd=activation), ignore_index=ignore_index)
    return run_attack(model, images, labels, objective=obj, eps=eps, alpha=alpha, steps=steps,
                      random_start=random_start, ignore_index=ignore_index, **options)
