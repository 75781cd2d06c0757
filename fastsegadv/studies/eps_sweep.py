"""ε sweeps of 002 (Tables A5-A12, Figs. 2/A3-A6): FGSM, FGSM II, I-FGSM and Iterative FGSM II over
ε ∈ {0.25, ..., 32}/255, I-FGSM with n = min(ε + 4, ⌊1.25 ε⌋) iterations of α = 1/255, reported as
absolute mIoU and IoU Ratio (adversarial / clean) per model."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import torch.nn as nn
from tqdm import tqdm

from ..attacks import fgsm, fgsm_ll, ifgsm, ifgsm_ll
from .common import EPS_LIST, attacked_confusion

SWEEP_ATTACKS = {"FGSM": fgsm, "FGSM II": fgsm_ll, "I-FGSM": ifgsm, "Iterative FGSM II": ifgsm_ll}


def eps_sweep(models: Mapping[str, nn.Module], images, labels, *, num_classes: int,
              attacks: Sequence[str] = tuple(SWEEP_ATTACKS), eps_list: Sequence[float] = EPS_LIST,
              batch_size: int = 16, ignore_index: int = 255, progress: bool = True) -> list[dict]:
    """Rows ``{"attack", "model", "clean_miou", "eps": ε (0-255), "miou", "iou_ratio"}``."""
    rows = []
    bar = tqdm(total=len(models) * len(attacks) * len(eps_list), desc="eps sweep", disable=not progress)
    for name, model in models.items():
        clean = attacked_confusion(model, images, labels, num_classes=num_classes, attack=None,
                                   batch_size=batch_size, ignore_index=ignore_index).miou()
        for attack in attacks:
            fn = SWEEP_ATTACKS[attack]
            for eps in eps_list:
                atk = partial(fn, eps=eps / 255, ignore_index=ignore_index)
                m = attacked_confusion(model, images, labels, num_classes=num_classes, attack=atk,
                                       batch_size=batch_size, ignore_index=ignore_index).miou()
                rows.append({"attack": attack, "model": name, "clean_miou": clean, "eps": eps, "miou": m,
                             "iou_ratio": m / clean if clean > 0 else float("nan")})
                bar.update(1)
    bar.close()
    return rows


def sweep_tables(rows: list[dict], value: str = "iou_ratio") -> dict[str, list[dict]]:
    """Per attack, the 002 table layout: one row per model, one column per ε (``value`` in %)."""
    out: dict[str, list[dict]] = {}
    for attack in dict.fromkeys(r["attack"] for r in rows):
        table = {}
        for r in rows:
            if r["attack"] == attack:
                row = table.setdefault(r["model"], {"model": r["model"], "Clean": 100 * r["clean_miou"]})
                row[f"ε={r['eps']:g}"] = 100 * r[value]
        out[attack] = list(table.values())
    return out
