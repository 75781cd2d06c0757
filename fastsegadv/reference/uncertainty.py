"""Uncertainty weights of Maag & Fischer (WACV 2024, 004 Eq. 5-9).

With ``p = softmax(z)`` sorted per pixel as ``p_(1) >= p_(2) >= ... >= p_(C)``:

- ``margin``       M  = p_(1) - p_(2)                                  (Eq. 5), U = 1 - M
- ``max_min``      D  = p_(1) - p_min                                  (Eq. 6), U = 1 - D
- ``mean_margin``  M̄ = (C p_(1) - 1)/(C - 1) = mean_{k != (1)} (p_(1) - p_k)   (Eq. 7), U = 1 - M̄
- ``entropy``      E  = -sum_c p_c log p_c / log C                     (Eq. 8, normalised), U = E

The loss is ``(1/N_v) sum_i exp(U_i) CE_i`` (Eq. 9). The authors' code lets the gradient flow through
the weight; that is the default here (``detach_weight=False``).
"""
from __future__ import annotations

import math

import torch

MEASURES = ("margin", "max_min", "mean_margin", "entropy")


def uncertainty_measure(log_probs: torch.Tensor, measure: str) -> torch.Tensor:
    """``U [B,H,W]`` from log-probabilities ``[B,C,H,W]`` (differentiable)."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    c = log_probs.shape[1]
    p = log_probs.exp()
    if measure == "entropy":
        ent = -(p * log_probs).sum(1)
        return ent / math.log(c) if c > 1 else ent
    if measure == "margin":
        top2 = p.topk(min(2, c), dim=1).values
        return 1.0 - (top2[:, 0] - top2[:, -1]) if c > 1 else torch.zeros_like(p[:, 0])
    p_max = p.amax(1)
    if measure == "max_min":
        return 1.0 - (p_max - p.amin(1))
    return 1.0 - (c * p_max - 1.0) / (c - 1) if c > 1 else torch.zeros_like(p_max)


def uncertainty_weight(log_probs: torch.Tensor, measure: str, *, detach_weight: bool = False) -> torch.Tensor:
    """``exp(U) [B,H,W]`` (004 Eq. 9)."""
    w = uncertainty_measure(log_probs, measure).exp()
    return w.detach() if detach_weight else w
