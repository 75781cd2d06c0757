"""A compact UPerNet (Xiao et al., "Unified Perceptual Parsing", ECCV 2018) for the built-in data: the second
reference architecture, the decoder of the strongest robust models of Croce et al. (ECCV 2024), unlike
:class:`TinyDeepLab` in the parts that matter for robustness: a four-stage encoder down to output stride
16 with no dilation, a pyramid pooling module (bins 1, 2, 4) on the last stage, a feature pyramid (top-down
lateral fusion) and the fusion of all four levels at stride 2, then a 1x1 ``classifier``.

Stage widths ``w, 2w, 4w, 4w`` at strides 2, 4, 8, 16, pyramid width ``2w``; ~0.2M parameters at ``w = 16``.
Returns logits ``[B, K, H, W]`` at input resolution."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tiny_deeplab import conv_bn_relu

POOL_BINS = (1, 2, 4)


def resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling (Zhao et al., CVPR 2017): average pools to each bin, 1x1 conv, upsample,
    concatenated with the input, then a 3x3 conv."""

    def __init__(self, cin: int, cout: int, bins=POOL_BINS):
        super().__init__()
        self.bins = bins
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout, 1) for _ in bins])
        self.project = conv_bn_relu(cin + len(bins) * cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, cin, h, w] -> [B, cout, h, w]
        pooled = [resize(b(F.adaptive_avg_pool2d(x, n)), x.shape[-2:]) for b, n in zip(self.branches, self.bins)]
        return self.project(torch.cat([x] + pooled, 1))


class TinyUPerNet(nn.Module):
    """The built-in compact UPerNet (module docstring): images ``[B, 3, H, W]`` -> logits
    ``[B, num_classes, H, W]``; ``width`` scales every layer."""
    def __init__(self, num_classes: int = 11, width: int = 16):
        super().__init__()
        w, d = width, 2 * width
        self.num_classes, self.width = num_classes, width
        widths = (w, 2 * w, 4 * w, 4 * w)
        self.stages = nn.ModuleList(
            nn.Sequential(conv_bn_relu(cin, cout, stride=2), conv_bn_relu(cout, cout))
            for cin, cout in zip((3,) + widths[:-1], widths)
        )  # strides 2, 4, 8, 16
        self.ppm = PyramidPooling(widths[-1], d)
        self.lateral = nn.ModuleList(conv_bn_relu(c, d, 1) for c in widths[:-1])
        self.smooth = nn.ModuleList(conv_bn_relu(d, d) for _ in widths[:-1])
        self.fuse = conv_bn_relu(4 * d, d)
        self.classifier = nn.Conv2d(d, num_classes, 1)  # the last Conv2d: RP-PGD's feature layer is its input

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, K, H, W]
        size = x.shape[-2:]
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)  # [B, widths[s], H/2^(s+1), W/2^(s+1)]
        top = self.ppm(feats[-1])  # [B, d, H/16, W/16]
        pyramid = [top]
        for lateral, smooth, f in zip(reversed(self.lateral), reversed(self.smooth), reversed(feats[:-1])):
            top = lateral(f) + resize(top, f.shape[-2:])  # top-down pathway
            pyramid.insert(0, smooth(top))
        fine = pyramid[0].shape[-2:]  # stride 2
        fused = self.fuse(torch.cat([pyramid[0]] + [resize(p, fine) for p in pyramid[1:]], 1))  # [B, d, H/2, W/2]
        return resize(self.classifier(fused), size)
