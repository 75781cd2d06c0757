"""PAdam: projected Adam on the perturbation (Halmosi et al., "Evaluating the adversarial robustness of semantic
segmentation: trying harder", ECCV 2024 workshops; released as the ``rse`` package), with the cross-entropy
(PAdam-CE) or the cosine loss on raw logits (PAdam-Cos).

δ starts uniform in [−ε, ε] (clipped so that x + δ ∈ [0, 1]); each of ``steps`` iterations takes one Adam step
with AMSGrad (lr 2/255, betas (0.9, 0.999)) that *increases* the loss, then projects δ on [−ε, ε] and on
x + δ ∈ [0, 1]. Losses, per pixel, averaged over each image's valid pixels and summed over the images (so
an image's step does not depend on the others; Adam is per coordinate):

- ``ce``: cross-entropy (the fused op);
- ``cos``: 1 − cos(z, e_y) = 1 − z_y / ‖z‖₂ with z the raw logits of the pixel and e_y its one-hot label.

Differences from the released code: an image stops once all its valid pixels are misclassified; ignored
pixels carry no loss (the released loss counts them, and its
one-hot cannot take 255 or −1); the returned point is, per image, the iterate with the lowest pixel
accuracy (the evaluation criterion of every attack here), not the last one.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .best_iterate import BestIterate
from .margins import normalized_true_logit, per_image_mean, pixel_ce
from .model_io import NormalizedModel, class_prediction, frozen_for_attack, logits_at
from .perturbation import per_image_generators, project, uniform
from .sea import RADIUS_STAGES, stage_iterations
from .validation import check_attack_inputs, check_label_range, reject_unknown_options

PADAM_LOSSES = ("ce", "cos")


def cosine_to_label(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``[B, H, W]``: 1 − z_y / max(‖z‖₂, 1e-8) per pixel of ``logits [B, C, H, W]``; 0 on ignored pixels."""
    cos = normalized_true_logit(logits, labels, ignore_index, eps=1e-8)
    return torch.where(labels != ignore_index, 1.0 - cos, torch.zeros_like(cos))


def padam_pixel_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str, ignore_index: int) -> torch.Tensor:
    if loss == "ce":
        return pixel_ce(logits, labels, ignore_index)
    if loss == "cos":
        return cosine_to_label(logits, labels, ignore_index)
    raise ValueError(f"loss must be one of {PADAM_LOSSES}, got {loss!r}")


def padam_stage(net, x: torch.Tensor, labels: torch.Tensor, delta: torch.Tensor, *, radius: float, steps: int,
                lr: float, loss: str, betas: tuple[float, float], ignore_index: int, passes: torch.Tensor,
                trace=None, stage: int = 0) -> torch.Tensor:
    """``steps`` AMSGrad ascent steps on δ (``delta [B, 3, H, W]``, already in the ball of ``radius``) from a
    fresh optimiser state; returns per image the iterate ``x + δ`` with the lowest pixel accuracy.

    Adam is per coordinate, so it is written out here on the images still running: an image whose valid
    pixels are all misclassified stops (its later passes are not spent)."""
    b = x.shape[0]
    valid = labels != ignore_index
    has_valid = valid.flatten(1).any(1)
    delta = delta.clone()
    m, v, v_max = torch.zeros_like(delta), torch.zeros_like(delta), torch.zeros_like(delta)  # Adam's moments
    b1, b2 = betas
    best = BestIterate(x + delta, ties="replace")
    prediction = torch.zeros_like(labels)
    active = torch.arange(b, device=x.device)
    for t in range(steps + 1):  # steps updates; the last forward scores the final iterate
        xa, da = x[active], delta[active].requires_grad_(True)
        with torch.enable_grad():
            logits = logits_at(net(xa + da), labels.shape[-2:])
            pixel = padam_pixel_loss(logits, labels[active], loss, ignore_index)
            per_img = per_image_mean(pixel, valid[active])  # [b_active]
            grad = torch.autograd.grad(per_img.sum(), da)[0] if t < steps else None
        passes[active] += 1
        prediction[active] = class_prediction(logits.detach())
        best.update(xa + da.detach(), prediction[active], labels[active], ignore_index, index=active)
        if trace is not None:
            trace.record_step(stage, per_img.detach().sum(), prediction, labels, ignore_index)
        if grad is None:
            break
        # one AMSGrad ascent step (torch.optim.Adam(amsgrad=True, maximize=True)), then the projections
        ma = b1 * m[active] + (1 - b1) * grad
        va = b2 * v[active] + (1 - b2) * grad * grad
        va_max = torch.maximum(v_max[active], va)
        step = lr / (1 - b1 ** (t + 1)) * ma / (va_max.sqrt() / math.sqrt(1 - b2 ** (t + 1)) + 1e-8)
        m[active], v[active], v_max[active] = ma, va, va_max
        da = (da.detach() + step).clamp(-radius, radius)
        delta[active] = (xa + da).clamp(0.0, 1.0) - xa
        active = active[(best.score[active] < 1.0) & has_valid[active]]  # fully fooled images stop
        if active.numel() == 0:
            break
    return best.x


