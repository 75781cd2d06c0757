"""Sliding-window inference as a differentiable model: mmseg's ``slide`` mode (``EncoderDecoder.slide_inference``).

    model = SlidingWindow(segformer, crop=(512, 1024), stride=(341, 683))   # Cityscapes, 1024x2048
    adv = fastsegadv.attacks.pgd(model, images, labels)                     # attacks the stitched logits

Windows of ``crop = (hc, wc)`` start every ``stride = (sh, sw)`` pixels; the last row and column of
windows are moved back to end at the image border (``y1 = max(min(y1 + hc, H) - hc, 0)``), so every
window has the crop's size (the image's where it is smaller). Each window's logits are resized to the
window (bilinear; the model's own resolution, e.g. SegFormer's 1/4, is upsampled as mmseg's
``encode_decode`` does), placed at its position (zero elsewhere: mmseg's ``F.pad``), summed, and divided by
the count map (how many windows cover each pixel):

    logits[b, :, y, x] = sum_{windows w covering (y, x)} z_w[b, :, y - y1_w, x - x1_w] / count[y, x]

It is an ``nn.Module`` whose forward is differentiable w.r.t. the image, so attacks, adversarial training
and the harness run through it unchanged, on full-resolution images. Windows run ``chunk`` at a time (a
batch of windows per forward) to bound memory; ``checkpoint=True`` also recomputes each chunk in the
backward (activation memory of one chunk instead of all windows, for one more forward per step).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as recompute

from ..outputs import extract_logits


def _pair(v, name: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in pair):
        raise ValueError(f"{name} must be an integer >= 1 or a pair (height, width) of them, got {v!r}")
    return pair


def window_grid(size: Sequence[int], crop: Sequence[int], stride: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """The windows ``(y1, y2, x1, x2)`` of mmseg's ``slide_inference`` over an image of ``size = (H, W)``."""
    (h, w), (hc, wc), (sh, sw) = size, crop, stride
    rows = max(h - hc + sh - 1, 0) // sh + 1
    cols = max(w - wc + sw - 1, 0) // sw + 1
    windows = []
    for i in range(rows):
        for j in range(cols):
            y2, x2 = min(i * sh + hc, h), min(j * sw + wc, w)
            windows.append((max(y2 - hc, 0), y2, max(x2 - wc, 0), x2))
    return windows


class SlidingWindow(nn.Module):
    """``model`` applied in overlapping windows and stitched (see the module docstring).

    Args:
        model: any segmentation model (a tensor, a dict with ``out``/``logits`` or a Hugging Face output).
        crop: window size, an int or ``(height, width)``.
        stride: step between windows, an int or ``(height, width)``; at most the crop (so windows cover
            the image).
        chunk: windows per forward (all images of the batch at once): ``B * chunk`` crops per call.
        checkpoint: recompute each chunk's forward in the backward instead of keeping its activations.
        align_corners: of the resize of each window's logits to the window (mmseg heads: False).
    """

    def __init__(self, model: nn.Module, crop: int | Sequence[int], stride: int | Sequence[int], *, chunk: int = 4,
                 checkpoint: bool = False, align_corners: bool = False):
        super().__init__()
        self.model = model
        self.crop, self.stride = _pair(crop, "crop"), _pair(stride, "stride")
        if self.stride[0] > self.crop[0] or self.stride[1] > self.crop[1]:
            raise ValueError(f"stride {self.stride} must not exceed crop {self.crop}: windows would leave gaps")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
        self.chunk, self.checkpoint, self.align_corners = chunk, checkpoint, align_corners

    def extra_repr(self) -> str:
        return f"crop={self.crop}, stride={self.stride}, chunk={self.chunk}, checkpoint={self.checkpoint}"

    def _window_logits(self, crops: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        z = extract_logits(self.model(crops))  # [n, C, h', w'] at the model's resolution
        if tuple(z.shape[-2:]) != size:
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=self.align_corners)
        return z

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images ``[B, 3, H, W]`` -> stitched logits ``[B, C, H, W]``."""
        b, _, h, w = images.shape
        windows = window_grid((h, w), self.crop, self.stride)
        wh, ww = windows[0][1] - windows[0][0], windows[0][3] - windows[0][2]
        count = torch.zeros((h, w), dtype=images.dtype, device=images.device)
        out = None
        for start in range(0, len(windows), self.chunk):
            part = windows[start:start + self.chunk]
            crops = torch.cat([images[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in part])  # [len(part) * B, 3, wh, ww]
            if self.checkpoint and torch.is_grad_enabled():
                z = recompute(self._window_logits, crops, (wh, ww), use_reentrant=False)
            else:
                z = self._window_logits(crops, (wh, ww))
            if out is None:
                out = z.new_zeros((b, z.shape[1], h, w))
            for k, (y1, y2, x1, x2) in enumerate(part):
                # in place into the window's slice (mmseg adds an F.pad of it: the same sum, without a
                # full-size temporary per window); autograd records the slice writes
                out[:, :, y1:y2, x1:x2] += z[k * b:(k + 1) * b]
                count[y1:y2, x1:x2] += 1
        return out / count.to(out.dtype)
