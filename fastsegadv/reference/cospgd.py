"""CosPGD weights (Agnihotri & Keuper, ICML 2024; the ``cospgd`` package's ``cospgd_scale``).

``w_i = cos(s(z_i), onehot(y_i)) = s_{y_i} / ||s(z_i)||_2`` with ``s`` = softmax (default) or an
element-wise sigmoid (the variant in SEA / torchattacks PR #149). Targeted attacks use ``1 - cos``.
The weight is detached, as in the authors' code.
"""
from __future__ import annotations

import torch

ACTIVATIONS = ("softmax", "sigmoid")


def cospgd_weight(
    logits: torch.Tensor, safe_labels: torch.Tensor, *, activation: str = "softmax", targeted: bool = False
) -> torch.Tensor:
    """``[B,H,W]`` cosine between ``activation(logits)`` ``[B,C,H,W]`` and the one-hot label (detached)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    z = logits.detach()
    s = torch.softmax(z, dim=1) if activation == "softmax" else torch.sigmoid(z)
    s_y = s.gather(1, safe_labels.unsqueeze(1)).squeeze(1)  # [B, H, W]
    cos = s_y / s.norm(dim=1).clamp_min(1e-12)
    return 1.0 - cos if targeted else cos
