"""Write evaluation results as a report folder (every file written atomically):

- ``robustness.md`` / ``.csv`` / ``.json``: mIoU (%) per model × (Clean, attacks, Worst-case), the layout
  of 001 Tables 1-2; the JSON also holds the details, the curves and the configuration;
- ``details.csv``: per model × column: mIoU, pixel accuracy, MisRatio, IoU Ratio, forwards/backwards and
  seconds per image;
- ``per_image.csv``: per model × image: pixel accuracy clean and under each attack, the worst attack;
- ``curves_miou.png`` (001 Fig. 2: mIoU vs attack iterations) and ``curves_misratio_loss.png`` (001 Fig. 1);
- ``manifest.json``, written last: the run id and the SHA-256 of every file of the set. It is removed
  before the first file of a new set is written, so a folder whose manifest is missing or does not
  match holds an incomplete or mixed set (a run killed while writing): :func:`verify_report` says so.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import uuid
from collections.abc import Sequence
from pathlib import Path

from .. import atomic_io
from .harness import ModelResult


def _fmt(v, digits: int) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def markdown_table(rows: Sequence[dict], *, digits: int = 1) -> str:
    """A Markdown table of ``rows`` (one column per key, in first-seen order; floats to ``digits``)."""
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


MANIFEST = "manifest.json"


class IncompleteReport(ValueError):
    """A report folder whose files do not all come from one completed run."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_report(out_dir: str | Path) -> dict:
    """The manifest of a complete report set, or :class:`IncompleteReport` naming what is wrong."""
    out = Path(out_dir)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        raise IncompleteReport(f"{out} holds no complete report (no readable {MANIFEST}): the run that wrote it "
                               "was stopped while writing; run the evaluation again") from None
    for name, digest in manifest["files"].items():
        if not (out / name).is_file() or _sha256(out / name) != digest:
            raise IncompleteReport(f"{out}/{name} is not the one of run {manifest['run_id']} (missing or "
                                   "rewritten by another run): the folder mixes two runs")
    return manifest


def write_report(results: Sequence[ModelResult], out_dir: str | Path, *, title: str = "Robustness",
                 extra: dict | None = None) -> Path:
    """Write the report folder (see the module docstring); returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST).unlink()  # from here until the new manifest, the folder is marked incomplete
    rows = [r.row() for r in results]
    details = [d for r in results for d in r.details()]
    cfg = _config_dict(results[0])
    alpha = "each attack's paper default" if cfg["alpha"] is None else format(cfg["alpha"], "g")
    header = (f"# {title}\n\nRun {run_id}. mIoU (%) on {cfg['num_images']} images; ℓ∞ eps = {cfg['eps_255']:g}/255, "
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
        "run_id": run_id,
        "config": cfg,
        "table": rows,
        "details": details,
        "curves": {r.name: r.curves() for r in results},
        **(extra or {}),
    }
    atomic_io.write_text(out / "robustness.json", json.dumps(payload, indent=1, default=str))
    written = ["robustness.md", "robustness.csv", "details.csv", "per_image.csv", "robustness.json"]
    if any(r.curves() for r in results):
        plot_curves(results, out)
        written += ["curves_miou.png", "curves_misratio_loss.png"]
    for stale in ("curves_miou.png", "curves_misratio_loss.png"):
        if stale not in written:  # an older run's curves must not pass for this one's
            with contextlib.suppress(FileNotFoundError):
                (out / stale).unlink()
    manifest = {"run_id": run_id, "title": title, "files": {n: _sha256(out / n) for n in written if (out / n).exists()}}
    atomic_io.write_text(out / MANIFEST, json.dumps(manifest, indent=1))
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
