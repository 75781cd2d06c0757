"""Uncertainty-weighted attacks of Maag & Fischer (WACV 2024, 004 §3.2, §4.5): FGSM, I-FGSM and PGD on
``L^U`` (Eq. 9), ``L^0`` (Eq. 10) or their product, and I-FGSM restricted to a random pixel subset."""
from __future__ import annotations

import torch

from ..losses import Weighting
from .driver import run_attack
from .fgsm import ifgsm_iterations
from .objectives import Objective, WeightedCE


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


def random_pixel_mask(images: torch.Tensor, num_pixels: int, *, seed: int | None = None) -> torch.Tensor:
    """A fixed random set of ``num_pixels`` pixel positions per image, ``[B, 1, H, W]`` float 0/1."""
    b, _, h, w = images.shape
    if not 0 < num_pixels <= h * w:
        raise ValueError(f"num_pixels must be in [1, {h * w}], got {num_pixels}")
    gen = torch.Generator(device=images.device).manual_seed(0 if seed is None else seed)
    scores = torch.rand((b, h * w), generator=gen, device=images.device)
    idx = scores.topk(num_pixels, dim=1).indices
    mask = torch.zeros((b, h * w), device=images.device).scatter_(1, idx, 1.0)
    return mask.view(b, 1, h, w).to(images.dtype)


def pixel_subset_ifgsm(model, images, labels, *, eps: float, num_pixels: int, alpha: float = 1 / 255,
                       steps: int | None = None, measure: str | None = None, zero_out: float | None = None,
                       seed: int | None = None, ignore_index: int = 255, **options):
    """I-FGSM whose perturbation is confined to a fixed random set of ``num_pixels`` pixels (004 §4.5:
    180 000 of 1024 x 2048), optionally on an uncertainty-weighted loss."""
    steps = ifgsm_iterations(eps * 255) if steps is None else steps
    mask = random_pixel_mask(images, num_pixels, seed=seed)
    obj = (Objective(ignore_index=ignore_index) if measure is None and zero_out is None
           else _objective(measure, zero_out, False, ignore_index))
    return run_attack(model, images, labels, objective=obj, eps=eps, alpha=alpha, steps=steps, pixel_mask=mask,
                      seed=seed, ignore_index=ignore_index, **options)
