"""RP-PGD prototype loss (Zhang et al., AAAI 2025, 003 Eq. 5-6).

For each image and each class ``c`` present in its True region (valid pixels only):
``P_c = sum_{i in T, y_i = c} M_i / |{i in T, y_i = c}|`` (Eq. 5, masked average pooling) over
features ``M [B, d, h, w]``; labels and region state are resized to ``h x w`` by nearest neighbour.
``L_P = (1 / C(N_P, 2)) sum_{i != j} cos(P_i, P_j)`` over ordered pairs of the N_P prototypes (Eq. 6
as written, so identical prototypes give 2), 0 when N_P < 2; per image (``reduction="none"``) or
averaged over the images of the batch.
The gradient flows into the features (the public RP-PGD code detaches them; we do not).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.masked_class_sums import masked_class_sums
from ..reference.prototypes import resize_nearest
from ..reference.regions import TRUE


def class_prototypes(
    features: torch.Tensor,
    labels: torch.Tensor,
    region_state: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prototypes ``[B, K, d]`` (zero rows where absent) and a presence mask ``[B, K]`` (003 Eq. 5)."""
    size = tuple(features.shape[-2:])
    lab = resize_nearest(labels, size)
    state = resize_nearest(region_state, size)
    mask = (state == TRUE) & (lab != ignore_index) & (lab >= 0) & (lab < num_classes)
    sums, counts = masked_class_sums(features, lab, mask, num_classes)
    present = counts > 0
    protos = sums.to(features.dtype) / counts.clamp_min(1).unsqueeze(-1).to(features.dtype)
    return protos, present


def prototype_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    region_state: torch.Tensor,
    *,
    num_classes: int,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> torch.Tensor:
    """L_P of 003 Eq. 6 per image ``[B]`` (``reduction="none"``) or averaged over the batch (``"mean"``).
    features ``[B, d, h, w]``, labels/state ``[B, H, W]``."""
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if features.dim() != 4:
        raise ValueError(f"features must be [B, d, h, w], got shape {tuple(features.shape)}")
    if labels.shape != region_state.shape or labels.shape[0] != features.shape[0]:
        raise ValueError("labels and region_state must be [B, H, W] with the features' batch size")
    protos, present = class_prototypes(
        features, labels, region_state, num_classes=num_classes, ignore_index=ignore_index
    )
    unit = F.normalize(protos, dim=-1, eps=1e-12)  # [B, K, d]
    cos = unit @ unit.transpose(1, 2)  # [B, K, K]
    pm = present.to(cos.dtype)
    pair = pm.unsqueeze(2) * pm.unsqueeze(1)
    pair = pair * (1 - torch.eye(num_classes, dtype=cos.dtype, device=cos.device))
    n_p = pm.sum(1)  # [B]
    n_comb = n_p * (n_p - 1) / 2
    per_image = (cos * pair).sum((1, 2)) / n_comb.clamp_min(1)
    per_image = torch.where(n_p >= 2, per_image, torch.zeros_like(per_image))
    return per_image if reduction == "none" else per_image.mean()
