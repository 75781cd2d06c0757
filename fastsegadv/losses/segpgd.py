"""The public loss of SegPGD (Gu et al., ECCV 2022, 001 Eq. 4) on the fused ops;
its weights and schedule: fastsegadv.reference.segpgd."""

from __future__ import annotations

import torch

from ..ops.weighted_ce import weighted_cross_entropy
from ..reference.weighted import Weighting


def segpgd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    step: int,
    steps: int,
    schedule: str = "linear",
    lam: float | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """SegPGD loss of 001 Eq. 4 at iteration ``step`` of ``steps``; mean over valid pixels by default
    (the paper divides by H*W: the same ℓ∞ sign step, a different logged value)."""

    w = Weighting(segpgd=schedule, lam=lam)
    return weighted_cross_entropy(
        logits, labels, weighting=w, step=step, steps=steps, ignore_index=ignore_index, reduction=reduction
    )
