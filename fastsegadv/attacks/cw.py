"""Carlini & Wagner ℓ2 (2017) for dense outputs, the CW column of 001 Tables 1-2.

    x(w) = (tanh(w) + 1) / 2,
    minimise_w  ||x(w) - x||_2^2 + c * mean_{i valid} max(z_y(i) - max_{k != y} z_k(i) + kappa, 0)

with Adam on w (tanh space keeps x in [0, 1]); the margin term is averaged over each image's valid
pixels so ``c`` does not depend on the resolution. Per image the iterate with the highest MisRatio is
kept (ties: the smaller ℓ2 norm). Unbounded: report its norms (``perturbation_norms``), or give
``max_norm`` to project every iterate on an ℓ2 ball.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from .best_iterate import BestIterate
from .margins import label_margin, per_image_mean
from .model_io import NormalizedModel, class_prediction, frozen_for_attack, logits_at
from .perturbation import per_image_norm
from .trace import AttackTrace
from .validation import (
    check_attack_inputs,
    check_label_range,
    check_seed_length,
    input_gradient,
    reject_unknown_options,
)


def cw_l2(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    c: float = 1.0,
    kappa: float = 0.0,
    steps: int = 100,
    lr: float = 0.01,
    max_norm: float | None = None,
    ignore_index: int = 255,
    normalization: tuple | None = None,
    eval_mode: bool = True,
    trace: AttackTrace | None = None,
    **unused,
) -> torch.Tensor:
    """Adversarial images ``[B, 3, H, W]``. ``c``: weight of the margin term; ``kappa``: confidence;
    ``lr``: Adam's step size in tanh space."""
    reject_unknown_options(unused, "cw_l2")
    check_seed_length(unused.get("seed"), images.shape[0])
    labels = check_attack_inputs(model, images, labels, eps=0.0, alpha=lr, steps=steps, norm=None)
    if c < 0 or kappa < 0:
        raise ValueError(f"c and kappa must be >= 0, got c={c}, kappa={kappa}")
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    x = images.detach()
    w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best = BestIterate(x, ties="smaller_norm")
    moved = False  # did the margin term have an input gradient at the clean images?
    with frozen_for_attack(model, eval_mode=eval_mode):
        for t in range(steps + 1):
            with torch.enable_grad():
                x_adv = (torch.tanh(w) + 1) / 2
                if max_norm is not None:
                    delta = x_adv - x
                    x_adv = x + delta * (max_norm / per_image_norm(delta, 2)).clamp(max=1.0)
                logits = logits_at(net(x_adv), labels.shape[-2:])
                if t == 0:
                    check_label_range(labels, logits.shape[1], ignore_index)
                margin, valid = label_margin(logits, labels, ignore_index)
                dist = (x_adv - x).flatten(1).pow(2).sum(1)  # [B]
                hinge = per_image_mean((margin + kappa).clamp_min(0), valid)  # [B]
                loss = (dist + c * hinge).sum()
            # the iterate just evaluated: keep it if it is the most damaging so far (ties: the smaller one)
            prediction = class_prediction(logits.detach())
            best.update(x_adv, prediction, labels, ignore_index, norm=dist.detach().sqrt())
            if trace is not None:
                trace.record_step(0, loss.detach(), prediction, labels, ignore_index)
            if t == steps:
                break
            opt.zero_grad(set_to_none=True)
            if t == 0:
                # does the model give the margin term a gradient at all? (once: one extra backward)
                if not bool(((margin.detach() + kappa) > 0)[valid].any()):
                    moved = True  # every pixel already fooled: nothing to move
                elif hinge.requires_grad:
                    (gh,) = torch.autograd.grad(hinge.sum(), w, retain_graph=True)
                    moved = bool((gh != 0).any())
            g = input_gradient(loss, w)
            w.grad = g
            opt.step()
    if not moved:
        warnings.warn("cw_l2: the margin term had no input gradient at the clean images (a model whose logits are "
                      "piecewise constant, detached or argmax-based): the result is near the clean images and says "
                      "nothing about robustness", stacklevel=2)
    return best.x
