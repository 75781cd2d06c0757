"""Issue 13's study: the greedy worst-case mIoU of ``ensemble@N`` against faithful SEA (``sea@N``, which spends
3N passes) on robust models, at several budgets, with the passes and seconds actually spent per image.

Each preset runs in its own :func:`fastsegadv.evaluation.evaluate_model` call (its worst cases are taken
over its own members only), on the built-in test scenes (seed 0). Writes, under ``--out``:
``ensemble_vs_sea.json`` (every row), ``ensemble_vs_sea.md`` (the table) and ``ensemble_vs_sea.png`` (worst-case
mIoU against passes per image, one panel per model and eps).

    python benchmarks/ensemble_vs_sea.py --models pgd_at upernet_pgd_at --eps 4 8 \
        --presets sea@50 sea@150 ensemble@50 ensemble@150 --out benchmarks/results/ensemble_vs_sea/<machine>
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from fastsegadv.data import NUM_CLASSES, make_digit_scenes  # noqa: E402
from fastsegadv.evaluation import EvalConfig, ModelResult, evaluate_model, markdown_table  # noqa: E402
from fastsegadv.metrics import ConfusionMatrix  # noqa: E402
from fastsegadv.models import load_pretrained  # noqa: E402

try:
    from run_benchmarks import device_name  # noqa: E402
except ImportError:  # imported as benchmarks.ensemble_vs_sea
    from benchmarks.run_benchmarks import device_name  # noqa: E402


def run_attacks(model, dataset, attacks: list, eps: float, batch_size: int
                ) -> tuple[ModelResult, ConfusionMatrix, dict]:
    """The attacks on one model in one evaluation (its worst cases over its own members): ``(result, greedy
    worst-case confusion, row)``, the row with the greedy worst-case mIoU (%), the per-image-accuracy worst case, passes
    and seconds per image (all members together) and each member's mIoU and passes."""
    cfg = EvalConfig(attacks=attacks, eps=eps / 255, batch_size=batch_size, progress=False, curves=False)
    start = time.perf_counter()
    res = evaluate_model(model, dataset, cfg, num_classes=NUM_CLASSES)
    wall = time.perf_counter() - start
    members = [d for d in res.details() if "backwards_per_image" in d and d["attack"] != "Worst-case"]
    greedy = res.worst_miou if res.worst_miou is not None else res.attacks[0].confusion
    worst = res.worst if len(res.attacks) > 1 else res.attacks[0].confusion
    return res, greedy, {
        "worst_miou": 100 * greedy.miou(),
        "worst_acc_miou": 100 * worst.miou(),
        "passes_per_image": sum(d["backwards_per_image"] for d in members),
        "seconds_per_image": sum(d["seconds_per_image"] for d in members),
        "wall_seconds": wall,
        "members": {d["attack"]: {"miou": 100 * d["miou"], "passes_per_image": d["backwards_per_image"]}
                    for d in members},
    }


def run_preset(model, dataset, preset: str, eps: float, batch_size: int) -> dict:
    """One preset on one model (:func:`run_attacks` of ``[preset]``)."""
    return {"preset": preset, **run_attacks(model, dataset, [preset], eps, batch_size)[2]}


def plot(rows: list[dict], path: Path) -> None:
    panels = sorted({(r["model"], r["eps"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (model, eps) in zip(axes[0], panels):
        for family, style in (("sea", "o-"), ("ensemble", "s-")):
            pts = sorted((r["passes_per_image"], r["worst_miou"]) for r in rows
                         if r["model"] == model and r["eps"] == eps and r["preset"].startswith(family + "@"))
            if pts:
                ax.plot(*zip(*pts), style, label=family)
        ax.set_title(f"{model}, eps {eps:g}/255")
        ax.set_xlabel("gradient passes per image")
        ax.set_ylabel("worst-case mIoU (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["pgd_at", "upernet_pgd_at"])
    ap.add_argument("--eps", nargs="+", type=float, default=[4.0, 8.0], help="0-255 scale")
    ap.add_argument("--presets", nargs="+", default=["sea@50", "sea@150", "ensemble@50", "ensemble@150"])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--append", action="store_true",
                    help="keep the rows of an earlier run in --out and run only the missing (model, eps, preset)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = args.out / "ensemble_vs_sea.json"
    rows = json.loads(earlier.read_text())["rows"] if args.append and earlier.exists() else []
    done = {(r["model"], r["eps"], r["preset"]) for r in rows}
    x, y = make_digit_scenes("test", num_images=args.images, seed=0)
    dataset = TensorDataset(x, y)
    for name in args.models:
        model = load_pretrained(name)
        for eps in args.eps:
            for preset in args.presets:
                if (name, eps, preset) in done:
                    continue
                row = {"model": name, "eps": eps, **run_preset(model, dataset, preset, eps, args.batch_size)}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "members"}), flush=True)
    rows.sort(key=lambda r: (r["model"], r["eps"], r["preset"].split("@")[0], int(r["preset"].split("@")[1])))
    meta = {"device": device_name(), "torch": torch.__version__, "images": args.images}
    (args.out / "ensemble_vs_sea.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    table = [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k != "members"}
             for r in rows]
    (args.out / "ensemble_vs_sea.md").write_text(
        f"# ensemble@N against SEA ({meta['device']}, {args.images} built-in test images)\n\n"
        + markdown_table(table, digits=2))
    plot(rows, args.out / "ensemble_vs_sea.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
