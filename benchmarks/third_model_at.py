"""Issue 23's third model: a network of another library trained on the digit scenes by the library's own
:func:`fastsegadv.training.fit`, first clean, then PGD-AT (001 Algorithm 2: half of each batch PGD3 at 8/255,
alpha 0.01) -- an architecture and a recipe other than the shipped TinyDeepLab / TinyUPerNet ones.

    python benchmarks/third_model_at.py --arch smp_unet --out ~/.cache/fastsegadv/models/smp_unet_digits_pgd_at.pt

Architectures (random initialisation, nothing downloads):
- ``smp_unet``: segmentation-models-pytorch ``Unet`` with a ResNet-18 encoder (14.3 M parameters);
- ``segformer``: Hugging Face ``SegformerForSemanticSegmentation`` with MiT-b0 widths and depths (3.7 M), first
  patch stride 2 (logits at half the 64x64 input), behind the adapter that upsamples ``.logits``. From scratch
  it predicted only the background after 2 clean epochs of 1500 scenes at lr 2e-3 and at 5e-4 (val mIoU 8.3 %),
  as an earlier 3-epoch run did: it needs a longer schedule than this machine gives.

The checkpoint holds ``state_dict``, ``arch`` and ``config`` and is read back by :func:`load_model` (no pickle:
fastsegadv.safe_load); the training history is written beside it as JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from fastsegadv import atomic_io
from fastsegadv.data import IGNORE_INDEX, NUM_CLASSES, make_digit_scenes
from fastsegadv.models.adapters import SegmentationAdapter
from fastsegadv.safe_load import load_file
from fastsegadv.training import TrainConfig, fit

ARCHS = ("smp_unet", "segformer")


def default_config(arch: str, first_stride: int = 2) -> dict:
    if arch == "smp_unet":
        return {"encoder_name": "resnet18", "encoder_weights": None, "classes": NUM_CLASSES}
    return {"num_labels": NUM_CLASSES, "hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2],
            "num_attention_heads": [1, 2, 5, 8], "decoder_hidden_size": 256, "strides": [first_stride, 2, 2, 2]}


def build(arch: str, config: dict) -> torch.nn.Module:
    """The network as users have it (``model(x) -> logits [B, C, H, W]`` at the input size)."""
    if arch == "smp_unet":
        import segmentation_models_pytorch as smp  # optional: only this script needs it

        return smp.Unet(**config)
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    return SegmentationAdapter(SegformerForSemanticSegmentation(SegformerConfig(**config)), output="logits")


def load_model(path: str | Path) -> torch.nn.Module:
    ck = load_file(path, what="a checkpoint written by benchmarks/third_model_at.py")
    model = build(ck["arch"], ck["config"])
    model.load_state_dict(ck["state_dict"])
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=ARCHS, default="smp_unet")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clean-epochs", type=int, default=8)
    p.add_argument("--at-epochs", type=int, default=4)
    p.add_argument("--num-images", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--at-lr", type=float, default=5e-4)
    p.add_argument("--first-stride", type=int, default=2, help="segformer only")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    x, y = make_digit_scenes("train", num_images=a.num_images, seed=a.seed)
    tx, ty = make_digit_scenes("test", num_images=128, seed=a.seed)
    train_set, val_set = TensorDataset(x, y), TensorDataset(tx, ty)
    config = default_config(a.arch, a.first_stride)
    model = build(a.arch, config)
    start, history = time.time(), {}
    common = dict(batch_size=16, weight_decay=1e-4, optimizer="adamw", schedule="onecycle", seed=a.seed,
                  ignore_index=IGNORE_INDEX, clean_fraction=0.5)
    if a.clean_epochs:
        history["clean"] = fit(model, train_set, TrainConfig(attack=None, epochs=a.clean_epochs, lr=a.lr, **common),
                               num_classes=NUM_CLASSES, val_set=val_set)
    if a.at_epochs:
        history["pgd_at"] = fit(model, train_set, TrainConfig(attack="pgd@3", eps=8 / 255, alpha=0.01,
                                                              epochs=a.at_epochs, lr=a.at_lr, **common),
                                num_classes=NUM_CLASSES, val_set=val_set)
    meta = {"args": {k: str(v) for k, v in vars(a).items()}, "seconds": time.time() - start, "history": history,
            "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_io.torch_save({"state_dict": model.state_dict(), "arch": a.arch, "config": config}, a.out)
    a.out.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))
    print(json.dumps({k: [r.get("val_miou") for r in v] for k, v in history.items()}))


if __name__ == "__main__":
    main()
