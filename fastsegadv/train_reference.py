"""Train the shipped reference models on the built-in digit scenes (reproducible from a seed).

    fastsegadv train-reference --model standard      # clean training
    fastsegadv train-reference --model pgd_at        # PGD3 adversarial fine-tuning (001 Algorithm 2)

The adversarial variant follows 001 Algorithm 2: each mini-batch is split, the second half replaced by
PGD3 examples (eps 8/255, alpha 0.01, attack in eval mode), loss = CE(clean half) + CE(adv half).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .attacks import pgd
from .data import IGNORE_INDEX, NUM_CLASSES, make_digit_scenes
from .metrics import dataset_miou
from .models import TinyDeepLab, checkpoint_path


def train(
    *, adversarial: bool = False, epochs: int = 20, num_images: int = 3000, batch_size: int = 16,
    lr: float = 3e-3, width: int = 32, seed: int = 0, eps: float = 8 / 255, progress: bool = True,
    init: Path | None = None,
) -> tuple[TinyDeepLab, dict]:
    """Train a TinyDeepLab; ``init`` starts from a checkpoint (the PGD-AT model is fine-tuned from the
    standard one, which makes adversarial training affordable on a CPU)."""
    torch.manual_seed(seed)
    images, labels = make_digit_scenes("train", num_images=num_images, seed=seed)
    test_x, test_y = make_digit_scenes("test", num_images=128, seed=seed)
    model = TinyDeepLab(NUM_CLASSES, width=width)
    if init is not None:
        model.load_state_dict(torch.load(init, map_location="cpu", weights_only=True)["state_dict"])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = num_images // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    history = []
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(num_images, generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        total = 0.0
        for s in bar:
            idx = order[s * batch_size:(s + 1) * batch_size]
            x, y = images[idx], labels[idx]
            if adversarial:  # 001 Algorithm 2: second half adversarial
                half = batch_size // 2
                x_adv = pgd(model, x[half:], y[half:], eps=eps, alpha=0.01, steps=3, seed=seed * 100003 + s)
                x = torch.cat([x[:half], x_adv])
            out = model(x)
            if adversarial:
                loss = (F.cross_entropy(out[:half], y[:half], ignore_index=IGNORE_INDEX)
                        + F.cross_entropy(out[half:], y[half:], ignore_index=IGNORE_INDEX))
            else:
                loss = F.cross_entropy(out, y, ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{total / (s + 1):.3f}")
        model.eval()
        miou = dataset_miou(model, test_x, test_y, num_classes=NUM_CLASSES, ignore_index=IGNORE_INDEX)
        history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch, "test_miou": miou})
        if progress:
            print(f"epoch {epoch + 1}: loss {total / steps_per_epoch:.4f}  test mIoU {miou:.4f}", flush=True)
    meta = {
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


def save_checkpoint(model: TinyDeepLab, meta: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "state_dict": model.state_dict(),
        "num_classes": model.num_classes,
        "width": model.stem[0][0].out_channels,
        "final_test_miou": meta["history"][-1]["test_miou"],
        "epochs": meta["epochs"],
        "seed": meta["seed"],
        "adversarial": meta["adversarial"],
        "init": meta["init"],
        "lr": meta["lr"],
        "num_images": meta["num_images"],
    }
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        choices=["standard", "pgd_at"],
        default="standard",
        help="standard training or PGD3 adversarial training (001 Algorithm 2)",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="passes over the training images (default 20 standard, 8 pgd_at)"
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-3 standard, 1e-3 pgd_at)")
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="checkpoint to start from (default for pgd_at: the shipped standard model)",
    )
    p.add_argument("--num-images", type=int, default=3000, help="training images generated (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, init and order (default 0)")
    p.add_argument("--output", type=Path, default=None, help="checkpoint path (default: the shipped file)")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    adversarial = args.model == "pgd_at"
    epochs = args.epochs if args.epochs is not None else (8 if adversarial else 20)
    lr = args.lr if args.lr is not None else (1e-3 if adversarial else 3e-3)
    init = args.init if args.init is not None or not adversarial else checkpoint_path("standard")
    model, meta = train(
        adversarial=adversarial, epochs=epochs, num_images=args.num_images, seed=args.seed, lr=lr, init=init
    )
    out = args.output or checkpoint_path(args.model)
    save_checkpoint(model, meta, Path(out))
    print(f"saved {out} (test mIoU {meta['history'][-1]['test_miou']:.4f}, {meta['seconds']:.0f} s)")
