"""Train the shipped reference models on the built-in digit scenes (reproducible from a seed).

    fastsegadv train-reference --model standard      # clean training
    fastsegadv train-reference --model pgd_at        # PGD3 adversarial fine-tuning (001 Algorithm 2)
    fastsegadv train-reference --model upernet       # the same two for the second architecture, TinyUPerNet
    fastsegadv train-reference --model upernet_pgd_at

Both run the library's one training loop, :func:`fastsegadv.training.fit`: AdamW, one-cycle schedule, and
for ``pgd_at`` 001 Algorithm 2 (each batch half clean, half PGD3 examples at eps 8/255, alpha 0.01, found
in eval mode; loss = CE(clean half) + CE(adversarial half)). The checkpoint is written atomically.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from . import atomic_io
from .commands.config import positive_int
from .data import IGNORE_INDEX, NUM_CLASSES, make_digit_scenes
from .models import ARCHITECTURES, checkpoint_path
from .safe_load import UnreadableFile, load_file, load_weights
from .training import TrainConfig, fit

# shipped name -> (architecture, width, the shipped model a PGD-AT one is fine-tuned from; None: clean training)
REFERENCE_MODELS = {
    "standard": ("tiny_deeplab", 32, None),
    "pgd_at": ("tiny_deeplab", 32, "standard"),
    "upernet": ("tiny_upernet", 16, None),
    "upernet_pgd_at": ("tiny_upernet", 16, "upernet"),
}


def train(
    *, adversarial: bool = False, epochs: int = 20, num_images: int = 3000, batch_size: int = 16,
    lr: float = 3e-3, width: int = 32, seed: int = 0, eps: float = 8 / 255, progress: bool = True,
    init: Path | None = None, arch: str = "tiny_deeplab",
) -> tuple[torch.nn.Module, dict]:
    """Train a reference model (``arch`` a key of :data:`fastsegadv.models.ARCHITECTURES`) with
    :func:`fastsegadv.training.fit`; ``init`` starts from a checkpoint (the PGD-AT models are fine-tuned from
    the standard ones, which makes adversarial training affordable on a CPU). Returns the model in eval mode
    and the run's metadata (``history``: fit's per-epoch records, ``test_miou`` the clean mIoU on 128 test
    scenes after each epoch)."""
    torch.manual_seed(seed)
    images, labels = make_digit_scenes("train", num_images=num_images, seed=seed)
    test_x, test_y = make_digit_scenes("test", num_images=128, seed=seed)
    model = ARCHITECTURES[arch](NUM_CLASSES, width=width)
    if init is not None:
        ck = load_file(init, what="a model file written by fastsegadv (--init)")
        if not isinstance(ck, dict) or "state_dict" not in ck:
            raise UnreadableFile(f"{init} is not a model file written by fastsegadv (no 'state_dict'; --init)")
        load_weights(model, ck["state_dict"], path=init)
    config = TrainConfig(
        attack="pgd@3" if adversarial else None, eps=eps, alpha=0.01, clean_fraction=0.5, epochs=epochs,
        batch_size=batch_size, lr=lr, weight_decay=1e-4, optimizer="adamw", schedule="onecycle", seed=seed,
        ignore_index=IGNORE_INDEX, progress=progress,
    )
    start = time.time()
    history = fit(model, TensorDataset(images, labels), config, num_classes=NUM_CLASSES,
                  val_set=TensorDataset(test_x, test_y))
    for record in history:
        record["test_miou"] = record["val_miou"]
    meta = {
        "arch": arch,
        "width": width,
        "adversarial": adversarial,
        "epochs": epochs,
        "num_images": num_images,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "eps": eps,
        "init": None if init is None else str(init),
        "seconds": time.time() - start,
        "history": history,
    }
    return model.eval(), meta


def save_checkpoint(model: torch.nn.Module, meta: dict, path: Path) -> None:
    """The shipped checkpoint format: ``state_dict`` plus what :func:`fastsegadv.models.load_pretrained`
    and the README read (classes, width, final test mIoU, how it was trained)."""
    atomic_io.torch_save({
        "state_dict": model.state_dict(),
        "arch": meta["arch"],
        "num_classes": model.num_classes,
        "width": meta["width"],
        "final_test_miou": meta["history"][-1]["test_miou"],
        "epochs": meta["epochs"],
        "seed": meta["seed"],
        "adversarial": meta["adversarial"],
        "init": meta["init"],
        "lr": meta["lr"],
        "num_images": meta["num_images"],
    }, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        choices=list(REFERENCE_MODELS),
        default="standard",
        help="standard training or PGD3 adversarial training (001 Algorithm 2), of TinyDeepLab or (upernet*) "
        "TinyUPerNet",
    )
    p.add_argument(
        "--epochs", type=positive_int, default=None,
        help="passes over the training images (default 20 standard, 8 pgd_at)",
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-3 standard, 1e-3 pgd_at)")
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="checkpoint to start from (default for pgd_at / upernet_pgd_at: the shipped standard / upernet model)",
    )
    p.add_argument("--num-images", type=positive_int, default=3000, help="training images generated (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, init and order (default 0)")
    p.add_argument("--output", type=Path, default=None, help="checkpoint path (default: the shipped file)")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    arch, width, clean_model = REFERENCE_MODELS[args.model]
    adversarial = clean_model is not None
    epochs = args.epochs if args.epochs is not None else (8 if adversarial else 20)
    lr = args.lr if args.lr is not None else (1e-3 if adversarial else 3e-3)
    init = args.init if args.init is not None or not adversarial else checkpoint_path(clean_model)
    model, meta = train(
        adversarial=adversarial, epochs=epochs, num_images=args.num_images, seed=args.seed, lr=lr, init=init,
        arch=arch, width=width,
    )
    out = args.output or checkpoint_path(args.model)
    save_checkpoint(model, meta, Path(out))
    print(f"saved {out} (test mIoU {meta['history'][-1]['test_miou']:.4f}, {meta['seconds']:.0f} s)")
