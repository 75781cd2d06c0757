"""Cityscapes (19 train classes, 255 = ignore): ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``, or ``*_gtFine_labelIds.png`` mapped to trainIds with
the official table when the trainId files have not been generated."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .folder import SegmentationFolder, require_dir

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")
# labelId -> trainId (cityscapesScripts labels.py); every other id -> 255
_ID_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
                27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def label_ids_to_train_ids() -> np.ndarray:
    """``[256]`` lookup table from Cityscapes label ids to the 19 train ids (255 = ignore)."""
    lut = np.full(256, 255, dtype=np.int64)
    for k, v in _ID_TO_TRAIN.items():
        lut[k] = v
    return lut


def cityscapes(root: str | Path, split: str = "val", *, crop_size: tuple[int, int] | None = None) -> SegmentationFolder:
    """Cityscapes ``leftImg8bit/<split>`` with ``gtFine`` labels (train ids if present, else label ids mapped to
    the 19 train ids), 255 = ignore. ``crop_size=(H, W)`` crops every pair so that they batch."""
    root = require_dir(Path(root), "Cityscapes")
    img_root = require_dir(root / "leftImg8bit" / split, "Cityscapes images")
    gt_root = require_dir(root / "gtFine" / split, "Cityscapes labels")
    images = sorted(img_root.glob("*/*_leftImg8bit.png"))
    use_train_ids = any(gt_root.glob("*/*_gtFine_labelTrainIds.png"))
    suffix = "_gtFine_labelTrainIds.png" if use_train_ids else "_gtFine_labelIds.png"
    pairs = []
    for img in images:
        lab = gt_root / img.parent.name / img.name.replace("_leftImg8bit.png", suffix)
        if not lab.is_file():
            raise FileNotFoundError(f"Cityscapes: no label {lab} for image {img}")
        pairs.append((img, lab))
    return SegmentationFolder(pairs, num_classes=19, ignore_index=255,
                              label_map=None if use_train_ids else label_ids_to_train_ids(), crop_size=crop_size,
                              class_names=CITYSCAPES_CLASSES, name=f"Cityscapes {split}")
