"""Perturbation geometry and randomness shared by every attack: per-image norms (and the reported norms),
projection on the ℓ∞ / ℓ2 ball, random starts, and per-image random generators (an image's random start
then does not depend on the batch it sits in)."""
from __future__ import annotations

import math

import torch

from .validation import check_seed_length


def per_image_norm(g: torch.Tensor, p: float) -> torch.Tensor:
    """``[B, 1, 1, 1]`` ℓp norm (p = 2 or inf) of each image of ``g [B, ...]``, at least 1e-12."""
    flat = g.flatten(1)
    n = flat.abs().amax(1) if p == math.inf else flat.norm(dim=1)
    return n.clamp_min(1e-12).view(-1, *([1] * (g.dim() - 1)))


def perturbation_norms(adv: torch.Tensor, images: torch.Tensor) -> dict:
    """Per image ``{"l2": [B], "linf": [B]}`` (float64) of ``adv - images``: what the evaluation reports and
    what the minimal-perturbation attacks (CW, DeepFool) are judged by."""
    d = (adv - images).flatten(1).double()
    return {"l2": d.norm(dim=1), "linf": d.abs().amax(1)}


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """``clip_[0,1](x + Proj_{B_eps}(x_adv - x))`` on the ℓ∞ box or, per image, the ℓ2 ball."""
    delta = x_adv - x
    if norm == "l2":
        delta = delta * (eps / per_image_norm(delta, 2)).clamp(max=1.0)
    else:
        delta = delta.clamp(-eps, eps)
    return (x + delta).clamp(0.0, 1.0)


def uniform(shape, generators, device, dtype) -> torch.Tensor:
    """U[0, 1) of ``shape``: one generator for the batch, or one per image (``shape[0]`` of them)."""
    if not isinstance(generators, list):
        return torch.rand(shape, generator=generators, device=device, dtype=dtype)
    return torch.stack([torch.rand(shape[1:], generator=g, device=device, dtype=dtype) for g in generators])


def per_image_generators(seed, batch: int, device: torch.device):
    """None (global RNG), one generator (int seed) or one per image (a sequence of ``batch`` seeds: the
    random start of an image then does not depend on the batch it sits in, so sharded evaluation and
    training reproduce one process)."""
    if seed is None:
        return None
    if isinstance(seed, int):
        return torch.Generator(device=device).manual_seed(seed)
    check_seed_length(seed, batch)
    seeds = [int(s) for s in (seed.tolist() if isinstance(seed, torch.Tensor) else seed)]
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def random_start(x: torch.Tensor, eps: float, norm: str, generator) -> torch.Tensor:
    """``clip_[0,1](x + noise)``: ℓ∞ noise U(-eps, eps) per value, or ℓ2 noise uniform in the ball of radius eps."""
    noise = uniform(x.shape, generator, x.device, x.dtype) * 2 - 1
    if norm == "l2":  # a direction, radius eps * u^(1/n) with n = C*H*W: uniform in the volume of the ball
        r = uniform((x.shape[0],), generator, x.device, x.dtype) ** (1.0 / x[0].numel())
        noise = noise / per_image_norm(noise, 2) * (eps * r).view(-1, 1, 1, 1)
    else:
        noise = noise * eps
    return (x + noise).clamp(0.0, 1.0)
