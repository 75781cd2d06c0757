"""A compact DeepLabv3+-style network for the built-in data: a strided conv encoder (output stride 4),
an ASPP head (dilations 1, 2, 4 + image pooling), a low-level skip, and a 1x1 ``classifier`` whose
input is the feature map RP-PGD's prototypes use. ~130k parameters; returns logits at input resolution.

``norm="group"`` swaps BatchNorm for GroupNorm (no dependence on the batch: distributed training then
equals one process exactly); ``aux_head=True`` returns torchvision's ``{"out", "aux"}`` dict, the aux
logits from the output-stride-4 features."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("batch", "group")


def conv_bn_relu(
    cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, norm: str = "batch"
) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    layer = nn.BatchNorm2d(cout) if norm == "batch" else nn.GroupNorm(math.gcd(8, cout), cout)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
        layer,
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (Chen et al., DeepLabv3)."""

    def __init__(self, cin: int, cout: int, dilations=(1, 2, 4), norm: str = "batch"):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout, 1, norm=norm)]
            + [conv_bn_relu(cin, cout, 3, dilation=d, norm=norm) for d in dilations[1:]]
        )
        self.pool = conv_bn_relu(cin, cout, 1, norm=norm)
        self.project = conv_bn_relu(cout * (len(dilations) + 1), cout, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, cin, h, w] -> [B, cout, h, w]
        outs = [b(x) for b in self.branches]
        pooled = self.pool(x.mean((2, 3), keepdim=True))
        outs.append(pooled.expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, 1))


class TinyDeepLab(nn.Module):
    """The built-in DeepLabv3+-style network (module docstring): images ``[B, 3, H, W]`` -> logits
    ``[B, num_classes, H, W]`` (or ``{"out", "aux"}`` with ``aux_head=True``); ``width`` scales every layer,
    ``norm`` is ``"batch"`` or ``"group"``."""
    def __init__(self, num_classes: int = 11, width: int = 32, *, norm: str = "batch", aux_head: bool = False):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        w = width
        self.num_classes = num_classes
        self.width, self.norm, self.aux_head = width, norm, aux_head
        self.stem = nn.Sequential(conv_bn_relu(3, w, stride=2, norm=norm), conv_bn_relu(w, w, norm=norm))  # 1/2
        self.layer2 = nn.Sequential(
            conv_bn_relu(w, 2 * w, stride=2, norm=norm), conv_bn_relu(2 * w, 2 * w, norm=norm)
        )  # 1/4
        self.aspp = ASPP(2 * w, 2 * w, norm=norm)
        self.low = conv_bn_relu(w, w // 2, 1, norm=norm)
        self.decoder = conv_bn_relu(2 * w + w // 2, 2 * w, norm=norm)
        # registered before the classifier: the last Conv2d stays the classifier (RP-PGD's feature layer)
        self.aux = nn.Conv2d(2 * w, num_classes, 1) if aux_head else None
        self.classifier = nn.Conv2d(2 * w, num_classes, 1)

    def forward(self, x: torch.Tensor):  # [B, 3, H, W] -> [B, K, H, W] (or {"out", "aux"} with aux_head)
        size = x.shape[-2:]
        low = self.stem(x)  # [B, w, H/2, W/2]
        mid = self.layer2(low)  # [B, 2w, H/4, W/4]
        high = self.aspp(mid)  # [B, 2w, H/4, W/4]
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        feats = self.decoder(torch.cat([high, self.low(low)], 1))  # [B, 2w, H/2, W/2]
        logits = F.interpolate(self.classifier(feats), size=size, mode="bilinear", align_corners=False)
        if self.aux is None:
            return logits
        return {"out": logits, "aux": F.interpolate(self.aux(mid), size=size, mode="bilinear", align_corners=False)}
