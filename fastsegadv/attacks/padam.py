"""PAdam: projected Adam on the perturbation (Halmosi et al., "Evaluating the adversarial robustness of semantic
segmentation: trying harder", ECCV 2024 workshops; released as the ``rse`` package), with the cross-entropy
(PAdam-CE) or the cosine loss on raw logits (PAdam-Cos).

δ starts uniform in [−ε, ε] (clipped so that x + δ ∈ [0, 1]); each of ``steps`` iterations takes one Adam step
with AMSGrad (lr 2/255, betas (0.9, 0.999)) that *increases* the loss, then projects δ on [−ε, ε] and on
x + δ ∈ [0, 1]. Losses, per pixel, averaged over each image's valid pixels and summed over the images (so
an image's step does not depend on the others; Adam is per coordinate):

- ``ce``: cross-entropy (the fused op);
- ``cos``: 1 − cos(z, e_y) = 1 − z_y / ‖z‖₂ with z the raw logits of the pixel and e_y its one-hot label.

Differences from the released code: ignored pixels carry no loss (the released loss counts them, and its
one-hot cannot take 255 or −1); the returned point is, per image, the iterate with the lowest pixel
accuracy (the evaluation criterion of every attack here), not the last one.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .best_iterate import BestIterate
from .margins import normalized_true_logit, per_image_mean, pixel_ce
from .model_io import NormalizedModel, class_prediction, frozen_for_attack, logits_at
from .perturbation import per_image_generators, uniform
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


def padam(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float = 8 / 255, steps: int = 200,
          lr: float = 2 / 255, loss: str = "ce", betas: tuple[float, float] = (0.9, 0.999), seed=None,
          ignore_index: int = 255, normalization: tuple | None = None, eval_mode: bool = True, trace=None,
          **unused) -> torch.Tensor:
    """Adversarial images ``[B, 3, H, W]`` within the ℓ∞ ball of radius ``eps`` found by projected Adam
    (AMSGrad) on δ, maximising ``loss`` (``"ce"`` or ``"cos"``). ``alpha`` is not used (``lr`` is Adam's)."""
    unused.pop("alpha", None)
    reject_unknown_options(unused, "padam")
    check_attack_inputs(model, images, labels, eps=eps, alpha=lr, steps=steps)
    if loss not in PADAM_LOSSES:
        raise ValueError(f"loss must be one of {PADAM_LOSSES}, got {loss!r}")
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    x = images.detach()
    b = x.shape[0]
    valid = labels != ignore_index
    start = uniform(x.shape, per_image_generators(seed, b, x.device), x.device, x.dtype) * 2 - 1
    delta = ((x + start * eps).clamp(0.0, 1.0) - x).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=lr, betas=betas, amsgrad=True, maximize=True)
    best = BestIterate(x + delta.detach(), ties="replace")
    with frozen_for_attack(model, eval_mode=eval_mode):
        for i in range(steps + 1):  # steps updates; the last forward scores the final iterate
            with torch.enable_grad():
                logits = logits_at(net(x + delta), labels.shape[-2:])
                if i == 0:
                    check_label_range(labels, logits.shape[1], ignore_index)
                per_img = per_image_mean(padam_pixel_loss(logits, labels, loss, ignore_index), valid)  # [B]
                prediction = class_prediction(logits.detach())
                best.update(x + delta.detach(), prediction, labels, ignore_index)
                if trace is not None:
                    trace.record_step(0, per_img.detach().sum(), prediction, labels, ignore_index)
                if i == steps:
                    break
                (delta.grad,) = torch.autograd.grad(per_img.sum(), delta)
            opt.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
                delta.copy_((x + delta).clamp(0.0, 1.0) - x)
    return best.x
