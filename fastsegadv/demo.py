"""The built-in demo: the shipped models under PGD, SegPGD, CosPGD, RP-PGD (hybrid, beta = 0.75, and
regions only, "RP-PGD-R") and entropy-weighted PGD ("PGD-L^E") at a few iteration budgets,
eps = 8/255, alpha = 0.01, random start, reported as mIoU (%) in the layout of 001 Table 1."""
from __future__ import annotations

import argparse
import csv
import json
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from .attacks import cospgd, pgd, rp_pgd, segpgd, uncertainty_pgd
from .data import IGNORE_INDEX, NUM_CLASSES, make_digit_scenes
from .evaluation.report import markdown_table
from .metrics import ConfusionMatrix, dataset_miou
from .models import SHIPPED, checkpoint_path, load_pretrained

DEMO_ATTACKS = {
    "PGD": pgd,
    "SegPGD": segpgd,
    "CosPGD": cospgd,
    "RP-PGD": rp_pgd,
    "RP-PGD-R": partial(rp_pgd, beta=1.0),
    "PGD-L^E": partial(uncertainty_pgd, measure="entropy"),
}


def attacked_miou(attack, *, model, images, labels, steps: int, eps: float, seed: int, batch_size: int) -> float:
    """mIoU over the set after attacking each batch (seed offset per batch, so the result is reproducible)."""
    cm = ConfusionMatrix(NUM_CLASSES, ignore_index=IGNORE_INDEX)
    for b, i in enumerate(range(0, len(images), batch_size)):
        x, y = images[i:i + batch_size], labels[i:i + batch_size]
        adv = attack(model, x, y, eps=eps, alpha=0.01, steps=steps, seed=seed + b)
        with torch.no_grad():
            cm.update(model(adv).argmax(1), y)
    return cm.miou()


def run_demo(
    *, models=("standard", "pgd_at"), attacks=tuple(DEMO_ATTACKS), budgets=(3, 10, 20), num_images: int = 48,
    eps: float = 8 / 255, seed: int = 0, batch_size: int = 48, progress: bool = True,
) -> list[dict]:
    """Rows ``{"model", "Clean", "<attack><steps>": mIoU %, ...}``."""
    images, labels = make_digit_scenes("test", num_images=num_images, seed=seed)
    rows = []
    jobs = [(m, a, s) for m in models for a in attacks for s in budgets]
    bar = tqdm(total=len(jobs), desc="attacks", disable=not progress)
    for name in models:
        model = load_pretrained(name)
        clean = dataset_miou(model, images, labels, num_classes=NUM_CLASSES, ignore_index=IGNORE_INDEX,
                             batch_size=batch_size)
        row = {"model": name, "Clean": 100 * clean}
        for attack in attacks:
            for steps in budgets:
                bar.set_postfix_str(f"{name}: {attack}{steps}")
                row[f"{attack}{steps}"] = 100 * attacked_miou(
                    DEMO_ATTACKS[attack], model=model, images=images, labels=labels, steps=steps, eps=eps,
                    seed=seed, batch_size=batch_size)
                bar.update(1)
        rows.append(row)
    bar.close()
    return rows


def write_reports(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.md").write_text(markdown_table(rows))
    (out / "demo.json").write_text(json.dumps(rows, indent=2))
    with open(out / "demo.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=["standard", "pgd_at"], choices=list(SHIPPED),
                   help="shipped models to attack (default: the two TinyDeepLabs)")
    p.add_argument("--attacks", nargs="+", default=list(DEMO_ATTACKS), choices=list(DEMO_ATTACKS))
    p.add_argument("--budgets", nargs="+", type=int, default=[3, 10, 20], help="attack iterations (default 3 10 20)")
    p.add_argument("--num-images", type=int, default=48, help="test images (default 48)")
    p.add_argument("--eps", type=float, default=8.0, help="ℓ∞ budget on the 0-255 scale (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, default=None, help="folder for demo.md / demo.csv / demo.json")


def main(args: argparse.Namespace) -> None:
    models = [m for m in args.models if checkpoint_path(m).exists()]
    rows = run_demo(models=models, attacks=args.attacks, budgets=args.budgets, num_images=args.num_images,
                    eps=args.eps / 255, seed=args.seed)
    print(f"\nmIoU (%) on {args.num_images} built-in test images, eps = {args.eps:g}/255, alpha = 0.01, "
          f"random start, seed {args.seed}:\n")
    print(markdown_table(rows), end="")
    if args.output is not None:
        write_reports(rows, args.output)
        print(f"\nwrote {args.output}/demo.md, demo.csv, demo.json")
