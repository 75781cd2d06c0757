"""The checkpoints shipped in ``fastsegadv/weights/`` (made by ``fastsegadv train-reference``)."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .tiny_deeplab import TinyDeepLab
from .tiny_upernet import TinyUPerNet

ARCHITECTURES = {"tiny_deeplab": TinyDeepLab, "tiny_upernet": TinyUPerNet}

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = {
    "standard": "tiny_deeplab_digits.pt",
    "pgd_at": "tiny_deeplab_digits_pgd_at.pt",
    "upernet": "tiny_upernet_digits.pt",
    "upernet_pgd_at": "tiny_upernet_digits_pgd_at.pt",
}


def checkpoint_path(name: str = "standard") -> Path:
    """The file of a shipped model (``standard``, ``pgd_at``, ``upernet``, ``upernet_pgd_at``)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped model {name!r}; choose from {sorted(SHIPPED)}")
    return WEIGHTS_DIR / SHIPPED[name]


def load_pretrained(name: str = "standard", *, map_location="cpu") -> nn.Module:
    """A shipped model (TinyDeepLab, or TinyUPerNet for ``upernet*``) trained on the built-in digit scenes, in
    eval mode."""
    path = checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; recreate it with `fastsegadv train-reference --model {name}`")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    model = ARCHITECTURES[ckpt.get("arch", "tiny_deeplab")](int(ckpt["num_classes"]), width=int(ckpt["width"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
