"""Per-pixel quantities the evaluation attacks (CW, DeepFool, APGD) share."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def label_margin(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(margin [B, H, W], valid [B, H, W])``: ``z_y - max_{k != y} z_k`` (positive = correct) in fp32;
    0 on ignored pixels."""
    z = logits.float()
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels)).unsqueeze(1)  # [B, 1, H, W]
    z_y = z.gather(1, safe).squeeze(1)
    others = z.scatter(1, safe, float("-inf")).amax(1)
    return torch.where(valid, z_y - others, torch.zeros_like(z_y)), valid


def per_image_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]``: mean of ``values [B, H, W]`` over ``mask``; 0 for an image with no masked pixel."""
    m = mask.to(values.dtype)
    return (values * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)


def pixel_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, ignore_index: int) -> torch.Tensor:
    """``[B, H, W]`` per-pixel loss of APGD/SEA (Croce et al. 2023): ``ce``; ``masked_ce`` = CE on the
    pixels still correctly classified (mask detached); ``js`` = Jensen-Shannon divergence between
    softmax(z) and the one-hot label. 0 on ignored pixels."""
    z = logits.float()
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    if kind in ("ce", "masked_ce"):
        ce = F.cross_entropy(z, safe, reduction="none")
        if kind == "masked_ce":
            ce = ce * (z.detach().argmax(1) == safe)
        return ce * valid
    if kind == "js":
        logp = F.log_softmax(z, 1)
        p = logp.exp()
        onehot = F.one_hot(safe, z.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
        m = 0.5 * (p + onehot)
        logm = m.clamp_min(1e-12).log()
        kl_pm = (p * (logp - logm)).sum(1)
        kl_om = -(onehot * logm).sum(1)  # sum onehot * (log 1 - log m)
        return 0.5 * (kl_pm + kl_om) * valid
    raise ValueError(f"loss must be 'ce', 'masked_ce' or 'js', got {kind!r}")


def perturbation_norms(adv: torch.Tensor, images: torch.Tensor) -> dict:
    """Per image ``{"l2": [B], "linf": [B]}`` of ``adv - images``."""
    d = (adv - images).flatten(1).float()
    return {"l2": d.norm(dim=1), "linf": d.abs().amax(1)}
