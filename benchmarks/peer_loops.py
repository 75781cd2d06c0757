"""The peers' attack loops as their code / paper writes them, for the side-by-side end-to-end benchmark
(test_attack_e2e.py, attack_overhead.py). Timing only: fastsegadv's parity with them is tested in
tests/losses/test_parity_peers.py.

- ``cospgd_package_loop``: the ``cospgd`` package's loop (its README): CE(reduction="none") ->
  ``segpgd_scale`` / ``cospgd_scale`` -> ``.mean()`` -> ``loss.backward()`` (weight gradients included, as
  the loop is written) -> ``step_inf``.
- ``sea_apgd_js``: APGD (Croce & Hein 2020) on the Jensen-Shannon loss of SEA (Croce et al. 2023, as its
  paper writes it: JS(softmax(z) || onehot(y)) = KL(p || m)/2 + KL(e_y || m)/2 with m = (p + e_y)/2, via
  ``F.kl_div``), per-image mean over the valid pixels, summed over the batch; step size 2*eps halved at
  the APGD checkpoints, momentum 0.75, the iterate of the highest loss kept per image.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class LogitsOnly(torch.nn.Module):
    """``model(x)["out"]``: torchvision segmentation models for loops that expect a logits tensor."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def cospgd_package_loop(model, x, y, *, scale: str, eps: float, alpha: float, steps: int):
    from cospgd import functions

    criterion = torch.nn.CrossEntropyLoss(ignore_index=255, reduction="none")
    images = functions.init_linf(x, epsilon=eps)
    for itr in range(steps):
        images.requires_grad = True
        outputs = model(images)
        loss = criterion(outputs, y)
        if scale == "segpgd":
            loss = functions.segpgd_scale(predictions=outputs, labels=y, loss=loss, iteration=itr, iterations=steps)
        else:
            loss = functions.cospgd_scale(predictions=outputs, labels=y, loss=loss, num_classes=outputs.shape[1])
        loss = loss.mean()
        model.zero_grad()
        loss.backward()
        images = functions.step_inf(perturbed_image=images, epsilon=eps, data_grad=images.grad, orig_image=x,
                                    alpha=alpha, targeted=False)
    return images


def _js_per_image(logits, y, ignore_index=255):
    valid = y != ignore_index
    y0 = torch.where(valid, y, 0)
    p = F.softmax(logits, 1)
    onehot = F.one_hot(y0, logits.shape[1]).permute(0, 3, 1, 2).float()
    log_m = ((p + onehot) / 2).clamp_min(1e-12).log()
    js = 0.5 * (F.kl_div(log_m, p, reduction="none") + F.kl_div(log_m, onehot, reduction="none")).sum(1)
    return (js * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)


def sea_apgd_js(model, x, y, *, eps: float, steps: int, rho: float = 0.75):
    p = [0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    checks = sorted({math.ceil(q * steps) for q in p[1:] if math.ceil(q * steps) < steps})
    view = (-1, 1, 1, 1)

    def grad_of(v):
        v = v.clone().requires_grad_(True)
        loss = _js_per_image(model(v), y)
        loss.sum().backward()
        return loss.detach(), v.grad.detach()

    def project(v):
        return torch.min(torch.max(v, x - eps), x + eps).clamp(0, 1)

    x_adv = project(x + eps * (2 * torch.rand_like(x) - 1))
    loss, grad = grad_of(x_adv)
    step = torch.full((x.shape[0],), 2 * eps, device=x.device)
    best_loss, best_x, best_grad, x_prev = loss.clone(), x_adv.clone(), grad.clone(), x_adv.clone()
    count, last, step_at, best_at = torch.zeros_like(loss), 0, step.clone(), best_loss.clone()
    for k in range(steps):
        z = project(x_adv + step.view(view) * grad.sign())
        a = 1.0 if k == 0 else 0.75
        x_new = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev))
        new_loss, new_grad = grad_of(x_new)
        count += (new_loss > loss).float()
        up = new_loss > best_loss
        best_loss = torch.where(up, new_loss, best_loss)
        best_x = torch.where(up.view(view), x_new, best_x)
        best_grad = torch.where(up.view(view), new_grad, best_grad)
        x_prev, x_adv, loss, grad = x_adv, x_new, new_loss, new_grad
        if k + 1 in checks:
            halve = (count < rho * (k + 1 - last)) | ((step_at == step) & (best_at == best_loss))
            step = torch.where(halve, step / 2, step)
            x_adv = torch.where(halve.view(view), best_x, x_adv)
            x_prev = torch.where(halve.view(view), best_x, x_prev)
            grad = torch.where(halve.view(view), best_grad, grad)
            loss = torch.where(halve, best_loss, loss)
            count.zero_()
            last, step_at, best_at = k + 1, step.clone(), best_loss.clone()
    return best_x
