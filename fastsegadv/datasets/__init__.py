"""Dataset readers for the usual segmentation layouts (Pascal VOC 2012 + SBD, Cityscapes, ADE20K) and the
built-in data, all yielding ``(image [3, H, W] in [0, 1], label [H, W] int64)`` with 255 = ignore.

    ds = open_dataset("cityscapes", root="/data/cityscapes", split="val")
    ds.num_classes, ds.ignore_index   # 19, 255
"""
from __future__ import annotations

import difflib

from .ade20k import ade20k
from .builtin import DigitScenes
from .cityscapes import CITYSCAPES_CLASSES, cityscapes, label_ids_to_train_ids
from .folder import SegmentationFolder
from .voc import VOC_CLASSES, voc2012

KINDS = ("builtin", "voc", "voc_sbd", "cityscapes", "ade20k")


def open_dataset(kind: str = "builtin", *, root=None, split: str = "val", crop_size=None, num_images: int = 128,
                 size: int = 64, seed: int = 0):
    """A dataset by layout name. ``builtin`` ignores ``root`` (``split`` train or test; ``val`` = test)."""
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        raise ValueError(f"unknown dataset {kind!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
                         f"choose from {', '.join(KINDS)}")
    if kind == "builtin":
        return DigitScenes("test" if split in ("val", "test") else "train", num_images=num_images, size=size, seed=seed)
    if root is None:
        raise ValueError(f"dataset {kind!r} needs a root directory")
    if kind in ("voc", "voc_sbd"):
        return voc2012(root, split, sbd=kind == "voc_sbd", crop_size=crop_size)
    if kind == "cityscapes":
        return cityscapes(root, split, crop_size=crop_size)
    return ade20k(root, split, crop_size=crop_size)


__all__ = ["open_dataset", "KINDS", "SegmentationFolder", "DigitScenes", "voc2012", "cityscapes", "ade20k",
           "label_ids_to_train_ids", "VOC_CLASSES", "CITYSCAPES_CLASSES"]
