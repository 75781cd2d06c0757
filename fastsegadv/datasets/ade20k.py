"""ADE20K / SceneParsing (150 classes): ``ADEChallengeData2016/images/<training|validation>/*.jpg`` and
``annotations/<...>/*.png`` where 0 is 'other' (ignored) and k in 1..150 is class k - 1 (mmseg's
``reduce_zero_label``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .folder import SegmentationFolder, require_dir

_SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}


def ade20k(root: str | Path, split: str = "val", *, crop_size: tuple[int, int] | None = None) -> SegmentationFolder:
    """ADE20K (``ADEChallengeData2016``) with the 150-class convention: raw label 0 is ignored (255), 1..150
    become 0..149. ``crop_size=(H, W)`` crops every pair so that they batch."""
    if split not in _SPLITS:
        raise ValueError(f"ADE20K split must be one of {sorted(_SPLITS)}, got {split!r}")
    root = require_dir(Path(root), "ADE20K")
    base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
    img_dir = require_dir(base / "images" / _SPLITS[split], "ADE20K images")
    lab_dir = require_dir(base / "annotations" / _SPLITS[split], "ADE20K annotations")
    pairs = []
    for img in sorted(img_dir.glob("*.jpg")):
        lab = lab_dir / f"{img.stem}.png"
        if not lab.is_file():
            raise FileNotFoundError(f"ADE20K: no annotation {lab} for image {img}")
        pairs.append((img, lab))
    lut = np.full(256, 255, dtype=np.int64)
    lut[1:151] = np.arange(150)
    return SegmentationFolder(pairs, num_classes=150, ignore_index=255, label_map=lut, crop_size=crop_size,
                              name=f"ADE20K {split}")
