"""DeepFool (Moosavi-Dezfooli et al., CVPR 2016) adapted to dense outputs, the DeepFool column of 001
Tables 1-2.

Per iteration, on the pixels still correctly classified (the active set A, per image), the margins
f_i = z_{k_i}(i) - z_{y_i}(i) with k_i the best other class are negative. DeepFool's linearised step for
a binary classifier, applied to their mean F = mean_{i in A} f_i (one gradient per image):

    r = (|F| + 1e-4) / ||grad_x F||_2^2 * grad_x F,      x_{t+1} = clip_[0,1](x + (1 + overshoot) * sum_{s<=t} r_s)

i.e. the smallest ℓ2 move that would bring the active pixels' mean margin to the decision boundary
under the linear model, accumulated and overshot as in the original. An image stops when no valid pixel
is still correct. Unbounded; ``max_norm`` projects on an ℓ2 ball (to sit in a budgeted table).
"""
from __future__ import annotations

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


def deepfool(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 50,
             overshoot: float = 0.02, max_norm: float | None = None, ignore_index: int = 255,
             normalization: tuple | None = None, eval_mode: bool = True, trace: AttackTrace | None = None,
             **unused) -> torch.Tensor:
    """Adversarial images ``[B, 3, H, W]``; per image the iterate with the highest MisRatio is returned."""
    reject_unknown_options(unused, "deepfool")
    check_seed_length(unused.get("seed"), images.shape[0])
    labels = check_attack_inputs(model, images, labels, eps=0.0, alpha=0.0, steps=steps)
    if overshoot < 0:
        raise ValueError(f"overshoot must be >= 0, got {overshoot}")
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    x = images.detach()
    r_total = torch.zeros_like(x)
    x_adv = x.clone()
    best = BestIterate(x)  # ties keep the earlier (smaller) perturbation
    with frozen_for_attack(model, eval_mode=eval_mode):
        for t in range(steps + 1):
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                logits = logits_at(net(x_adv), labels.shape[-2:])
                if t == 0:
                    check_label_range(labels, logits.shape[1], ignore_index)
                margin, valid = label_margin(logits, labels, ignore_index)  # > 0 where correct
                active = valid & (margin.detach() > 0)  # [B, H, W]
                f = -per_image_mean(margin, active)  # [B] mean of z_k - z_y over the active pixels (< 0)
                grad = input_gradient(f.sum(), x_adv)  # per-image gradients (images independent)
            with torch.no_grad():
                prediction = class_prediction(logits)
                best.update(x_adv, prediction, labels, ignore_index)
                if trace is not None:
                    trace.record_step(0, f.sum(), prediction, labels, ignore_index)
                running = active.flatten(1).any(1)  # [B] images with a pixel still correct
                if t == steps or not bool(running.any()):
                    break
                gn2 = per_image_norm(grad, 2) ** 2  # [B, 1, 1, 1]
                step = (f.abs().view(-1, 1, 1, 1) + 1e-4) / gn2 * grad
                r_total = r_total + step * running.view(-1, 1, 1, 1)
                delta = (1 + overshoot) * r_total
                if max_norm is not None:
                    delta = delta * (max_norm / per_image_norm(delta, 2)).clamp(max=1.0)
                x_adv = (x + delta).clamp(0.0, 1.0)
    return best.x
