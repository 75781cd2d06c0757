"""The checkpoints shipped in ``fastsegadv/weights/`` (made by ``fastsegadv train-reference``)."""
from __future__ import annotations

from pathlib import Path

import torch

from .tiny_deeplab import TinyDeepLab

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = {
    "standard": "tiny_deeplab_digits.pt",
    "pgd_at": "tiny_deeplab_digits_pgd_at.pt",
}


def checkpoint_path(name: str = "standard") -> Path:
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped model {name!r}; choose from {sorted(SHIPPED)}")
    return WEIGHTS_DIR / SHIPPED[name]


def load_pretrained(name: str = "standard", *, map_location="cpu") -> TinyDeepLab:
    """The shipped TinyDeepLab trained on the built-in digit scenes, in eval mode."""
    path = checkpoint_path(name)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; recreate it with `fastsegadv train-reference --model {name}`")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    model = TinyDeepLab(num_classes=int(ckpt["num_classes"]), width=int(ckpt["width"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
