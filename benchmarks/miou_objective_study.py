"""Issue 23's study: does an objective aimed at the dataset mIoU close the gap to SEA at a third of its passes?

Variants (each a list of attacks run by one :func:`fastsegadv.evaluation.evaluate_model` call, whose greedy
dataset-mIoU worst case is taken over its own members), on the built-in test scenes (seed 0):

- ``sea_bal@150``: SEA's class-balanced masked-CE APGD for 150 passes (today's ``ensemble@150``);
- ``sea_iou@150``: the same loop on ``mask_ce_iou``: each still-correct pixel of class c weighted by 1 / U_c
  (U_c = TP_c + FP_c + FN_c of the image's current prediction), the exact drop of IoU_c per pixel fooled;
- ``bal>iou@150``: one run, class-balanced in the 2ε and 1.5ε stages, mIoU-aimed in the final ε stage;
- ``bal75+iou75``: two runs of 75 passes, greedy worst case over both;
- ``...|iou-select``: each stage returns per image its iterate with the lowest image mIoU instead of the lowest
  pixel accuracy; ``miou`` adds to ``mask_ce_iou`` a pull of the other pixels into the class whose IoU one
  more false positive lowers most (pixels already wrong count there too);
- ``sea@50`` / ``sea@150``: faithful SEA, its three losses at 50 / 150 iterations each (150 / 450 passes).

Per variant: the greedy worst-case mIoU (%), passes per image, and the per-class IoU (%) of that worst case,
so the part of the gap that no objective moves can be read class by class. Writes ``miou_objective.json``,
``miou_objective.md`` and ``miou_objective.png`` under ``--out``.

    python benchmarks/miou_objective_study.py --models pgd_at upernet_pgd_at --eps 4 8 --out DIR
    python benchmarks/miou_objective_study.py --models smp_unet_pgd_at=CHECKPOINT --append --out DIR
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from fastsegadv.data import CLASS_NAMES, NUM_CLASSES, make_digit_scenes  # noqa: E402
from fastsegadv.evaluation import markdown_table  # noqa: E402
from fastsegadv.models import load_pretrained  # noqa: E402

try:
    from ensemble_vs_sea import run_attacks  # noqa: E402
    from run_benchmarks import device_name  # noqa: E402
    from third_model_at import load_model  # noqa: E402
except ImportError:  # imported as benchmarks.miou_objective_study
    from benchmarks.ensemble_vs_sea import run_attacks  # noqa: E402
    from benchmarks.run_benchmarks import device_name  # noqa: E402
    from benchmarks.third_model_at import load_model  # noqa: E402

VARIANTS = {
    "sea_bal@150": ["sea_apgd:loss='mask_ce_bal'@150"],
    "sea_iou@150": ["sea_apgd:loss='mask_ce_iou'@150"],
    "bal>iou@150": ["sea_apgd:loss='mask_ce_bal',final_loss='mask_ce_iou'@150"],
    "bal75+iou75": ["sea_apgd:loss='mask_ce_bal'@75", "sea_apgd:loss='mask_ce_iou'@75"],
    "bal|iou-select@150": ["sea_apgd:loss='mask_ce_bal',select='iou'@150"],
    "miou|iou-select@150": ["sea_apgd:loss='miou',select='iou'@150"],
    "bal>miou|iou-select@150": ["sea_apgd:loss='mask_ce_bal',final_loss='miou',select='iou'@150"],
    "sea@50": ["sea@50"],
    "sea@150": ["sea@150"],
}


def run_variant(model, dataset, attacks: list[str], eps: float, batch_size: int) -> dict:
    """The attacks in one evaluation (:func:`ensemble_vs_sea.run_attacks`), with the per-class IoU (%) of the
    greedy worst case and of the clean predictions."""
    res, greedy, row = run_attacks(model, dataset, attacks, eps, batch_size)
    return {
        "worst_miou": row["worst_miou"],
        "class_iou": [100 * float(v) for v in greedy.iou().tolist()],
        "clean_class_iou": [100 * float(v) for v in res.clean.iou().tolist()],
        "passes_per_image": row["passes_per_image"],
        "wall_seconds": row["wall_seconds"],
        "members": {name: m["miou"] for name, m in row["members"].items()},
    }


def plot(rows: list[dict], path: Path) -> None:
    panels = sorted({(r["model"], r["eps"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (model, eps) in zip(axes[0], panels):
        part = [r for r in rows if r["model"] == model and r["eps"] == eps]
        width = 0.8 / len(part)
        for k, r in enumerate(part):
            ax.bar([c + k * width for c in range(NUM_CLASSES)], r["class_iou"], width=width,
                   label=f"{r['variant']} ({r['worst_miou']:.2f})")
        ax.set_xticks(range(NUM_CLASSES), ["bg"] + [n.split()[-1] for n in CLASS_NAMES[1:]], fontsize=7)
        ax.set_title(f"{model}, eps {eps:g}/255: worst-case IoU per class")
        ax.set_ylabel("IoU (%)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["pgd_at", "upernet_pgd_at"],
                    help="shipped models, or NAME=PATH for a checkpoint of benchmarks/third_model_at.py")
    ap.add_argument("--eps", nargs="+", type=float, default=[4.0, 8.0], help="0-255 scale")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--append", action="store_true",
                    help="keep the rows of an earlier run in --out and run only the missing (model, eps, variant)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = args.out / "miou_objective.json"
    x, y = make_digit_scenes("test", num_images=args.images, seed=0)
    dataset = TensorDataset(x, y)
    rows = json.loads(earlier.read_text())["rows"] if args.append and earlier.exists() else []
    done = {(r["model"], r["eps"], r["variant"]) for r in rows}
    for spec in args.models:
        name, _, path = spec.partition("=")
        model = load_model(path) if path else load_pretrained(name)
        for eps in args.eps:
            for variant in args.variants:
                if (name, eps, variant) in done:
                    continue
                row = {"model": name, "eps": eps, "variant": variant, "images": args.images,
                       **run_variant(model, dataset, VARIANTS[variant], eps, args.batch_size)}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if "class_iou" not in k}), flush=True)
    order = list(VARIANTS)
    rows.sort(key=lambda r: (r["model"], r["eps"], order.index(r["variant"])))
    meta = {"device": device_name(), "torch": torch.__version__, "images": args.images, "classes": CLASS_NAMES}
    if args.append and earlier.exists():
        meta["images"] = json.loads(earlier.read_text())["meta"]["images"]
    images_by_model = {r["model"]: r.get("images", meta["images"]) for r in rows}
    (args.out / "miou_objective.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    table = [{"model": r["model"], "images": images_by_model[r["model"]], "eps": r["eps"], "variant": r["variant"],
              "worst mIoU": round(r["worst_miou"], 2),
              "passes": r["passes_per_image"],
              **{n: round(v, 1) for n, v in zip(CLASS_NAMES, r["class_iou"])}} for r in rows]
    (args.out / "miou_objective.md").write_text(
        f"# mIoU-aimed objectives against SEA ({meta['device']}, torch {meta['torch']}, built-in test images)\n\n"
        "Greedy worst-case mIoU (%) of each variant and the IoU (%) of every class in that worst case.\n\n"
        + markdown_table(table, digits=2))
    plot(rows, args.out / "miou_objective.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
