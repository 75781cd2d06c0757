"""``fastsegadv evaluate``: the robustness table of one or more models under a list of attacks ×
iteration budgets (001 Tables 1-2 layout), with mIoU-vs-iteration curves, MisRatio/loss curves, a
per-image worst case over the attacks and the cost of each attack; sharded over ranks under
``torchrun``. Writes ``robustness.md/.csv/.json``, ``details.csv``, ``per_image.csv`` and
``curves_*.png`` to ``--output``."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ..attacks import ATTACKS
from ..datasets import KINDS, open_dataset
from ..distributed.context import init_distributed, shutdown
from ..evaluation import DEFAULT_ATTACKS, TIERS, EvalConfig, evaluate_model, markdown_table, write_report
from ..models import SHIPPED, SlidingWindow, load_named_models
from ..output_lock import check_output_folder, output_lock
from .config import parse_with_config, positive_int, size_pair, warn_small_eps

# datasets whose SEA class weights are published (fastsegadv.attacks.sea_class_weights): VOC's for both VOC layouts
DATASET_CLASS_WEIGHTS = {"voc": "voc", "voc_sbd": "voc", "ade20k": "ade20k"}


def build_parser(prog: str = "fastsegadv evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", type=Path, default=None,
                   help="YAML or JSON file whose keys are these options (flags given here win)")
    p.add_argument("--models", nargs="+", default=list(SHIPPED),
                   help="models as [LABEL=]SPEC: a shipped name, a model.pt from `fastsegadv train`, or "
                        "package.module:factory (with --weights)")
    p.add_argument("--weights", default=None, help="state-dict file for a factory model")
    p.add_argument("--tier", choices=list(TIERS), default=None,
                   help="a preset of attacks and budgets: quick = PGD, SegPGD, CosPGD, APGD at 20 iterations "
                        "(SemSegBench's protocol, optimistic); reliable = ensemble@1200 (SEA's three losses and "
                        "PAdam-Cos, 300 iterations each); both at eps 4 and 8")
    p.add_argument("--attacks", nargs="+", default=None,
                   help=f"name@steps[,...], options as name:key=value@steps; presets sea@N, ensemble@N; names: "
                        f"{', '.join(sorted(ATTACKS))} (default: the tier's, else {' '.join(DEFAULT_ATTACKS)})")
    p.add_argument("--eps", type=float, nargs="+", default=None,
                   help="ℓ∞ budget(s) on the 0-255 scale (default: the tier's, else 8); several write one report "
                        "folder each, OUTPUT/eps_<value>")
    p.add_argument("--alpha", type=float, default=None,
                   help="step size for every attack, [0, 1] scale (default: each attack's paper setting)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per attack batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts (one per image)")
    p.add_argument("--no-curves", action="store_true", help="skip the per-iteration curves")
    p.add_argument("--dataset", choices=list(KINDS), default="builtin", help="dataset layout")
    p.add_argument("--data-root", default=None, help="dataset directory (not needed for builtin)")
    p.add_argument("--split", default="val", help="split to evaluate")
    p.add_argument("--num-images", type=positive_int, default=128, help="builtin: test images generated")
    p.add_argument("--image-size", type=positive_int, default=64, help="builtin: image side")
    p.add_argument("--crop-size", type=positive_int, nargs=2, default=None, metavar=("H", "W"),
                   help="file datasets: centred crop/pad so images batch")
    p.add_argument("--slide", type=size_pair, nargs=2, default=None, metavar=("CROP", "STRIDE"),
                   help="sliding-window inference (mmseg's slide mode) for every model, e.g. --slide 512x1024 "
                        "341x683: attacks and metrics run on the stitched full-resolution logits")
    p.add_argument("--title", default="Robustness", help="report title")
    p.add_argument("--output", type=Path, default=None, help="report directory (required)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace):
    if args.output is None:
        raise ValueError("--output is required (the report directory)")
    ctx = init_distributed()
    if ctx.is_main:  # before any work (an unwritable folder would lose every result), without creating it
        check_output_folder(args.output, create=False)
    configs, eps_values, dataset, models = _prepare(args, ctx)
    # locked from the first attack to the last file: one writer per report folder
    with output_lock(args.output) if ctx.is_main else contextlib.nullcontext():
        results = _evaluate(args, ctx, configs, eps_values, dataset, models)
    shutdown(ctx)
    return results


def _prepare(args: argparse.Namespace, ctx):
    """Every check and every load before the output folder is touched."""
    tier_attacks, tier_eps = TIERS[args.tier] if args.tier else (DEFAULT_ATTACKS, (8.0,))
    attacks = args.attacks if args.attacks is not None else list(tier_attacks)
    eps_values = tier_eps if args.eps is None else (args.eps if isinstance(args.eps, (list, tuple)) else [args.eps])
    if ctx.is_main:
        warn_small_eps(eps_values)
    configs = [EvalConfig(attacks=attacks, eps=e / 255, alpha=args.alpha, batch_size=args.batch_size, seed=args.seed,
                          curves=not args.no_curves, progress=not args.no_progress,
                          class_weights=DATASET_CLASS_WEIGHTS.get(args.dataset))
               for e in eps_values]
    dataset = open_dataset(args.dataset, root=args.data_root, split=args.split, num_images=args.num_images,
                           size=args.image_size, crop_size=args.crop_size, seed=args.seed)
    models = load_named_models(args.models, num_classes=dataset.num_classes, weights=args.weights)
    if args.slide is not None:
        models = {label: SlidingWindow(m, crop=args.slide[0], stride=args.slide[1]) for label, m in models.items()}
    if ctx.is_main:
        dataset.verify()
    return configs, eps_values, dataset, models


def _evaluate(args: argparse.Namespace, ctx, configs, eps_values, dataset, models):
    results = []
    for e, cfg in zip(eps_values, configs):
        cfg.ignore_index = dataset.ignore_index
        out = args.output if len(configs) == 1 else Path(args.output) / f"eps_{e:g}"
        results = [evaluate_model(m, dataset, cfg, num_classes=dataset.num_classes, name=label, ctx=ctx)
                   for label, m in models.items()]
        if ctx.is_main:
            write_report(results, out, title=f"{args.title} (eps = {e:g}/255)" if len(configs) > 1 else args.title,
                         extra={"dataset": getattr(dataset, "name", args.dataset), "models": args.models,
                                "world_size": ctx.world_size, "tier": args.tier})
            print(f"eps = {e:g}/255")
            print(markdown_table([r.row() for r in results]))
            print(f"wrote {out}/robustness.md, .csv, .json, details.csv, per_image.csv, curves_*.png")
    return results


def main(argv=None) -> int:
    run(parse_with_config(build_parser(), argv))
    return 0
