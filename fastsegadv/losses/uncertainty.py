"""The public loss of the uncertainty-weighted loss L^U (Maag & Fischer, WACV 2024, 004 Eq. 9) on the fused ops;
its weights and schedule: fastsegadv.reference.uncertainty."""

from __future__ import annotations

import torch

from ..ops.weighted_ce import weighted_cross_entropy
from ..reference.weighted import Weighting


def uncertainty_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    measure: str = "entropy",
    detach_weight: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """Uncertainty-weighted loss L^U of 004 Eq. 9."""

    w = Weighting(uncertainty=measure, detach_uncertainty=detach_weight)
    return weighted_cross_entropy(logits, labels, weighting=w, ignore_index=ignore_index, reduction=reduction)
