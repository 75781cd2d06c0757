"""The public loss of the zero-out loss L^0 (Maag & Fischer, WACV 2024, 004 Eq. 10) on the fused ops;
its weights and schedule: fastsegadv.reference.zero_out."""

from __future__ import annotations

import torch

from ..ops.weighted_ce import weighted_cross_entropy
from ..reference.weighted import Weighting


def zero_out_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    tau: float = 0.75,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """L^0 of 004 Eq. 10: CE with confidently wrong pixels removed."""

    return weighted_cross_entropy(
        logits, labels, weighting=Weighting(zero_out=tau), ignore_index=ignore_index, reduction=reduction
    )
