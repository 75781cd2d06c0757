"""Per-pixel quantities the evaluation attacks (CW, DeepFool, APGD) share."""
from __future__ import annotations

import math

import torch

from ..ops.weighted_ce import weighted_cross_entropy
from .model_io import class_prediction


def label_margin(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(margin [B, H, W], valid [B, H, W])``: ``z_y - max_{k != y} z_k`` (positive = correct) in fp32;
    0 on ignored pixels."""
    z = logits.float()
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels)).unsqueeze(1)  # [B, 1, H, W]
    z_y = z.gather(1, safe).squeeze(1)
    others = z.scatter(1, safe, float("-inf")).amax(1)
    return torch.where(valid, z_y - others, torch.zeros_like(z_y)), valid


def per_image_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]``: mean of ``values [B, H, W]`` over ``mask``; 0 for an image with no masked pixel."""
    m = mask.to(values.dtype)
    return (values * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)


APGD_LOSSES = ("ce", "masked_ce", "js", "mask_norm_corrlog")


def pixel_ce(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``[B, H, W]`` per-pixel CE from the fused op, in fp32 at least (fp16/bf16 upcast, fp64 kept); 0 on
    ignored pixels."""
    ce = weighted_cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none", validate=False)
    return at_least_fp32(ce)


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in fp32 if it is fp16/bf16, else as it is (fp32 and fp64 kept)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def pixel_ce_and_prediction(logits: torch.Tensor, labels: torch.Tensor,
                            ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(CE [B, H, W] as :func:`pixel_ce`, prediction [B, H, W] int64)``: the class prediction (argmax, first
    index on ties) comes from the same fused pass over the logits as the CE, not from a second read of them."""
    ce, prediction = weighted_cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none",
                                            validate=False, return_prediction=True)
    return at_least_fp32(ce), prediction


def js_from_ce(ce: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence between p = softmax(z) and the one-hot label, from the per-pixel CE.

    JS depends on p_y alone: with m = (p + e_y)/2, m_k = p_k/2 for k != y, so
    ``JS = KL(p||m)/2 + KL(e_y||m)/2 = log 2 + (p_y log p_y - (1 + p_y) log(1 + p_y))/2`` with
    ``p_y = exp(-CE)``: no [B, C, H, W] intermediates; 0 where CE is 0 (ignored pixels)."""
    p_y = torch.exp(-ce)
    return math.log(2.0) + 0.5 * (-p_y * ce - (1.0 + p_y) * torch.log1p(p_y))


def normalized_true_logit(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, *,
                          eps: float) -> torch.Tensor:
    """``[B, H, W]``: z_y / max(‖z‖₂, eps) per pixel of the raw logits ``[B, C, H, W]`` (fp32 at least);
    0 on ignored pixels."""
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels)).unsqueeze(1)
    z = at_least_fp32(logits)
    corr = z.gather(1, safe).squeeze(1) / z.norm(dim=1).clamp_min(eps)
    return torch.where(valid, corr, torch.zeros_like(corr))


def pixel_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, ignore_index: int) -> torch.Tensor:
    """``[B, H, W]`` per-pixel loss of APGD/SEA (Croce et al. 2023): ``ce``; ``masked_ce`` = CE on the
    pixels still correctly classified (mask detached); ``js`` = Jensen-Shannon divergence between
    p = softmax(z) and the one-hot label (:func:`js_from_ce`); ``mask_norm_corrlog`` = −z_y / ‖z‖₂ on the
    pixels still correctly classified (the masked normalised-logit loss of Halmosi et al., ECCV 2024
    workshops, whose APGD steers the step size by this loss itself). 0 on ignored pixels."""
    if kind not in APGD_LOSSES:
        raise ValueError(f"loss must be one of {APGD_LOSSES}, got {kind!r}")
    if kind == "mask_norm_corrlog":
        correct = class_prediction(logits.detach()) == labels
        return -normalized_true_logit(logits, labels, ignore_index, eps=1e-12) * correct
    ce = pixel_ce(logits, labels, ignore_index)
    if kind == "ce":
        return ce
    if kind == "masked_ce":
        return ce * (class_prediction(logits.detach()) == labels)
    return js_from_ce(ce)
