"""The robustness studies of 002 in one call (``fastsegadv study``): ε sweeps with IoU Ratio, multiscale
processing, the transfer matrix across scales, and the CRF study; a report folder with Markdown, CSV,
JSON and PNG, and a summary that checks 002's findings on the data it ran on."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch.nn as nn

from .. import atomic_io
from ..attacks import fgsm, ifgsm
from ..evaluation.report import csv_text, markdown_table
from ..models.crf import DenseCRF
from ..models.multiscale import MultiScale, Rescaled
from .crf_study import crf_study
from .eps_sweep import eps_sweep, sweep_tables
from .transfer import matrix_rows, transfer_matrix


def _mean(v):
    v = list(v)
    return sum(v) / len(v) if v else float("nan")


def findings(sweep: list[dict], transfers: dict, crf: list[dict], base: str) -> list[dict]:
    """002's claims, each with the numbers that decide it on this run."""
    out = []
    ms = [r for r in sweep if r["model"] == f"{base} (multiscale max)"]
    single = {(r["attack"], r["eps"]): r["iou_ratio"] for r in sweep if r["model"] == base}
    wins = [r["iou_ratio"] > single[(r["attack"], r["eps"])] for r in ms if r["eps"] > 0]
    out.append({"finding": "multiscale processing (max) is more robust than the single scale (higher IoU Ratio)",
                "evidence": f"higher at {sum(wins)}/{len(wins)} (attack, ε) points; mean ratio "
                            f"{100 * _mean(r['iou_ratio'] for r in ms):.1f}% vs {100 * _mean(single.values()):.1f}%",
                "holds": bool(wins) and sum(wins) > len(wins) / 2})
    for attack, res in transfers.items():
        ratio = res["iou_ratio"]
        names = list(ratio)
        diag = [ratio[t][t] for t in names]
        off = [ratio[t][s] for t in names for s in names if s != t]
        weaker = [ratio[t][s] >= ratio[t][t] for t in names for s in names if s != t]
        out.append(
            {
                "finding": f"{attack}: transfer across scales is weaker than white-box "
                "(higher IoU Ratio off the diagonal)",
                "evidence": f"{sum(weaker)}/{len(weaker)} off-diagonal entries ≥ their white-box; mean "
                f"{100 * _mean(off):.1f}% vs diagonal {100 * _mean(diag):.1f}%",
                "holds": sum(weaker) > len(weaker) / 2,
            }
        )
        ms_name = "Multiscale"
        if ms_name in names:
            others = [s for s in names if s != ms_name]
            best_src = min(others + [ms_name], key=lambda s: _mean(ratio[t][s] for t in names if t != s))
            out.append(
                {
                    "finding": f"{attack}: examples from the multiscale model transfer best",
                    "evidence": f"most effective black-box source: {best_src}",
                    "holds": best_src == ms_name,
                }
            )

    def crf_ratio(targeted, network, source):
        v = [
            r["iou_ratio"]
            for r in crf
            if r["targeted"] == targeted and r["network"] == network and r["source"] == source and r["eps"] > 0
        ]
        return _mean(v)

    u_m, u_c = crf_ratio(False, "model", "white-box"), crf_ratio(False, "model+CRF", "white-box")
    t_m, t_c = crf_ratio(True, "model", "white-box"), crf_ratio(True, "model+CRF", "white-box")
    u_tr = crf_ratio(False, "model+CRF", "model")
    out.append(
        {
            "finding": "the CRF resists untargeted attacks (higher IoU Ratio with the CRF)",
            "evidence": f"mean IoU Ratio {100 * u_c:.1f}% with CRF vs {100 * u_m:.1f}% without",
            "holds": u_c > u_m + 0.01,
        }
    )
    out.append(
        {
            "finding": "the CRF does not resist targeted attacks (IoU Ratio about the same)",
            "evidence": f"mean IoU Ratio {100 * t_c:.1f}% with CRF vs {100 * t_m:.1f}% without "
            f"(gain {100 * (t_c - t_m):.1f} vs {100 * (u_c - u_m):.1f} points untargeted)",
            "holds": (t_c - t_m) < 0.5 * (u_c - u_m) if u_c > u_m else abs(t_c - t_m) < 0.02,
        }
    )
    out.append(
        {
            "finding": "the CRF masks gradients: untargeted examples from the model alone hurt model+CRF more "
            "than white-box ones",
            "evidence": f"IoU Ratio of model+CRF: {100 * u_tr:.1f}% transferred vs {100 * u_c:.1f}% white-box",
            "holds": u_tr < u_c,
        }
    )
    conf = [(r["confidence"], r["iou_ratio"], r["network"]) for r in crf if r["source"] != "model"]
    c_crf = _mean(c for c, _, n in conf if n == "model+CRF")
    c_m = _mean(c for c, _, n in conf if n == "model")
    out.append(
        {
            "finding": "predictions with the CRF are more confident",
            "evidence": f"mean top-class probability {c_crf:.3f} with CRF vs {c_m:.3f} without",
            "holds": c_crf > c_m,
        }
    )
    return out


