"""Write evaluation results as a report folder (every file written atomically):

- ``robustness.md`` / ``.csv`` / ``.json``: mIoU (%) per model × (Clean, attacks, Worst-case), the layout
  of 001 Tables 1-2; the JSON also holds the details, the curves and the configuration;
- ``details.csv``: per model × column: mIoU, pixel accuracy, MisRatio, IoU Ratio, forwards/backwards and
  seconds per image;
- ``per_image.csv``: per model × image: pixel accuracy clean and under each attack, the worst attack;
- ``curves_miou.png`` (001 Fig. 2: mIoU vs attack iterations) and ``curves_misratio_loss.png`` (001 Fig. 1).
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from .. import atomic_io
from .harness import ModelResult


def _fmt(v, digits: int) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def markdown_table(rows: Sequence[dict], *, digits: int = 1) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, ""), digits) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _config_dict(r: ModelResult) -> dict:
    c = r.config
    return {"attacks": [str(a) for a in c.attacks], "eps": c.eps, "eps_255": c.eps * 255, "alpha": c.alpha,
            "batch_size": c.batch_size, "seed": c.seed, "ignore_index": c.ignore_index, "num_images": r.num_images}


def write_report(results: Sequence[ModelResult], out_dir: str | Path, *, title: str = "Robustness",
                 extra: dict | None = None) -> Path:
    """Write the report folder (see the module docstring); returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in results]
    details = [d for r in results for d in r.details()]
    cfg = _config_dict(results[0])
    alpha = "each attack's paper default" if cfg["alpha"] is None else format(cfg["alpha"], "g")
    header = (f"# {title}\n\nmIoU (%) on {cfg['num_images']} images; ℓ∞ eps = {cfg['eps_255']:g}/255, "
              f"alpha = {alpha}, seed {cfg['seed']}. Worst-case: per image the attack with the lowest "
              f"pixel accuracy.\n\n")
    atomic_io.write_text(out / "robustness.md", header + markdown_table(rows) + "\n## Details\n\n"
                         + markdown_table(details, digits=4))
    atomic_io.write_text(out / "robustness.csv", csv_text(rows))
    atomic_io.write_text(out / "details.csv", csv_text(details))
    atomic_io.write_text(
        out / "per_image.csv", csv_text([{"model": r.name, **p} for r in results for p in r.per_image])
    )
    payload = {
        "title": title,
        "config": cfg,
        "table": rows,
        "details": details,
        "curves": {r.name: r.curves() for r in results},
        **(extra or {}),
    }
    atomic_io.write_text(out / "robustness.json", json.dumps(payload, indent=1, default=str))
    if any(r.curves() for r in results):
        plot_curves(results, out)
    return out


def plot_curves(results: Sequence[ModelResult], out: Path) -> None:
    """``curves_miou.png``: mIoU vs iterations, one panel per model, one line per attack (001 Fig. 2);
    ``curves_misratio_loss.png``: MisRatio and mean loss per iteration (001 Fig. 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        for label, c in r.curves().items():
            ax.plot(c["iteration"], [100 * v for v in c["miou"]], marker="o", ms=3, label=label)
        ax.axhline(100 * r.clean.miou(), color="grey", ls="--", lw=1, label="clean")
        ax.set_title(r.name)
        ax.set_xlabel("attack iteration")
        ax.set_ylabel("mIoU (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_io.save_figure(fig, out / "curves_miou.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(2, n, figsize=(5 * n, 7), squeeze=False)
    for j, r in enumerate(results):
        for label, c in r.curves().items():
            axes[0][j].plot(c["iteration"], c["mis_ratio"], marker="o", ms=3, label=label)
            axes[1][j].plot(list(range(len(c["loss"]))), c["loss"], marker="o", ms=3, label=label)
        axes[0][j].set_title(f"{r.name}: MisRatio")
        axes[1][j].set_title(f"{r.name}: attack objective (mean per image)")
        axes[1][j].set_xlabel("attack iteration")
        for ax in (axes[0][j], axes[1][j]):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_io.save_figure(fig, out / "curves_misratio_loss.png", dpi=100)
    plt.close(fig)
