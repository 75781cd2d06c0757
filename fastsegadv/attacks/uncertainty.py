"""Uncertainty-weighted attacks of Maag & Fischer (WACV 2024, 004 §3.2, §4.5): FGSM, I-FGSM and PGD on
``L^U`` (Eq. 9), ``L^0`` (Eq. 10) or their product, and I-FGSM restricted to a random pixel subset."""
from __future__ import annotations

import torch

from ..losses import Weighting
from .driver import run_attack
from .fgsm import ifgsm_iterations
from .objectives import Objective, WeightedCE
from .perturbation import per_image_generators, uniform
from .validation import check_unit_scale


def _objective(measure, zero_out, detach_weight, ignore_index):
    if measure is None and zero_out is None:
        raise ValueError("give measure= (margin, max_min, mean_margin, entropy) and/or zero_out= (tau)")
    return WeightedCE(Weighting(uncertainty=measure, detach_uncertainty=detach_weight, zero_out=zero_out),
                      ignore_index=ignore_index)


def uncertainty_fgsm(model, images, labels, *, eps: float, measure: str | None = "entropy",
                     zero_out: float | None = None, detach_weight: bool = False, ignore_index: int = 255, **options):
    """FGSM on the uncertainty-weighted loss."""
    return run_attack(model, images, labels, objective=_objective(measure, zero_out, detach_weight, ignore_index),
                      eps=eps, alpha=eps, steps=1, ignore_index=ignore_index, **options)


def uncertainty_ifgsm(model, images, labels, *, eps: float, alpha: float = 1 / 255, steps: int | None = None,
                      measure: str | None = "entropy", zero_out: float | None = None, detach_weight: bool = False,
                      ignore_index: int = 255, **options):
    """I-FGSM on the uncertainty-weighted loss (steps default to the 002/004 rule)."""
    steps = ifgsm_iterations(eps * 255) if steps is None else steps
    return run_attack(model, images, labels, objective=_objective(measure, zero_out, detach_weight, ignore_index),
                      eps=eps, alpha=alpha, steps=steps, ignore_index=ignore_index, **options)


def uncertainty_pgd(model, images, labels, *, eps: float = 8 / 255, alpha: float = 0.01, steps: int = 10,
                    measure: str | None = "entropy", zero_out: float | None = None, detach_weight: bool = False,
                    random_start: bool = True, ignore_index: int = 255, **options):
    """PGD on the uncertainty-weighted loss."""
    return run_attack(model, images, labels, objective=_objective(measure, zero_out, detach_weight, ignore_index),
                      eps=eps, alpha=alpha, steps=steps, random_start=random_start, ignore_index=ignore_index,
                      **options)


def random_pixel_mask(labels: torch.Tensor, num_pixels: int, *, seed=None, ignore_index: int = 255) -> torch.Tensor:
    """A fixed random set of ``num_pixels`` valid pixel positions per image, ``[B, 1, H, W]`` float 0/1.

    Drawn among the pixels whose label is not ``ignore_index`` (as the authors' code does; all of them
    when an image has fewer). ``seed``: an int, one seed per image (the image's subset then does not
    depend on its batch, as the harness and the AT loop need) or None (seed 0)."""
    b, h, w = labels.shape
    if not isinstance(num_pixels, int) or not 0 < num_pixels <= h * w:
        raise ValueError(f"num_pixels must be an integer in [1, {h * w}], got {num_pixels!r}")
    gens = per_image_generators(0 if seed is None else seed, b, labels.device)
    scores = uniform((b, h * w), gens, labels.device, torch.float32)  # U[0, 1): ignored pixels rank last
    scores = torch.where(labels.reshape(b, -1) == ignore_index, torch.full_like(scores, -1.0), scores)
    idx = scores.topk(num_pixels, dim=1).indices
    picked = torch.zeros((b, h * w), device=labels.device).scatter_(1, idx, 1.0)
    picked = picked * (labels.reshape(b, -1) != ignore_index)
    return picked.view(b, 1, h, w)


def pixel_subset_ifgsm(model, images, labels, *, eps: float, num_pixels: int, alpha: float = 1 / 255,
                       steps: int | None = None, measure: str | None = None, zero_out: float | None = 0.75,
                       seed=None, ignore_index: int = 255, **options):
    """I-FGSM whose perturbation is confined to a fixed random set of ``num_pixels`` valid pixels (004 §4.5:
    180 000 of 1024 x 2048), on the uncertainty-weighted loss: by default L^0 of Eq. 10 (tau = 0.75), which
    the paper finds stronger than L^E and the authors' code applies; ``zero_out=None, measure=None`` is
    plain CE. ``seed``: int or per-image seeds (subset and any random start)."""
    check_unit_scale(eps=eps, alpha=alpha)
    steps = ifgsm_iterations(eps * 255) if steps is None else steps
    mask = random_pixel_mask(labels, num_pixels, seed=seed, ignore_index=ignore_index).to(images.dtype)
    obj = (Objective(ignore_index=ignore_index) if measure is None and zero_out is None
           else _objective(measure, zero_out, False, ignore_index))
    return run_attack(model, images, labels, objective=obj, eps=eps, alpha=alpha, steps=steps, pixel_mask=mask,
                      seed=seed, ignore_index=ignore_index, **options)
