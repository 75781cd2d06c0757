"""Per-pixel building blocks shared by every loss (DESIGN.md §2).

Notation: logits ``z`` are ``[B, C, H, W]``, labels ``y`` are ``[B, H, W]`` (int64, with
``ignore_index`` marking pixels that carry no label), ``v_i = [y_i != ignore_index]``,
``CE_i = logsumexp(z_i) - z_{i, y_i}`` (0 where not valid) and ``N_v = sum_i v_i``.
"""
from __future__ import annotations

import torch

from .._ops import label_counts

REDUCTIONS = ("mean", "sum", "none")


def compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """fp16/bf16 logits are evaluated in fp32 (fp32 accumulation); fp32/fp64 stay as they are."""
    return torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype


def valid_mask(labels: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(valid [B,H,W] bool, safe_labels [B,H,W] int64)``; ignored pixels get label 0."""
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels)).long()
    return valid, safe


def cross_entropy_map(log_probs: torch.Tensor, safe_labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-pixel CE ``-log p_{y_i}`` from log-probabilities ``[B,C,H,W]``; 0 where not valid."""
    nll = -log_probs.gather(1, safe_labels.unsqueeze(1)).squeeze(1)  # [B, H, W]
    return torch.where(valid, nll, torch.zeros_like(nll))


def reduce_pixels(per_pixel: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """``mean``: sum over valid pixels / N_v (0 when N_v = 0, never NaN); ``sum``; ``none``: ``[B,H,W]``."""
    if reduction == "none":
        return per_pixel
    total = per_pixel.sum()
    if reduction == "sum":
        return total
    n_valid = valid.sum().clamp(min=1).to(per_pixel.dtype)
    return total / n_valid


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_labels_like(labels: torch.Tensor, other: torch.Tensor, name: str, *, spatial: bool = True) -> None:
    """labels must be an integer ``[B, H, W]`` tensor matching ``other [B, *, H, W]`` (called ``name``) in
    batch, size (unless ``spatial=False``: logits below the labels' resolution) and device."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 3:
        raise ValueError(f"labels must be a [B, H, W] tensor, got shape {tuple(getattr(labels, 'shape', ()))}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    b, _, h, w = other.shape
    if not spatial:
        h, w = labels.shape[-2:]
    if tuple(labels.shape) != (b, h, w):
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match {name} [B, H, W] = {(b, h, w)}")
    if labels.device != other.device:
        raise ValueError(f"labels are on {labels.device} but {name} on {other.device}")


def check_logits_labels(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> None:
    """Clear errors for the usual mistakes (shapes, dtypes, devices, labels out of range)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
        raise ValueError(f"logits must be a [B, C, H, W] tensor, got shape {tuple(getattr(logits, 'shape', ()))}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    check_labels_like(labels, logits, "logits")
    check_label_range(labels, logits.shape[1], ignore_index)


def check_label_range(labels: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Every label is a class in ``[0, num_classes)`` or ``ignore_index``: checked in one pass without a
    ``[B, H, W]`` mask (:func:`fastsegadv._ops.label_counts`); the error names the first offending value."""
    if int(label_counts(labels, num_classes, ignore_index)[1]):
        bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
        raise ValueError(
            f"labels contain {labels[bad][0].item()}, outside [0, {num_classes - 1}] "
            f"(the model has {num_classes} classes) and not the ignore_index {ignore_index}"
        )
