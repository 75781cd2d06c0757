"""DAG, Dense Adversary Generation (Xie et al., ICCV 2017), untargeted and ε-budgeted."""
from __future__ import annotations

from .driver import run_attack
from .objectives import DagMargin


def dag(model, images, labels, *, eps: float = 8 / 255, alpha: float = 0.5 / 255, steps: int = 20,
        ignore_index: int = 255, **options):
    """Each step moves by ``alpha * r / ||r||_∞`` with ``r = -grad sum_{i still correct} (z_y - max_{k!=y} z_k)``
    (adv-lib's untargeted DAG) and projects on the ℓ∞ ball of radius ``eps``."""
    return run_attack(model, images, labels, objective=DagMargin(ignore_index=ignore_index), eps=eps, alpha=alpha,
                      steps=steps, step_rule="linf_normalized", ignore_index=ignore_index, **options)
