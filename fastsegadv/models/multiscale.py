"""Multiscale processing (002 §6 / §A4): the model runs on the input rescaled to each scale, the logits
are upsampled back to the input size and max- or average-pooled over the scales. Differentiable, so it
can be attacked (white box) and used as a target (transfer). ``Rescaled`` is one scale alone (a source
or target of the transfer matrix of 002 Tables A15-A18)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..outputs import extract_logits


def _run_at(model: nn.Module, x: torch.Tensor, scale: float, align_corners: bool) -> torch.Tensor:
    """Logits ``[B, C, H, W]`` of ``model`` run on ``x [B, 3, H, W]`` resized by ``scale``."""
    size = x.shape[-2:]
    xs = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=align_corners,
                                              recompute_scale_factor=False)
    z = extract_logits(model(xs))
    if tuple(z.shape[-2:]) != tuple(size):
        z = F.interpolate(z, size=size, mode="bilinear", align_corners=align_corners)
    return z


class Rescaled(nn.Module):
    """``model`` applied at one input scale, logits returned at the input resolution."""

    def __init__(self, model: nn.Module, scale: float, *, align_corners: bool = False):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.model, self.scale, self.align_corners = model, float(scale), align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run_at(self.model, x, self.scale, self.align_corners)


class MultiScale(nn.Module):
    """``pool`` ("max" or "mean") of the upsampled logits of ``model`` at ``scales`` (002: {0.5, 0.75, 1})."""

    def __init__(self, model: nn.Module, scales: Sequence[float] = (0.5, 0.75, 1.0), *, pool: str = "max",
                 align_corners: bool = False):
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive, got {list(scales)}")
        self.model, self.scales, self.pool, self.align_corners = (
            model,
            tuple(float(s) for s in scales),
            pool,
            align_corners,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([_run_at(self.model, x, s, self.align_corners) for s in self.scales])  # [S, B, C, H, W]
        return outs.amax(0) if self.pool == "max" else outs.mean(0)
