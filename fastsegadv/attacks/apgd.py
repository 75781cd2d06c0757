"""APGD (Croce & Hein, ICML 2020), ℓ∞, with the losses SEA uses for segmentation (Croce et al. 2023):
cross-entropy, masked cross-entropy (CE on the pixels still correct) and the Jensen-Shannon divergence
to the one-hot label; each image's loss is the mean over its valid pixels.

Step size: η starts at 2ε; at the checkpoints w_j = ceil(p_j N) (p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)) it is halved, and the iterate reset to the best point,
for an image where the loss increased in fewer than ρ = 0.75 of the steps since the last checkpoint or
where neither η nor the best loss changed since then. Update with momentum α = 0.75:

    z = P(x_k + η sign(∇L(x_k))),   x_{k+1} = P(x_k + α (z - x_k) + (1 - α)(x_k - x_{k-1}))

Returned per image: the iterate with the highest MisRatio (the evaluation criterion; SEA keeps the
lowest accuracy), not the highest loss.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .best_iterate import BestIterate
from .margins import per_image_mean, pixel_loss
from .model_io import NormalizedModel, class_prediction, frozen_for_attack, logits_at
from .perturbation import per_image_generators
from .perturbation import random_start as random_start_point
from .validation import check_attack_inputs, check_label_range, reject_unknown_options


def apgd_checkpoints(steps: int) -> list[int]:
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    marks = {math.ceil(round(q * steps, 9)) for q in p[1:]}  # round: 0.57 * 100 is 57.000000000000007
    return sorted(w for w in marks if w < steps)


def apgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float = 8 / 255, steps: int = 100,
         loss: str = "ce", rho: float = 0.75, momentum: float = 0.75, random_start: bool = True, seed=None,
         ignore_index: int = 255, normalization: tuple | None = None, eval_mode: bool = True, trace=None,
         **unused) -> torch.Tensor:
    """Adversarial images ``[B, 3, H, W]`` within the ℓ∞ ball of radius ``eps`` (``alpha`` is not used:
    APGD sets its own step size)."""
    reject_unknown_options(unused, "apgd")
    labels = check_attack_inputs(model, images, labels, eps=eps, alpha=0.0, steps=steps)
    pixel_loss(torch.zeros(1, 2, 1, 1), torch.zeros(1, 1, 1, dtype=torch.long), loss, ignore_index)  # name check
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    x = images.detach()
    b = x.shape[0]
    view = (-1, 1, 1, 1)

    def project(v):
        return torch.min(torch.max(v, x - eps), x + eps).clamp(0.0, 1.0)

    checks = set(apgd_checkpoints(steps))
    with frozen_for_attack(model, eval_mode=eval_mode):

        checked = []

        def evaluate(v):
            v = v.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = logits_at(net(v), labels.shape[-2:])
                if not checked:  # before the first loss: out-of-range labels get a clear error, not the kernel's
                    check_label_range(labels, logits.shape[1], ignore_index)
                    checked.append(True)
                per_img = per_image_mean(pixel_loss(logits, labels, loss, ignore_index), labels != ignore_index)
                (g,) = torch.autograd.grad(per_img.sum(), v)
            return per_img.detach(), g, logits.detach()

        x_cur = (
            random_start_point(x, eps, "linf", per_image_generators(seed, b, x.device)) if random_start else x.clone()
        )
        f_cur, g_cur, logits = evaluate(x_cur)
        eta = torch.full((b,), 2 * eps, device=x.device)
        f_max, x_max, g_max = f_cur.clone(), x_cur.clone(), g_cur.clone()
        best = BestIterate(x_cur)  # ties keep the earlier iterate
        best.update(x_cur, class_prediction(logits), labels, ignore_index)
        x_prev = x_cur.clone()
        increases = torch.zeros(b, device=x.device)
        last_check, eta_at_check, fmax_at_check = 0, eta.clone(), f_max.clone()
        for k in range(steps):
            z = project(x_cur + eta.view(view) * g_cur.sign())
            a = 1.0 if k == 0 else momentum
            x_next = project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev))
            f_next, g_next, logits = evaluate(x_next)
            if trace is not None:
                trace.record_step(0, f_next.sum(), class_prediction(logits), labels, ignore_index)
            best.update(x_next, class_prediction(logits), labels, ignore_index)
            increases += (f_next > f_cur).float()
            up = f_next > f_max
            f_max = torch.where(up, f_next, f_max)
            x_max = torch.where(up.view(view), x_next, x_max)
            g_max = torch.where(up.view(view), g_next, g_max)
            x_prev, x_cur, f_cur, g_cur = x_cur, x_next, f_next, g_next
            if k + 1 in checks:
                span = k + 1 - last_check
                cond1 = increases < rho * span
                cond2 = (eta_at_check == eta) & (fmax_at_check == f_max)
                halve = cond1 | cond2
                eta = torch.where(halve, eta / 2, eta)
                x_cur = torch.where(halve.view(view), x_max, x_cur)
                f_cur = torch.where(halve, f_max, f_cur)
                g_cur = torch.where(halve.view(view), g_max, g_cur)
                x_prev = torch.where(halve.view(view), x_max, x_prev)
                increases.zero_()
                last_check, eta_at_check, fmax_at_check = k + 1, eta.clone(), f_max.clone()
    return best.x
