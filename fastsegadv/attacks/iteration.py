"""One iteration of the driver's attack (001 Eq. 1): forward, objective, input gradient, update.

    x_t = Proj_{B_eps(x)} clip_[0,1](x_{t-1} + alpha * step(grad_x L(f(x_{t-1}), y)))

with ``step`` = sign (ℓ∞; fused with the projection in one pass where the op exists), g/||g||_2 (ℓ2) or
g/||g||_∞ (DAG), negated for targeted attacks, zeroed outside ``pixel_mask``. The first call decides,
eagerly, whether the logits stay below the label resolution (upsampled inside the fused loss) and checks
the labels against the model's classes; later calls may run inside a captured graph (capture.py), where
t reaches the loss only through the kernel parameters."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..backend import choose_backend
from ..ops.attack_step import linf_step
from ..outputs import class_prediction, logits_at
from .objectives import Objective
from .perturbation import per_image_norm, project
from .validation import check_label_range

STEP_RULES = ("linf", "l2", "linf_normalized")  # checked by run_attack before any work


def input_leaf(x_adv: torch.Tensor) -> torch.Tensor:
    """The iterate as a new leaf that requires grad (the input gradient is taken w.r.t. it)."""
    return x_adv.detach().requires_grad_(True)


class AttackIteration:
    """``(x_adv [B, 3, H, W], params, t, first) -> (next iterate, loss, prediction [B, H, W] or None,
    image_loss [B] or None)``: ``image_loss`` (the objective per image at ``x_adv``, signed so that higher is
    more damaging) when ``want_image_loss``."""

    def __init__(self, *, forward_raw: Callable, objective: Objective, x: torch.Tensor, labels: torch.Tensor,
                 attack_labels: torch.Tensor, targeted: bool, eps: float, alpha: float, steps: int, step_rule: str,
                 pixel_mask: torch.Tensor | None, hook, ignore_index: int, want_prediction: bool,
                 want_image_loss: bool = False):
        self.forward_raw, self.objective, self.x = forward_raw, objective, x
        self.labels, self.attack_labels, self.targeted = labels, attack_labels, targeted
        self.size = labels.shape[-2:]
        self.eps, self.alpha, self.steps, self.step_rule = eps, alpha, steps, step_rule
        self.sign = -1.0 if targeted else 1.0
        self.norm = "l2" if step_rule == "l2" else "linf"
        self.pixel_mask, self.hook, self.ignore_index = pixel_mask, hook, ignore_index
        self.want_prediction, self.want_image_loss = want_prediction, want_image_loss
        self.fused_update = step_rule == "linf" and pixel_mask is None
        self.low_res = False  # decided in the first call
        self.fused = False  # the loss runs on a kernel (params= needs one)

    def __call__(self, x_adv: torch.Tensor, params: torch.Tensor | None, t: int | None, first: bool = False):
        """``x_adv``: the iterate; a captured step gets it as a leaf that already requires grad
        (:func:`input_leaf`, made outside the graph: dynamo 2.11 cannot trace ``requires_grad_()``)."""
        objective, size = self.objective, self.size
        if not (x_adv.requires_grad and x_adv.is_leaf):
            x_adv = input_leaf(x_adv)
        with torch.enable_grad():
            raw = self.forward_raw(x_adv)  # [B, C, h, w]
            if first:
                self.low_res = (tuple(raw.shape[-2:]) != tuple(size) and objective.supports_low_res
                                and raw.dim() == 4 and choose_backend("upsample_weighted_ce", raw) != "reference")
                self.fused = choose_backend("weighted_ce", raw) != "reference"
            low_res = self.low_res
            logits = raw if low_res else logits_at(raw, size)
            if first:
                check_label_range(self.labels, logits.shape[1], self.ignore_index)
                if self.targeted:
                    check_label_range(self.attack_labels, logits.shape[1], self.ignore_index)
                if objective.needs_features:
                    self.hook.resolve(raw)  # feature_layer=None: the convolution that produced these logits
            feats = self.hook.features if objective.needs_features else None
            loss = objective(logits, self.attack_labels, step=t, steps=self.steps, features=feats, low_res=low_res,
                             params=params)
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach()
        with torch.no_grad():
            prediction = None
            if self.want_prediction:  # [B, H, W], from the same forward
                prediction = class_prediction(logits_at(logits.detach(), size) if low_res else logits.detach())
            image_loss = self.image_loss(logits.detach(), feats, t, params) if self.want_image_loss else None
            if objective.needs_features:
                self.hook.features = None  # not kept past the step (a captured graph cannot return it)
            if self.fused_update:  # step + projection + clamp in one pass
                next_x = linf_step(x_adv, grad, self.x, self.sign * self.alpha, self.eps)
                return next_x, loss.detach(), prediction, image_loss
            g = self.sign * grad
            if self.pixel_mask is not None:
                g = g * self.pixel_mask.to(g)
            if self.step_rule == "linf":
                g = g.sign()
            elif self.step_rule == "l2":
                g = g / per_image_norm(g, 2)
            else:
                g = g / per_image_norm(g, math.inf)
            return project(x_adv + self.alpha * g, self.x, self.eps, self.norm), loss.detach(), prediction, image_loss

    def image_loss(self, logits: torch.Tensor, features, t: int | None, params: torch.Tensor | None) -> torch.Tensor:
        """``[B]`` the objective per image on this forward's ``logits`` (signed: higher is more damaging)."""
        value = self.objective.per_image(logits, self.attack_labels, step=t, steps=self.steps, features=features,
                                         low_res=self.low_res, params=params)
        return self.sign * value.float()

    @torch.no_grad()
    def score_final(self, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last iterate's ``(prediction [B, H, W], image_loss [B] or None)`` from one no-grad forward."""
        raw = self.forward_raw(x_adv)
        logits = raw if self.low_res else logits_at(raw, self.size)
        feats = self.hook.features if self.objective.needs_features else None
        image_loss = self.image_loss(logits, feats, self.steps, None) if self.want_image_loss else None
        if self.objective.needs_features:
            self.hook.features = None
        prediction = class_prediction(logits_at(logits, self.size) if self.low_res else logits)
        return prediction, image_loss
