"""Built-in segmentation data: scikit-learn's handwritten digits (real 8x8 scans, 1797 of them)
composited onto procedural textured backgrounds. 11 classes: 0 = background, 1 + d = digit d.

Each image is ``[3, S, S]`` float in [0, 1]; each label ``[S, S]`` int64 with 255 on a thin band of
ambiguous pixels around each digit stroke (like Pascal VOC's boundary label). Fully determined by
``(split, size, num_images, seed)``; the train and test splits draw from disjoint digit scans.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

NUM_CLASSES = 11
IGNORE_INDEX = 255
CLASS_NAMES = ("background",) + tuple(f"digit {d}" for d in range(10))
_SPLITS = ("train", "test")


def _digit_scans(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # ships its data; no download

    d = load_digits()
    imgs = torch.from_numpy(d.images.astype(np.float32) / 16.0)  # [1797, 8, 8]
    targets = torch.from_numpy(d.target.astype(np.int64))
    cut = 1400
    return (imgs[:cut], targets[:cut]) if split == "train" else (imgs[cut:], targets[cut:])


def _texture(gen: torch.Generator, size: int) -> torch.Tensor:
    """A [3, S, S] background: two colours mixed by oriented stripes and smooth noise."""
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    theta = float(torch.rand((), generator=gen)) * math.pi
    freq = 0.1 + 0.5 * float(torch.rand((), generator=gen))
    stripes = 0.5 + 0.5 * torch.sin(freq * (xx * math.cos(theta) + yy * math.sin(theta)))
    noise = torch.rand((1, 1, size // 8 + 1, size // 8 + 1), generator=gen)
    noise = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    mix = (0.6 * stripes + 0.4 * noise).clamp(0, 1)
    c1, c2 = torch.rand((3, 1, 1), generator=gen), torch.rand((3, 1, 1), generator=gen)
    return c1 * mix + c2 * (1 - mix)


def make_digit_scenes(
    split: str = "train", *, num_images: int = 256, size: int = 64, max_digits: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``images [N, 3, S, S]`` in [0, 1] and ``labels [N, S, S]`` int64 (255 = ignore)."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if size < 24:
        raise ValueError(f"size must be >= 24, got {size}")
    scans, digits = _digit_scans(split)
    gen = torch.Generator().manual_seed(seed * 2 + _SPLITS.index(split))
    images = torch.empty((num_images, 3, size, size))
    labels = torch.zeros((num_images, size, size), dtype=torch.int64)
    for n in range(num_images):
        img = _texture(gen, size)
        lab = labels[n]
        count = int(torch.randint(1, max_digits + 1, (), generator=gen))
        for _ in range(count):
            k = int(torch.randint(len(scans), (), generator=gen))
            side = int(torch.randint(size // 4, size // 2 + 1, (), generator=gen))
            stroke = F.interpolate(scans[k][None, None], size=(side, side), mode="bilinear", align_corners=False)[0, 0]
            top = int(torch.randint(0, size - side + 1, (), generator=gen))
            left = int(torch.randint(0, size - side + 1, (), generator=gen))
            colour = torch.rand((3, 1, 1), generator=gen)
            region = img[:, top : top + side, left : left + side]
            alpha = stroke.clamp(0, 1)
            img[:, top : top + side, left : left + side] = region * (1 - alpha) + colour * alpha
            patch = lab[top : top + side, left : left + side]
            fg = stroke > 0.5
            band = (stroke > 0.25) & ~fg
            patch[fg] = 1 + int(digits[k])
            patch[band & (patch == 0)] = IGNORE_INDEX
        images[n] = img.clamp(0, 1)
    return images, labels


def digit_scenes_dataset(split: str = "train", **kwargs) -> TensorDataset:
    """:func:`make_digit_scenes` as a ``TensorDataset`` of ``(image, label)`` pairs."""
    return TensorDataset(*make_digit_scenes(split, **kwargs))
