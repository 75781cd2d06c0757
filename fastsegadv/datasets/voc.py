"""Pascal VOC 2012 segmentation (21 classes, 255 = the object-boundary 'void' label), optionally with
the SBD augmented labels (``SegmentationClassAug`` + a list file such as ``train_aug.txt``)."""
from __future__ import annotations

from pathlib import Path

from .folder import SegmentationFolder, require_dir

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def _voc_root(root: Path) -> Path:
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise FileNotFoundError(f"Pascal VOC: no JPEGImages/ under {root} (looked in {root}, {root}/VOC2012, "
                            f"{root}/VOCdevkit/VOC2012)")


def _ids(list_file: Path) -> list[tuple[str, str | None]]:
    """Lines ``id`` or ``/JPEGImages/id.jpg /SegmentationClassAug/id.png`` (the SBD list format)."""
    if not list_file.is_file():
        raise FileNotFoundError(f"Pascal VOC: list file {list_file} does not exist")
    out = []
    for line in list_file.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 1:
            out.append((parts[0], None))
        else:
            out.append((Path(parts[0]).stem, parts[1]))
    return out


def voc2012(root: str | Path, split: str = "val", *, sbd: bool = False, list_file: str | Path | None = None,
            crop_size: tuple[int, int] | None = None) -> SegmentationFolder:
    """``split``: a name in ``ImageSets/Segmentation`` (train, val, trainval), or with ``sbd=True`` the
    list file ``<root>/<split>.txt`` / ``ImageSets/Segmentation/<split>.txt`` (e.g. ``train_aug``) whose
    labels come from ``SegmentationClassAug``. ``list_file`` overrides the lookup."""
    base = _voc_root(require_dir(Path(root), "Pascal VOC"))
    label_dir = require_dir(base / ("SegmentationClassAug" if sbd else "SegmentationClass"), "Pascal VOC labels")
    if list_file is None:
        cands = [
            base / "ImageSets" / "Segmentation" / f"{split}.txt",
            base / f"{split}.txt",
            Path(root) / f"{split}.txt",
        ]
        list_file = next((c for c in cands if c.is_file()), cands[0])
    pairs = []
    for ident, rel_label in _ids(Path(list_file)):
        img = base / "JPEGImages" / f"{ident}.jpg"
        lab = base / rel_label.lstrip("/") if rel_label else label_dir / f"{ident}.png"
        if not img.is_file() or not lab.is_file():
            raise FileNotFoundError(
                f"Pascal VOC: {ident} listed in {list_file} but {img if not img.is_file() else lab} is missing"
            )
        pairs.append((img, lab))
    return SegmentationFolder(
        pairs,
        num_classes=21,
        ignore_index=255,
        crop_size=crop_size,
        class_names=VOC_CLASSES,
        name=f"Pascal VOC {split}",
    )
