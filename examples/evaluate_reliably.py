"""Evaluate a model's robustness reliably: the quick tier, the reliable tier, and how to read the report.

- quick: PGD, SegPGD, CosPGD and APGD at 20 iterations each (as SemSegBench runs them): cheap and optimistic.
- reliable: ``ensemble@N``, at most N gradient passes per image spent on SEA's class-balanced masked-CE
  APGD, PAdam-Cos, SEA's JS and masked-CE APGD, with the per-image and greedy dataset-mIoU worst cases.
  The published tier is ``ensemble@1200``; ``--passes`` lowers it for a quick look.

The report folder has robustness.md|csv|json (mIoU per attack and the worst cases), details.csv (pixel
accuracy, MisRatio, passes and seconds per image of every attack), per_image.csv and the curves.

    python examples/evaluate_reliably.py [--model pgd_at] [--images 48] [--passes 1200] [--output report/]
"""
from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import fastsegadv as fsa
from fastsegadv.evaluation import TIERS, EvalConfig, evaluate_model, write_report


def worst_case(row: dict) -> float:
    """The greedy worst-case mIoU of a report row (with one attack, that attack's mIoU)."""
    attacks = [v for k, v in row.items() if isinstance(v, float) and k != "Clean"]
    return row.get("Worst-case (mIoU)", min(attacks))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pgd_at", help="a shipped model name")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--eps", type=float, default=8.0, help="on the 0-255 scale")
    ap.add_argument("--quick-steps", type=int, default=20)
    ap.add_argument("--passes", type=int, default=1200, help="ensemble@N of the reliable tier")
    ap.add_argument("--output", type=Path, default=None, help="report folder (default: a temporary one)")
    args = ap.parse_args(argv)

    model = fsa.models.load_pretrained(args.model)
    dataset = fsa.data.digit_scenes_dataset("test", num_images=args.images)
    quick = [a.replace("@20", f"@{args.quick_steps}") for a in TIERS["quick"][0]]
    tiers = {"quick": quick, "reliable": [f"ensemble@{args.passes}"]}
    output = args.output or Path(tempfile.mkdtemp(prefix="fastsegadv_report_"))
    results = {}
    for tier, attacks in tiers.items():
        cfg = EvalConfig(attacks=attacks, eps=args.eps / 255, batch_size=16, progress=False)
        result = evaluate_model(model, dataset, cfg, num_classes=fsa.data.NUM_CLASSES, name=f"{args.model} ({tier})")
        write_report([result], output / tier)
        results[tier] = result

    print(f"{args.model}, eps {args.eps:g}/255, {args.images} images (mIoU %):")
    for tier, result in results.items():
        row = result.row()
        print(f"  {tier:9s} " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float)))
    # reading the report: what each attack cost, from details.csv
    with open(output / "reliable" / "details.csv") as f:
        for d in csv.DictReader(f):
            if d.get("backwards_per_image"):
                print(f"  {d['attack']}: {float(d['backwards_per_image']):.0f} passes and "
                      f"{float(d['seconds_per_image']):.2f} s per image")
    quick_worst, reliable_worst = worst_case(results["quick"].row()), worst_case(results["reliable"].row())
    print(f"quick tier's worst case {quick_worst:.2f}, reliable tier's {reliable_worst:.2f}: report the lower, "
          f"from the reliable tier ({output})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
