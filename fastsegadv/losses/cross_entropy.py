"""Plain per-pixel cross-entropy (PGD, FGSM, I-FGSM): ``L = (1/N_v) sum_i v_i CE_i`` (DESIGN.md §2)."""
from __future__ import annotations

import torch

from ..ops.weighted_ce import weighted_cross_entropy
from ..reference.weighted import Weighting


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255, reduction: str = "mean"
) -> torch.Tensor:
    """Same value as ``F.cross_entropy(logits, labels, ignore_index=..., reduction=...)``, except that a
    batch with no valid pixel gives 0 (not NaN) under ``reduction="mean"``.

    logits ``[B, C, H, W]``, labels ``[B, H, W]`` -> scalar, or ``[B, H, W]`` for ``reduction="none"``.
    """
    return weighted_cross_entropy(logits, labels, weighting=Weighting(), ignore_index=ignore_index, reduction=reduction)
