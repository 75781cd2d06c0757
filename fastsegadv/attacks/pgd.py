"""PGD (Madry et al. 2018; 001 Eq. 1-2) with random start and restarts, and BIM-ℓ2."""
from __future__ import annotations

from .driver import run_attack
from .objectives import Objective


def pgd(model, images, labels, *, eps: float = 8 / 255, alpha: float = 0.01, steps: int = 10,
        random_start: bool = True, restarts: int = 1, ignore_index: int = 255, **options):
    """ℓ∞ PGD on the mean CE over valid pixels; defaults are the SegPGD paper's (eps 8/255, alpha 0.01).
    With ``restarts > 1`` every iterate of every restart is scored (MisRatio of its prediction) and the
    per-image best iterate over all restarts is returned, not the last iterate of the best restart."""
    return run_attack(model, images, labels, objective=Objective(ignore_index=ignore_index), eps=eps, alpha=alpha,
                      steps=steps, random_start=random_start, restarts=restarts, ignore_index=ignore_index,
                      **options)


def bim_l2(model, images, labels, *, eps: float, alpha: float, steps: int = 10, random_start: bool = False,
           ignore_index: int = 255, **options):
    """ℓ2 BIM: ``x + alpha * g / ||g||_2`` per image, projected on the ℓ2 ball of radius ``eps`` (used as
    the BIM-ℓ2 column of 001 Tables 1-2). The loss is the mean CE over valid pixels; with ℓ2 steps the
    reduction only rescales g, which the normalisation removes."""
    return run_attack(model, images, labels, objective=Objective(ignore_index=ignore_index), eps=eps, alpha=alpha,
                      steps=steps, step_rule="l2", random_start=random_start, ignore_index=ignore_index, **options)
