"""Zero-out of confidently misclassified pixels, L^0 (Maag & Fischer, WACV 2024, 004 Eq. 10).

``w_i = 0`` if the pixel is misclassified and its top probability ``p_(1) >= tau`` (tau = 0.75 on
probabilities as Eq. 10 states; the authors' ``attacks.py`` compares raw logits instead), else 1.
Detached: it is an indicator.
"""
from __future__ import annotations

import torch


def zero_out_weight(probs_max: torch.Tensor, correct: torch.Tensor, *, tau: float = 0.75) -> torch.Tensor:
    """``[B,H,W]`` float 0/1 weights from the top probability ``[B,H,W]`` and the correct mask."""
    keep = correct | (probs_max.detach() < tau)
    return keep.to(torch.float32)
