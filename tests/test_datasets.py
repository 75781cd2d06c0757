"""Dataset readers on tiny fake directory trees in the real layouts, and their errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from fastsegadv.datasets import ade20k, cityscapes, open_dataset, voc2012
from fastsegadv.evaluation import EvalConfig, evaluate_model
from fastsegadv.models import TinyDeepLab


def _save_rgb(path, h, w, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _save_label(path, arr, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr.astype(np.uint8), mode="L")
    if palette:  # VOC labels are palette PNGs: the indices are the classes
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    im.save(path)


def _voc_tree(root, ids=("a", "b"), h=10, w=12):
    base = root / "VOCdevkit" / "VOC2012"
    for k, ident in enumerate(ids):
        _save_rgb(base / "JPEGImages" / f"{ident}.jpg", h, w, k)
        lab = np.full((h, w), 0)
        lab[2:5, 3:7] = 15  # person
        lab[5, :] = 255  # boundary
        _save_label(base / "SegmentationClass" / f"{ident}.png", lab, palette=True)
        lab_aug = lab.copy()
        lab_aug[0, 0] = 20
        _save_label(base / "SegmentationClassAug" / f"{ident}.png", lab_aug)
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    (base / "ImageSets" / "Segmentation" / "train_aug.txt").write_text(
        "\n".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in ids) + "\n")
    return base


def test_voc_reads_images_and_palette_labels(tmp_path):
    _voc_tree(tmp_path)
    ds = voc2012(tmp_path, "val")
    assert len(ds) == 2 and ds.num_classes == 21 and ds.ignore_index == 255
    x, y = ds[0]
    assert x.shape == (3, 10, 12) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64 and y[3, 4] == 15 and (y[5] == 255).all() and y[0, 0] == 0


def test_voc_sbd_list_file(tmp_path):
    _voc_tree(tmp_path)
    ds = open_dataset("voc_sbd", root=tmp_path, split="train_aug")
    assert len(ds) == 2 and ds[1][1][0, 0] == 20


def test_cityscapes_train_ids_and_label_ids(tmp_path):
    for split_root, suffix, value in ((tmp_path / "a", "labelTrainIds", 13), (tmp_path / "b", "labelIds", 26)):
        _save_rgb(split_root / "leftImg8bit" / "val" / "ulm" / "ulm_000001_leftImg8bit.png", 8, 16, 0)
        lab = np.full((8, 16), value)
        lab[0] = 255 if suffix == "labelTrainIds" else 3  # 3 = 'out of roi' -> ignore
        _save_label(split_root / "gtFine" / "val" / "ulm" / f"ulm_000001_gtFine_{suffix}.png", lab)
        ds = cityscapes(split_root, "val")
        _, y = ds[0]
        assert ds.num_classes == 19 and y[4, 4] == 13 and (y[0] == 255).all()  # 26 (car) -> trainId 13


def test_ade20k_reduces_the_zero_label(tmp_path):
    base = tmp_path / "ADEChallengeData2016"
    _save_rgb(base / "images" / "validation" / "ADE_val_00000001.jpg", 9, 9, 0)
    lab = np.zeros((9, 9))
    lab[3:6, 3:6] = 150
    lab[0, 0] = 1
    _save_label(base / "annotations" / "validation" / "ADE_val_00000001.png", lab)
    ds = ade20k(tmp_path, "val")
    _, y = ds[0]
    assert ds.num_classes == 150 and y[4, 4] == 149 and y[0, 0] == 0 and y[8, 8] == 255


def test_crop_size_pads_with_ignore(tmp_path):
    _voc_tree(tmp_path)
    x, y = voc2012(tmp_path, "val", crop_size=(14, 8))[0]
    assert x.shape == (3, 14, 8) and y.shape == (14, 8)
    assert (y[:2] == 255).all() and (x[:, :2] == 0).all()


def test_evaluation_runs_on_a_file_dataset(tmp_path):
    _voc_tree(tmp_path, h=24, w=24)
    ds = voc2012(tmp_path, "val")
    model = TinyDeepLab(21, width=8).eval()
    r = evaluate_model(model, ds, EvalConfig(attacks=["pgd@1"], batch_size=2, progress=False), num_classes=21)
    assert r.clean.matrix.sum() == sum(int((ds[i][1] != 255).sum()) for i in range(2))


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cityscapes(tmp_path / "nope", "val")
    with pytest.raises(FileNotFoundError, match="no JPEGImages"):
        voc2012(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="ADE20K images"):
        ade20k(tmp_path, "val")


def test_label_of_the_wrong_size(tmp_path):
    base = _voc_tree(tmp_path)
    _save_label(base / "SegmentationClass" / "b.png", np.zeros((7, 12)))
    ds = voc2012(tmp_path, "val")
    ds[0]
    with pytest.raises(ValueError, match=r"label .*b.png is 12x7 but image .*b.jpg is 12x10"):
        ds[1]
    with pytest.raises(ValueError, match="b.png is 12x7"):
        ds.verify()


def test_label_out_of_range_and_missing_files(tmp_path):
    base = _voc_tree(tmp_path)
    _save_label(base / "SegmentationClass" / "a.png", np.full((10, 12), 30))
    with pytest.raises(ValueError, match="contains 30, outside"):
        voc2012(tmp_path, "val")[0]
    (base / "JPEGImages" / "b.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="b listed in"):
        voc2012(tmp_path, "val")


def test_unknown_dataset_kind():
    with pytest.raises(ValueError, match="unknown dataset 'cityscape'.*did you mean 'cityscapes'"):
        open_dataset("cityscape", root=".")
    with pytest.raises(ValueError, match="needs a root"):
        open_dataset("ade20k")