def padam(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float = 8 / 255, steps: int = 200,
          lr: float = 2 / 255, loss: str = "ce", betas: tuple[float, float] = (0.9, 0.999),
          radius_reduction: bool = False, seed=None, ignore_index: int = 255,
          normalization: tuple | None = None, eval_mode: bool = True, trace=None, passes: torch.Tensor | None = None,
          **unused) -> torch.Tensor:
    """Adversarial images ``[B, 3, H, W]`` within the ℓ∞ ball of radius ``eps`` found by projected Adam
    (AMSGrad) on δ, maximising ``loss`` (``"ce"`` or ``"cos"``). ``alpha`` is not used (``lr`` is Adam's).

    ``radius_reduction=True`` (not in the released code): SEA's schedule (Croce et al. 2024) — three runs of
    ⌊0.3N⌋, ⌊0.3N⌋ and the rest of the steps at radii 2ε, 1.5ε and ε, each from the previous run's
    lowest-accuracy point projected into its ball, with a fresh Adam state. ``passes`` (a ``[B]`` int tensor)
    accumulates each image's forward(+backward) passes; a fully fooled image stops."""
    unused.pop("alpha", None)
    reject_unknown_options(unused, "padam")
    labels = check_attack_inputs(model, images, labels, eps=eps, alpha=lr, steps=steps)
    if loss not in PADAM_LOSSES:
        raise ValueError(f"loss must be one of {PADAM_LOSSES}, got {loss!r}")
    stages = list(zip((r for r, _ in RADIUS_STAGES), stage_iterations(steps))) if radius_reduction else [(1.0, steps)]
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    x = images.detach()
    b = x.shape[0]
    passes = passes if passes is not None else torch.zeros(b, dtype=torch.long, device=x.device)
    start = uniform(x.shape, per_image_generators(seed, b, x.device), x.device, x.dtype) * 2 - 1
    x_adv = (x + start * stages[0][0] * eps).clamp(0.0, 1.0)
    with frozen_for_attack(model, eval_mode=eval_mode):
        with torch.no_grad():
            check_label_range(labels, logits_at(net(x[:1]), labels.shape[-2:]).shape[1], ignore_index)
        for stage, (mult, n) in enumerate(stages):
            r = mult * eps
            x_adv = project(x_adv, x, r, "linf")  # warm start, projected into this ball
            if n == 0:  # fewer than 4 steps leave the first stages no iteration
                continue
            x_adv = padam_stage(net, x, labels, x_adv - x, radius=r, steps=n, lr=lr, loss=loss, betas=betas,
                                ignore_index=ignore_index, passes=passes, trace=trace, stage=stage)
    return x_adv
