"""The one iterative driver behind every gradient attack (PGD of Madry et al. 2018, 001 Eq. 1):

    x_0 = clip_[0,1](x + U(-eps, eps))          (random start; x_0 = x without)
    x_t = Proj_{B_eps(x)} clip_[0,1](x_{t-1} + alpha * step(grad_x L(f(x_{t-1}), y)))

with ``step`` = sign (ℓ∞), g/||g||_2 (ℓ2, BIM-ℓ2) or g/||g||_∞ (DAG), negated for targeted attacks.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from ..backend import choose_backend
from .best_iterate import BestIterate
from .capture import CapturedStep
from .model_io import (
    FeatureHook,
    NormalizedModel,
    channels_last_weights,
    class_prediction,
    extract_logits,
    frozen_for_attack,
    logits_at,
)
from .objectives import Objective
from .perturbation import per_image_generators, per_image_norm, project
from .perturbation import random_start as random_start_point
from .step import linf_step
from .trace import AttackTrace
from .validation import check_attack_inputs, check_label_range

STEP_RULES = ("linf", "l2", "linf_normalized")


def _layout_of(t: torch.Tensor) -> torch.memory_format:
    dense_cl = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if dense_cl else torch.contiguous_format


def run_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    objective: Objective,
    eps: float,
    alpha: float,
    steps: int,
    step_rule: str = "linf",
    random_start: bool = False,
    restarts: int = 1,
    targeted_labels: torch.Tensor | None = None,
    best_iterate: bool = False,
    trace: AttackTrace | None = None,
    seed: int | Sequence[int] | torch.Tensor | None = None,
    ignore_index: int = 255,
    normalization: tuple | None = None,
    pixel_mask: torch.Tensor | None = None,
    feature_layer: str | None = None,
    clean_prediction: torch.Tensor | None = None,
    eval_mode: bool = True,
    amp: str | None = None,
    compile_step: bool | str = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """Run ``steps`` iterations of ``objective`` ascent and return adversarial images ``[B, 3, H, W]``.

    images ``[B, 3, H, W]`` in [0, 1], labels ``[B, H, W]`` int with ``ignore_index``. ``eps`` and
    ``alpha`` are on the [0, 1] scale (8/255, not 8). ``targeted_labels`` turns it into descent on the
    objective w.r.t. those labels. ``best_iterate`` keeps, per image, the iterate with the highest
    MisRatio (one extra no-grad forward at the end of each restart); so do ``restarts > 1``.
    ``pixel_mask`` ``[B or 1, 1, H, W]`` zeroes the step outside a pixel subset (004 §4.5).
    ``seed``: an int (one generator for the batch) or one seed per image (the random start of each image
    then does not depend on its batch). ``normalization=(mean, std)`` wraps the model. ``amp="bf16"`` or
    ``"fp16"`` runs the model's forward (and so its backward) under autocast; the loss is computed from the
    low-precision logits with fp32 accumulation (the fused kernels read bf16/fp16 directly) and the
    iterate stays fp32. ``compile_step=True`` (or a ``torch.compile`` backend name) captures steps 2..T as
    one graph each (forward, loss, input gradient, update; CUDA graphs on CUDA; capture.py): same iterates
    as the eager loop up to the compiler's floating-point reassociation, falling back to the eager step
    with a warning where capture fails. ``channels_last=True`` runs the model with its convolution
    weights and the iterate in channels_last (faster convolutions on oneDNN/cuDNN; the original weight
    tensors are put back afterwards). The model's modes, ``requires_grad`` flags and buffers are
    unchanged afterwards.
    """
    check_attack_inputs(model, images, labels, eps=eps, alpha=alpha, steps=steps,
                        norm="l2" if step_rule == "l2" else "linf")
    if amp not in (None, "bf16", "fp16"):
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {STEP_RULES}, got {step_rule!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    if targeted_labels is not None and targeted_labels.shape != labels.shape:
        raise ValueError("targeted_labels must have the labels' shape [B, H, W]")
    if pixel_mask is not None and (pixel_mask.dim() != 4 or pixel_mask.shape[-2:] != images.shape[-2:]):
        raise ValueError("pixel_mask must be [B or 1, 1, H, W] like the images")
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    size = labels.shape[-2:]
    norm = "l2" if step_rule == "l2" else "linf"
    attack_labels = labels if targeted_labels is None else targeted_labels
    sign = -1.0 if targeted_labels is not None else 1.0
    generator = per_image_generators(seed, images.shape[0], images.device)

    x = images.detach()
    track = best_iterate or restarts > 1

    hook = FeatureHook(model, feature_layer) if objective.needs_features else contextlib.nullcontext()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    best = BestIterate(x, ties="replace")  # per image, the highest-MisRatio iterate (later ones win ties)
    with frozen_for_attack(model, eval_mode=eval_mode), channels_last_weights(model, channels_last), hook:

        amp_dtype = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]

        def forward_raw(inp: torch.Tensor) -> torch.Tensor:
            with torch.autocast(inp.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                return extract_logits(net(inp))  # [B, C, h, w]: the model's resolution

        def forward(inp: torch.Tensor) -> torch.Tensor:
            return logits_at(forward_raw(inp), size)  # [B, C, H, W]


        if objective.needs_clean_prediction and clean_prediction is None:
            with torch.no_grad():
                clean_logits = forward(x)
            check_label_range(labels, clean_logits.shape[1], ignore_index)
            clean_prediction = class_prediction(clean_logits)
        # logits below the label resolution are upsampled on the fly inside the fused loss; decided (and the
        # labels checked against the model's classes) in the first, always eager, step
        geometry = {"low_res": False}
        want_prediction = trace is not None or track
        fused_update = step_rule == "linf" and pixel_mask is None

        def step_fn(x_adv: torch.Tensor, params: torch.Tensor | None, t: int | None, first: bool = False):
            """One iteration: -> (next iterate, loss, prediction [B, H, W] from this forward or None).
            ``t`` is None in the captured graph: it then reaches the loss only through ``params``."""
            x_adv = x_adv.detach().requires_grad_(True)
            with torch.enable_grad():
                raw = forward_raw(x_adv)  # [B, C, h, w]
                if first:
                    geometry["low_res"] = (
                        tuple(raw.shape[-2:]) != tuple(size)
                        and objective.supports_low_res
                        and raw.dim() == 4
                        and choose_backend("upsample_weighted_ce", raw) != "reference"
                    )
                    geometry["fused"] = choose_backend("weighted_ce", raw) != "reference"  # params= needs a kernel
                low_res = geometry["low_res"]
                logits = raw if low_res else logits_at(raw, size)
                if first:
                    check_label_range(labels, logits.shape[1], ignore_index)
                    if targeted_labels is not None:
                        check_label_range(targeted_labels, logits.shape[1], ignore_index)
                if first and objective.needs_features:
                    hook.resolve(raw)  # feature_layer=None: the convolution that produced these logits
                feats = hook.features if objective.needs_features else None
                loss = objective(
                    logits, attack_labels, step=t, steps=steps, features=feats, low_res=low_res, params=params
                )
                if objective.needs_features:
                    hook.features = None  # not kept past the step (a captured graph cannot return it)
                (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach()
            with torch.no_grad():
                prediction = None
                if want_prediction:  # [B, H, W], from the same forward
                    prediction = class_prediction(logits_at(logits.detach(), size) if low_res else logits.detach())
                if fused_update:  # step + projection + clamp in one pass
                    return linf_step(x_adv, grad, x, sign * alpha, eps), loss.detach(), prediction
                g = sign * grad
                if pixel_mask is not None:
                    g = g * pixel_mask.to(g)
                if step_rule == "linf":
                    g = g.sign()
                elif step_rule == "l2":
                    g = g / per_image_norm(g, 2)
                else:
                    g = g / per_image_norm(g, math.inf)
                return project(x_adv + alpha * g, x, eps, norm), loss.detach(), prediction

        captured = None
        if compile_step and steps > 1:
            captured = CapturedStep(step_fn, compile_step=compile_step, device=x.device)
        for restart in range(restarts):
            x_adv = random_start_point(x, eps, norm, generator) if random_start else x.clone()
            if channels_last:
                x_adv = x_adv.contiguous(memory_format=torch.channels_last)
            objective.begin(attack_labels, clean_prediction)
            for t in range(1, steps + 1):
                first = restart == 0 and t == 1
                params = None if captured is None or first else objective.kernel_params(t, steps)
                if params is not None:  # a graph input on the device: a CUDA-graph replay copies it in
                    params = params.to(x.device, non_blocking=True)
                if captured is not None and not first and (params is None or geometry["fused"]):
                    x_next, loss, prediction = captured(x_adv, params, None)
                else:  # the same weights from step=t (the eager loss encodes t itself)
                    x_next, loss, prediction = step_fn(x_adv, None, t, first=first)
                with torch.no_grad():
                    if trace is not None:
                        trace.record_step(restart, loss, prediction, labels, ignore_index,
                                          objective.region_counts(attack_labels))
                    if track:
                        best.update(x_adv, prediction, labels, ignore_index)
                x_adv = x_next
            if track:
                with torch.no_grad():
                    best.update(x_adv, class_prediction(forward(x_adv)), labels, ignore_index)
    best_x = best.x if track else x_adv
    if channels_last:  # back to the layout the images came in
        return best_x.detach().contiguous(memory_format=_layout_of(images))
    return best_x.detach()
