"""The public loss of RP-PGD's region loss (Zhang et al., AAAI 2025, 003 Eq. 3-4) on the fused ops;
its weights and schedule: fastsegadv.reference.regions."""

from __future__ import annotations

import torch

from ..ops.weighted_ce import weighted_cross_entropy
from ..reference.weighted import Weighting


def region_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    state: torch.Tensor,
    *,
    step: int,
    steps: int,
    ignore_index: int = 255,
    reduction: str = "mean",
    update_state: bool = True,
) -> torch.Tensor:
    """Region loss L_R of 003 Eq. 3. With ``update_state`` the state is first updated in place from this
    forward's prediction (T -> B where wrong), exactly as the fused kernel does in the same pass."""

    return weighted_cross_entropy(
        logits,
        labels,
        weighting=Weighting(regions=True),
        step=step,
        steps=steps,
        region_state=state,
        update_region_state=update_state,
        ignore_index=ignore_index,
        reduction=reduction,
    )
