"""``fastsegadv study``: the robustness studies of Arnab et al. (002) in one command: ε sweeps (FGSM,
FGSM II, I-FGSM, Iterative FGSM II; IoU and IoU Ratio), multiscale processing, the transfer matrix across
scales, and the CRF study, on the built-in data and shipped models by default. Writes study.md (with
which of 002's findings hold), CSV/JSON and PNG plots to ``--output``."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..datasets import KINDS, open_dataset
from ..distributed.sharding import collate
from ..models import SHIPPED, load_named_models
from ..models.crf import DenseCRF
from ..studies import run_study
from .config import parse_with_config, positive_int


def build_parser(prog: str = "fastsegadv study") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", type=Path, default=None, help="YAML or JSON file whose keys are these options")
    p.add_argument("--models", nargs="+", default=list(SHIPPED),
                   help="[LABEL=]SPEC models; the first is the one studied for multiscale, transfer and CRF")
    p.add_argument("--eps", type=float, nargs="+", default=[0.25, 0.5, 1, 2, 4, 8, 16, 32],
                   help="ε values of the sweeps, 0-255 scale")
    p.add_argument("--transfer-eps", type=float, default=8.0, help="ε of the transfer matrix, 0-255 scale")
    p.add_argument("--crf-eps", type=float, nargs="+", default=[2, 4, 8], help="ε values of the CRF study")
    p.add_argument("--crf-iterations", type=positive_int, default=5, help="mean-field iterations")
    p.add_argument("--crf-window", type=positive_int, default=5, help="side of the truncated CRF kernels")
    p.add_argument("--dataset", choices=list(KINDS), default="builtin", help="dataset layout")
    p.add_argument("--data-root", default=None, help="dataset directory (not needed for builtin)")
    p.add_argument("--split", default="val", help="split")
    p.add_argument("--num-images", type=positive_int, default=32, help="images used (builtin: generated)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per attack batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the built-in data")
    p.add_argument("--output", type=Path, default=None, help="report directory (required)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.output is None:
        raise ValueError("--output is required (the report directory)")
    ds = open_dataset(args.dataset, root=args.data_root, split=args.split, num_images=args.num_images, seed=args.seed)
    ds.verify()
    n = min(args.num_images, len(ds))
    images, labels = collate(ds, range(n), device=torch.device("cpu"))
    models = load_named_models(args.models, num_classes=ds.num_classes)
    crf = DenseCRF(iterations=args.crf_iterations, window=args.crf_window)
    result = run_study(models, images, labels, args.output, num_classes=ds.num_classes, eps_list=args.eps,
                       transfer_eps=args.transfer_eps, crf_eps=args.crf_eps, crf=crf, batch_size=args.batch_size,
                       ignore_index=ds.ignore_index, progress=not args.no_progress)
    for f in result["findings"]:
        print(f"[{'holds' if f['holds'] else 'does not hold'}] {f['finding']}: {f['evidence']}")
    print(f"wrote {args.output}/study.md, *.csv, study.json, eps_sweep.png, transfer.png, crf_confidence.png")
    return result


def main(argv=None) -> int:
    run(parse_with_config(build_parser(), argv))
    return 0
