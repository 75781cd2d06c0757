"""Eager reference of RP-PGD's prototype sums (003 Eq. 5): nearest-neighbour resize of integer maps and
masked per-class feature sums (the reference of :func:`fastsegadv.ops.masked_class_sums`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_nearest(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an integer map ``[B, H, W]`` to ``[B, h, w]``."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).to(t.dtype)


def masked_class_sums_reference(
    features: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Segmented reduction: ``sums [B, K, d]`` and ``counts [B, K]`` of features over ``mask`` (eager
    one-hot matmul; the reference of :func:`fastsegadv.ops.masked_class_sums`).

    features ``[B, d, h, w]``, labels ``[B, h, w]`` (values in [0, K) where mask), mask ``[B, h, w]``.
    """
    b, d = features.shape[:2]
    safe = torch.where(mask, labels.long(), torch.zeros_like(labels, dtype=torch.long))
    onehot = F.one_hot(safe.flatten(1), num_classes).to(features.dtype)  # [B, hw, K]
    onehot = onehot * mask.flatten(1).unsqueeze(-1).to(features.dtype)
    sums = torch.bmm(onehot.transpose(1, 2), features.flatten(2).transpose(1, 2))  # [B, K, d]
    counts = onehot.sum(1)  # [B, K]
    return sums, counts
