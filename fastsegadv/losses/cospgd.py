"""The public loss of CosPGD (Agnihotri & Keuper, ICML 2024, Eq. 5) on the fused ops;
its weights and schedule: fastsegadv.reference.cospgd."""

from __future__ import annotations

import torch

from ..ops.weighted_ce import weighted_cross_entropy
from ..reference.weighted import Weighting


def cospgd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    activation: str = "softmax",
    targeted: bool = False,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """CosPGD loss ``(1/N_v) sum_i cos_i CE_i``."""

    w = Weighting(cospgd=activation, cospgd_targeted=targeted)
    return weighted_cross_entropy(logits, labels, weighting=w, ignore_index=ignore_index, reduction=reduction)
