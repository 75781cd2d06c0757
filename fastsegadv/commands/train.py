"""``fastsegadv train``: adversarial training (001 Algorithm 2) with a named inner attack, on the built-in
data by default; under ``torchrun --nproc_per_node N`` with DistributedDataParallel.

Writes to ``--output``: ``model.pt`` (load it with ``fastsegadv evaluate --models <dir>/model.pt``),
``last.pt`` (the resumable checkpoint), ``metrics.json`` (per epoch) and ``config.json``."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from pathlib import Path

import torch

from .. import atomic_io
from ..datasets import KINDS, open_dataset
from ..distributed.context import shutdown
from ..models import SHIPPED, TinyDeepLab, load_model, save_model
from ..models.tiny_deeplab import NORMS
from ..output_lock import output_lock
from ..training import TrainConfig, fit, init_distributed
from .config import nonnegative_int, parse_with_config, positive_int, warn_small_eps


def _aux(text: str) -> tuple[str, float]:
    name, eq, w = text.partition("=")
    if not eq:
        raise argparse.ArgumentTypeError(f"--aux-weight expects name=weight, got {text!r}")
    return name, float(w)


def build_parser(prog: str = "fastsegadv train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", type=Path, default=None,
                   help="YAML or JSON file whose keys are these options (flags given here win)")
    g = p.add_argument_group("attack")
    g.add_argument(
        "--attack",
        default="pgd@3",
        help="inner attack as name@steps (pgd@3, segpgd@3, cospgd@3, rp_pgd@3, ...); 'none' = clean training",
    )
    g.add_argument("--eps", type=float, default=8.0, help="ℓ∞ budget of the inner attack on the 0-255 scale")
    g.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="step size of the inner attack, [0, 1] scale (default: the attack's own, 0.01 for PGD/SegPGD)",
    )
    g.add_argument("--clean-fraction", type=float, default=0.5, help="share of each batch kept clean (001: 0.5)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=positive_int, default=8, help="passes over the training set")
    g.add_argument("--batch-size", type=positive_int, default=16, help="global batch size (all ranks together)")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay")
    g.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw", help="optimiser (sgd: momentum 0.9)")
    g.add_argument(
        "--schedule", choices=["onecycle", "poly", "constant"], default="onecycle", help="learning-rate schedule"
    )
    g.add_argument("--loss-reduction", choices=["per_part", "joint"], default="per_part",
                   help="per_part: CE(clean) + CE(adv), each a mean (001 Algorithm 2); joint: one mean over the "
                        "whole batch, as the public AT codebases (half the loss and gradient)")
    g.add_argument(
        "--aux-weight",
        type=_aux,
        nargs="*",
        default=[],
        metavar="HEAD=W",
        help="auxiliary heads of a dict-output model and their loss weights, e.g. aux=0.4",
    )
    g.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision of the training forward")
    g.add_argument("--seed", type=int, default=0, help="seed of data order, initialisation and attack starts")
    g = p.add_argument_group("model")
    g.add_argument(
        "--init",
        default="new",
        help=f"'new' (a fresh TinyDeepLab), a shipped model ({', '.join(SHIPPED)}) or a model.pt to fine-tune",
    )
    g.add_argument("--width", type=positive_int, default=32, help="TinyDeepLab width (with --init new)")
    g.add_argument("--norm", choices=list(NORMS), default="batch", help="TinyDeepLab normalisation (with --init new)")
    g.add_argument(
        "--aux-head",
        action="store_true",
        help="TinyDeepLab with a torchvision-style aux head (with --init new; weight it with --aux-weight aux=0.4)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=list(KINDS), default="builtin", help="dataset layout")
    g.add_argument("--data-root", default=None, help="dataset directory (not needed for builtin)")
    g.add_argument("--train-split", default="train", help="training split")
    g.add_argument("--val-split", default="val", help="split evaluated (clean mIoU) after every epoch; 'none' to skip")
    g.add_argument("--num-images", type=positive_int, default=3000, help="builtin: training images generated")
    g.add_argument("--val-images", type=positive_int, default=128, help="builtin: validation images generated")
    g.add_argument("--image-size", type=positive_int, default=64, help="builtin: image side")
    g.add_argument(
        "--crop-size",
        type=positive_int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="file datasets: centred crop/pad so images batch",
    )
    g.add_argument("--num-workers", type=nonnegative_int, default=0, help="DataLoader workers for the training data")
    g = p.add_argument_group("output")
    g.add_argument(
        "--output",
        type=Path,
        required=False,
        default=None,
        help="run directory: model.pt, last.pt (resumable), metrics.json, config.json",
    )
    g.add_argument("--checkpoint-every", type=nonnegative_int, default=0,
                   help="also checkpoint every N steps (0: per epoch)")
    g.add_argument("--no-resume", action="store_true", help="start over even if OUTPUT/last.pt exists")
    g.add_argument("--resume-with-changes", action="store_true",
                   help="resume OUTPUT/last.pt even where its saved settings differ from these (else refused, "
                        "naming the options; a longer --epochs alone needs no flag)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> list[dict]:
    if args.output is None:
        raise ValueError("--output is required (the run directory)")
    ctx = init_distributed()
    # checked and locked before any work; one writer per run folder
    with output_lock(args.output) if ctx.is_main else contextlib.nullcontext():
        history = _train(args, ctx)
    shutdown(ctx)
    return history


def _train(args: argparse.Namespace, ctx) -> list[dict]:
    if ctx.is_main:
        warn_small_eps(args.eps)
    torch.manual_seed(args.seed)
    kw = dict(root=args.data_root, crop_size=args.crop_size, size=args.image_size, seed=args.seed)
    train_set = open_dataset(args.dataset, split=args.train_split, num_images=args.num_images, **kw)
    val_set = None
    if str(args.val_split).lower() != "none":
        val_set = open_dataset(args.dataset, split=args.val_split, num_images=args.val_images, **kw)
    for ds in (train_set, val_set):
        if ds is not None and ctx.is_main:
            ds.verify()
    num_classes = train_set.num_classes
    if args.init == "new":
        model = TinyDeepLab(num_classes, width=args.width, norm=args.norm, aux_head=args.aux_head)
    else:
        model = load_model(args.init, num_classes=num_classes)
        if getattr(model, "num_classes", num_classes) != num_classes:
            raise ValueError(f"--init model has {model.num_classes} classes, the dataset {num_classes}")
    cfg = TrainConfig(
        attack=args.attack,
        eps=args.eps / 255,  # (warned above when it looks like the [0, 1] scale)
        alpha=args.alpha,
        clean_fraction=args.clean_fraction,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        schedule=args.schedule,
        loss_reduction=args.loss_reduction,
        aux_weights=dict(args.aux_weight or []),
        amp=args.amp,
        seed=args.seed,
        ignore_index=train_set.ignore_index,
        checkpoint_dir=str(args.output),
        checkpoint_every=args.checkpoint_every,
        resume=not args.no_resume,
        resume_with_changes=args.resume_with_changes,
        num_workers=args.num_workers,
        progress=not args.no_progress,
    )
    if ctx.is_main:
        options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
        atomic_io.write_text(
            Path(args.output) / "config.json",
            json.dumps({"options": options, "train_config": dataclasses.asdict(cfg)}, indent=1),
        )
    history = fit(model, train_set, cfg, num_classes=num_classes, val_set=val_set, ctx=ctx)
    if ctx.is_main:
        save_model(
            model,
            Path(args.output) / "model.pt",
            attack=cfg.attack,
            eps_255=args.eps,
            epochs=cfg.epochs,
            seed=cfg.seed,
            dataset=args.dataset,
            history=history,
        )
        last = history[-1]
        print(
            f"saved {Path(args.output) / 'model.pt'}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in last.items() if isinstance(v, float))
        )
    return history


def main(argv=None) -> int:
    args = parse_with_config(build_parser(), argv)
    run(args)
    return 0
