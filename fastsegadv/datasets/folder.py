"""A segmentation dataset read from image / label file pairs: the base of the VOC, Cityscapes and ADE20K
readers. Items are ``(image [3, H, W] float in [0, 1], label [H, W] int64)`` with ``ignore_index`` on
pixels to ignore; a label image whose size differs from its image, or with values outside the classes
that are not the ignore label, is a clear error naming the file."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: directory {path} does not exist")
    return path


class SegmentationFolder(Dataset):
    """``pairs``: ``(image path, label path)``. ``label_map``: a 256-entry lookup table applied to the raw
    label values (e.g. Cityscapes labelIds -> trainIds, ADE20K's 0 -> ignore). ``crop_size=(h, w)``: a
    centred crop, padded with 0 (image) / ignore (label) where the image is smaller, so items batch."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], *, num_classes: int, ignore_index: int = 255,
                 label_map: np.ndarray | None = None, crop_size: tuple[int, int] | None = None,
                 class_names: Sequence[str] | None = None, name: str = "dataset"):
        if not pairs:
            raise ValueError(f"{name}: no image/label pairs found")
        self.pairs = [(Path(a), Path(b)) for a, b in pairs]
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.label_map = None if label_map is None else np.asarray(label_map, dtype=np.int64)
        if self.label_map is not None and self.label_map.shape != (256,):
            raise ValueError("label_map must be a lookup table of 256 entries")
        if crop_size is not None and (len(crop_size) != 2 or min(crop_size) < 1):
            raise ValueError(f"crop_size must be (height, width) >= 1, got {crop_size}")
        self.crop_size = None if crop_size is None else (int(crop_size[0]), int(crop_size[1]))
        self.class_names = tuple(class_names) if class_names is not None else None
        self.name = name

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image

        img_path, lab_path = self.pairs[i]
        with Image.open(img_path) as im:
            image = np.array(im.convert("RGB"))  # [H, W, 3] uint8 (a writable copy)
        with Image.open(lab_path) as lm:
            if lm.mode not in ("P", "L", "I", "I;16"):
                raise ValueError(f"{self.name}: label {lab_path} has mode {lm.mode}; expected a single-channel "
                                 "(palette or grey) PNG of class indices")
            label = np.asarray(lm).astype(np.int64)  # [H, W]; palette images give their indices
        if image.shape[:2] != label.shape:
            raise ValueError(f"{self.name}: label {lab_path} is {label.shape[1]}x{label.shape[0]} but image "
                             f"{img_path} is {image.shape[1]}x{image.shape[0]}")
        if self.label_map is not None:
            if label.min() < 0 or label.max() > 255:
                raise ValueError(f"{self.name}: label {lab_path} has values outside 0..255")
            label = self.label_map[label]
        bad = (label != self.ignore_index) & ((label < 0) | (label >= self.num_classes))
        if bad.any():
            raise ValueError(f"{self.name}: label {lab_path} contains {int(label[bad][0])}, outside "
                             f"[0, {self.num_classes - 1}] and not the ignore label {self.ignore_index}")
        return image, label

    def _crop(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        th, tw = self.crop_size
        h, w = label.shape
        out_i = image.new_zeros((3, th, tw))
        out_l = label.new_full((th, tw), self.ignore_index)
        sh, sw = max(0, (h - th) // 2), max(0, (w - tw) // 2)  # source offsets (crop)
        dh, dw = max(0, (th - h) // 2), max(0, (tw - w) // 2)  # destination offsets (pad)
        ch, cw = min(h, th), min(w, tw)
        out_i[:, dh:dh + ch, dw:dw + cw] = image[:, sh:sh + ch, sw:sw + cw]
        out_l[dh:dh + ch, dw:dw + cw] = label[sh:sh + ch, sw:sw + cw]
        return out_i, out_l

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self._read(i)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0  # [3, H, W]
        y = torch.from_numpy(label)  # [H, W]
        if self.crop_size is not None:
            x, y = self._crop(x, y)
        return x, y

    def verify(self, progress: Callable | None = None) -> None:
        """Read every pair once (sizes and label values), so a bad file fails before any work is done."""
        for i in range(len(self)):
            self._read(i)
            if progress is not None:
                progress(i)
