"""Transferability (002 §6, Tables A15-A18): adversarial examples generated on each source (a model, or
one scale of a model, or its multiscale version) and evaluated on every target. The diagonal (source =
target) is the white-box attack."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch.nn as nn
from tqdm import tqdm

from .common import attacked_confusions


def transfer_matrix(networks: Mapping[str, nn.Module], images, labels, *, attack: Callable, num_classes: int,
                    batch_size: int = 16, ignore_index: int = 255, progress: bool = True) -> dict:
    """``{"clean": {target: mIoU}, "miou": {target: {source: mIoU}}, "iou_ratio": {...}}``."""
    names = list(networks)
    clean_cms = attacked_confusions(networks, images, labels, num_classes=num_classes, attack=None,
                                    batch_size=batch_size, ignore_index=ignore_index)
    clean = {t: cm.miou() for t, cm in clean_cms.items()}
    miou: dict = {t: {} for t in names}
    bar = tqdm(total=len(names) ** 2, desc="transfer", disable=not progress)
    for s in names:  # the examples from each source are made once and shown to every target
        cms = attacked_confusions(networks, images, labels, num_classes=num_classes, attack=attack,
                                  source=networks[s], batch_size=batch_size, ignore_index=ignore_index)
        for t in names:
            miou[t][s] = cms[t].miou()
        bar.update(len(names))
    bar.close()
    ratio = {t: {s: miou[t][s] / clean[t] if clean[t] > 0 else float("nan") for s in names} for t in names}
    return {"clean": clean, "miou": miou, "iou_ratio": ratio}


def matrix_rows(result: dict, value: str = "iou_ratio") -> list[dict]:
    """Rows = targets, columns = sources (values in %), the layout of 002 Table A15."""
    return [{"target \\ source": t, **{s: 100 * v for s, v in row.items()}} for t, row in result[value].items()]
