"""Single-step and iterative FGSM and their least-likely-class variants (Goodfellow et al. 2015;
Kurakin et al. 2017; as used by Arnab et al., 002 §3, and Maag & Fischer, 004 Eq. 2-3)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .driver import run_attack
from .model_io import NormalizedModel, frozen_for_attack, logits_at
from .objectives import Objective
from .validation import check_attack_inputs


def ifgsm_iterations(eps: float) -> int:
    """Iteration count of 002/004 for I-FGSM: ``n = min(eps + 4, floor(1.25 eps))`` with eps on the
    0-255 scale (pass ``eps * 255`` if you hold it in [0, 1]); at least 1."""
    return max(1, int(min(eps + 4, math.floor(1.25 * eps))))


@torch.no_grad()
def least_likely_labels(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255,
    normalization: tuple | None = None,
) -> torch.Tensor:
    """Per-pixel least-likely class of the clean prediction ``[B, H, W]`` (ignore pixels stay ignored)."""
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    with frozen_for_attack(model):
        logits = logits_at(net(images), labels.shape[-2:])
    target = logits.argmin(1)
    return torch.where(labels == ignore_index, labels, target.to(labels.dtype))


def fgsm(model, images, labels, *, eps: float, ignore_index: int = 255, **options) -> torch.Tensor:
    """FGSM: ``x + eps * sign(grad CE)`` (Goodfellow et al. 2015; 004 Eq. 2)."""
    return run_attack(model, images, labels, objective=Objective(ignore_index=ignore_index), eps=eps, alpha=eps,
                      steps=1, ignore_index=ignore_index, **options)


def fgsm_ll(
    model, images, labels, *, eps: float, ignore_index: int = 255, normalization=None, **options
) -> torch.Tensor:
    """FGSM II: one step of descent on ``CE(f(x), y_LL)`` with ``y_LL`` the least-likely class of the clean
    prediction per pixel (Kurakin et al.; 002 §3)."""
    labels = check_attack_inputs(model, images, labels, eps=eps, alpha=eps, steps=1)
    target = least_likely_labels(model, images, labels, ignore_index=ignore_index, normalization=normalization)
    return run_attack(
        model,
        images,
        labels,
        objective=Objective(ignore_index=ignore_index),
        eps=eps,
        alpha=eps,
        steps=1,
        targeted_labels=target,
        ignore_index=ignore_index,
        normalization=normalization,
        **options,
    )


def ifgsm(
    model,
    images,
    labels,
    *,
    eps: float,
    alpha: float = 1 / 255,
    steps: int | None = None,
    ignore_index: int = 255,
    **options,
) -> torch.Tensor:
    """I-FGSM / BIM (Kurakin et al. 2017; 004 Eq. 3): no random start; ``steps`` defaults to
    :func:`ifgsm_iterations` of ``eps * 255``."""
    steps = ifgsm_iterations(eps * 255) if steps is None else steps
    return run_attack(
        model,
        images,
        labels,
        objective=Objective(ignore_index=ignore_index),
        eps=eps,
        alpha=alpha,
        steps=steps,
        ignore_index=ignore_index,
        **options,
    )


def ifgsm_ll(
    model,
    images,
    labels,
    *,
    eps: float,
    alpha: float = 1 / 255,
    steps: int | None = None,
    ignore_index: int = 255,
    normalization=None,
    **options,
) -> torch.Tensor:
    """Iterative FGSM II: I-FGSM descending ``CE(f(x), y_LL)``, ``y_LL`` fixed from the clean image."""
    steps = ifgsm_iterations(eps * 255) if steps is None else steps
    labels = check_attack_inputs(model, images, labels, eps=eps, alpha=alpha, steps=steps)
    target = least_likely_labels(model, images, labels, ignore_index=ignore_index, normalization=normalization)
    return run_attack(
        model,
        images,
        labels,
        objective=Objective(ignore_index=ignore_index),
        eps=eps,
        alpha=alpha,
        steps=steps,
        targeted_labels=target,
        ignore_index=ignore_index,
        normalization=normalization,
        **options,
    )
