"""Shared pieces of the 002 studies: attacked mIoU of a model over a dataset in batches, with the
adversarial examples optionally generated on another model (transfer), and prediction statistics."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from ..attacks.model_io import logits_at
from ..metrics import ConfusionMatrix

EPS_LIST = (0.25, 0.5, 1, 2, 4, 8, 16, 32)  # 002 / 004, on the 0-255 scale


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    return logits_at(model(x), size)


def attacked_confusion(target: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, num_classes: int,
                       attack: Callable | None, source: nn.Module | None = None, batch_size: int = 16,
                       seed: int = 0, ignore_index: int = 255, stats: dict | None = None) -> ConfusionMatrix:
    """Confusion matrix of ``target`` on ``attack(source or target, x, y)`` (clean when ``attack`` is None).
    ``stats``, if given, accumulates the mean top-class probability and mean normalised entropy of the
    target's predictions (002 Figs. A13-A14)."""
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    src = source if source is not None else target
    conf_sum = ent_sum = count = 0.0
    for k, i in enumerate(range(0, len(images), batch_size)):
        x, y = images[i:i + batch_size], labels[i:i + batch_size]
        adv = x if attack is None else attack(src, x, y, seed=seed + k)
        z = _predict(target, adv, y.shape[-2:])
        cm.update(z.argmax(1), y)
        if stats is not None:
            p = z.float().softmax(1)
            valid = (y != ignore_index).float()
            ent = -(p * p.clamp_min(1e-12).log()).sum(1) / torch.log(torch.tensor(float(z.shape[1])))
            conf_sum += float((p.amax(1) * valid).sum())
            ent_sum += float((ent * valid).sum())
            count += float(valid.sum())
    if stats is not None:
        stats["confidence"] = conf_sum / max(count, 1)
        stats["entropy"] = ent_sum / max(count, 1)
    return cm
