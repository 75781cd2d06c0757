"""RP-PGD (Zhang et al., AAAI 2025, 003 Algorithm 1, Eq. 3-9)."""
from __future__ import annotations

from .driver import run_attack
from .objectives import RegionPrototype


def rp_pgd(model, images, labels, *, eps: float = 8 / 255, alpha: float = 0.01, steps: int = 10,
           beta: float = 0.75, feature_layer: str | None = None, clean_prediction=None,
           random_start: bool = True, ignore_index: int = 255, **options):
    """RP-PGD: ``beta * L_R + (1 - beta) * L_P`` with the True/Boundary/False region state kept on the
    device (T -> B updated from each forward's prediction). ``beta=1`` is the region loss alone. The
    prototype features are the input of ``feature_layer`` (default: of the final classifier of the main
    output, the ``nn.Conv2d`` that produced the logits in the first forward, wherever it is registered).
    ``clean_prediction [B, H, W]`` saves the clean forward that initialises F."""
    obj = RegionPrototype(beta=beta, ignore_index=ignore_index)
    return run_attack(
        model,
        images,
        labels,
        objective=obj,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        ignore_index=ignore_index,
        feature_layer=feature_layer,
        clean_prediction=clean_prediction,
        **options,
    )