def run_study(
    base_models: dict[str, nn.Module],
    images,
    labels,
    out_dir: str | Path,
    *,
    num_classes: int,
    eps_list=(0.25, 0.5, 1, 2, 4, 8, 16, 32),
    transfer_eps: float = 8,
    crf_eps=(2, 4, 8),
    crf: DenseCRF | None = None,
    batch_size: int = 16,
    ignore_index: int = 255,
    progress: bool = True,
) -> dict:
    """Run everything on ``base_models`` (the first is the one studied for multiscale, transfer and CRF)
    and write the report folder; returns the raw results."""
    out = Path(out_dir)
    base = next(iter(base_models))
    m0 = base_models[base]
    sweep_models = dict(base_models)
    sweep_models[f"{base} (multiscale max)"] = MultiScale(m0, pool="max").eval()
    sweep_models[f"{base} (multiscale mean)"] = MultiScale(m0, pool="mean").eval()
    kw = dict(num_classes=num_classes, batch_size=batch_size, ignore_index=ignore_index, progress=progress)
    sweep = eps_sweep(sweep_models, images, labels, eps_list=eps_list, **kw)
    scales = {"50%": Rescaled(m0, 0.5), "75%": Rescaled(m0, 0.75), "100%": m0, "Multiscale": MultiScale(m0, pool="max")}
    transfers = {}
    for name, fn in (("FGSM", fgsm), ("I-FGSM", ifgsm)):
        transfers[name] = transfer_matrix(
            scales, images, labels, attack=partial(fn, eps=transfer_eps / 255, ignore_index=ignore_index), **kw
        )
    crf_rows = crf_study(m0, images, labels, crf=crf, eps_list=crf_eps, **kw)
    found = findings(sweep, transfers, crf_rows, base)
    _write(out, sweep, transfers, crf_rows, found, transfer_eps, len(images))
    return {"sweep": sweep, "transfer": transfers, "crf": crf_rows, "findings": found}


def _write(out: Path, sweep, transfers, crf_rows, found, transfer_eps, n) -> None:
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# Robustness studies of Arnab et al. (002) on {n} built-in test images\n"]
    md.append("## Findings\n")
    md.append(
        markdown_table(
            [
                {"finding": f["finding"], "holds here": "yes" if f["holds"] else "no", "evidence": f["evidence"]}
                for f in found
            ]
        )
    )
    for value, title in (("iou_ratio", "IoU Ratio (%)"), ("miou", "mIoU (%)")):
        for attack, rows in sweep_tables(sweep, value).items():
            md.append(f"\n## {attack}: {title} vs ε (0-255 scale; 002 Tables A5-A12)\n")
            md.append(markdown_table(rows))
    for attack, res in transfers.items():
        md.append(
            f"\n## Transfer, {attack} ε = {transfer_eps:g}: IoU Ratio (%) of each target (rows) under examples "
            "from each source (columns); the diagonal is white-box (002 Tables A15-A18)\n"
        )
        md.append(markdown_table(matrix_rows(res)))
    md.append("\n## CRF (002 §A5): IoU Ratio, confidence and entropy\n")
    md.append(
        markdown_table(
            [{k: (100 * v if k in ("miou", "iou_ratio") else v) for k, v in r.items()} for r in crf_rows], digits=3
        )
    )
    atomic_io.write_text(out / "study.md", "\n".join(md) + "\n")
    atomic_io.write_text(out / "eps_sweep.csv", csv_text(sweep))
    atomic_io.write_text(out / "crf.csv", csv_text(crf_rows))
    for attack, res in transfers.items():
        atomic_io.write_text(out / f"transfer_{attack.replace(' ', '_')}.csv", csv_text(matrix_rows(res)))
    atomic_io.write_text(
        out / "study.json",
        json.dumps({"findings": found, "sweep": sweep, "transfer": transfers, "crf": crf_rows}, indent=1),
    )
    _plots(out, sweep, transfers, crf_rows)


def _plots(out: Path, sweep, transfers, crf_rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = list(dict.fromkeys(r["attack"] for r in sweep))
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.8), squeeze=False)
    for ax, attack in zip(axes[0], attacks):
        for model in dict.fromkeys(r["model"] for r in sweep):
            pts = [(r["eps"], 100 * r["iou_ratio"]) for r in sweep if r["attack"] == attack and r["model"] == model]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=model)
        ax.set_xscale("log", base=2)
        ax.set_title(attack)
        ax.set_xlabel("ε (0-255)")
        ax.set_ylabel("IoU Ratio (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    atomic_io.save_figure(fig, out / "eps_sweep.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(transfers), figsize=(5 * len(transfers), 4.2), squeeze=False)
    for ax, (attack, res) in zip(axes[0], transfers.items()):
        names = list(res["iou_ratio"])
        mat = [[100 * res["iou_ratio"][t][s] for s in names] for t in names]
        im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=100)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{mat[i][j]:.0f}", ha="center", va="center", color="w" if mat[i][j] < 60 else "k")
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("source")
        ax.set_ylabel("target")
        ax.set_title(f"{attack}: IoU Ratio (%)")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    atomic_io.save_figure(fig, out / "transfer.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (network, source), marker in (
        (("model", "white-box"), "o"),
        (("model+CRF", "white-box"), "s"),
        (("model+CRF", "model"), "^"),
    ):
        pts = [r for r in crf_rows if r["network"] == network and r["source"] in (source, "-")]
        for ax, key in zip(axes, ("confidence", "entropy")):
            ax.scatter(
                [r[key] for r in pts], [100 * r["iou_ratio"] for r in pts], marker=marker, label=f"{network} ({source})"
            )
    for ax, key in zip(axes, ("mean top-class probability", "mean normalised entropy")):
        ax.set_xlabel(key)
        ax.set_ylabel("IoU Ratio (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Confidence / entropy vs IoU Ratio (002 Figs. A13-A14)")
    fig.tight_layout()
    atomic_io.save_figure(fig, out / "crf_confidence.png", dpi=100)
    plt.close(fig)
