"""Shared pieces of the 002 studies: attacked mIoU of a model over a dataset in batches, with the
adversarial examples optionally generated on another model (transfer), and prediction statistics."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn as nn

from ..metrics import ConfusionMatrix
from ..outputs import logits_at

EPS_LIST = (0.25, 0.5, 1, 2, 4, 8, 16, 32)  # 002 / 004, on the 0-255 scale


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    return logits_at(model(x), size)


def attacked_confusions(targets: Mapping[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, *,
                        num_classes: int, attack: Callable | None, source: nn.Module | None = None,
                        batch_size: int = 16, seed: int = 0, ignore_index: int = 255,
                        stats: dict | None = None) -> dict[str, ConfusionMatrix]:
    """Per target, the confusion matrix on ``attack(source, x, y)`` (clean when ``attack`` is None); each
    batch's adversarial examples are made once (seed + batch number) and shown to every target.
    ``source=None`` means each target attacks itself (white box: then only one target is allowed).
    ``stats``, if given, gets per target the mean top-class probability and mean normalised entropy of
    its predictions (002 Figs. A13-A14)."""
    if source is None and attack is not None and len(targets) != 1:
        raise ValueError("white-box attacks (source=None) take a single target")
    cms = {t: ConfusionMatrix(num_classes, ignore_index=ignore_index) for t in targets}
    sums = {t: [0.0, 0.0, 0.0] for t in targets}  # confidence, entropy, valid pixels
    for k, i in enumerate(range(0, len(images), batch_size)):
        x, y = images[i:i + batch_size], labels[i:i + batch_size]
        src = source if source is not None else next(iter(targets.values()))
        adv = x if attack is None else attack(src, x, y, seed=seed + k)
        for t, target in targets.items():
            z = _predict(target, adv, y.shape[-2:])
            cms[t].update(z.argmax(1), y)
            if stats is not None:
                p = z.float().softmax(1)
                valid = (y != ignore_index).float()
                ent = -(p * p.clamp_min(1e-12).log()).sum(1) / torch.log(torch.tensor(float(z.shape[1])))
                sums[t][0] += float((p.amax(1) * valid).sum())
                sums[t][1] += float((ent * valid).sum())
                sums[t][2] += float(valid.sum())
    if stats is not None:
        for t, (conf, ent, count) in sums.items():
            stats[t] = {"confidence": conf / max(count, 1), "entropy": ent / max(count, 1)}
    return cms


def attacked_confusion(target: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, num_classes: int,
                       attack: Callable | None, source: nn.Module | None = None, batch_size: int = 16,
                       seed: int = 0, ignore_index: int = 255, stats: dict | None = None) -> ConfusionMatrix:
    """Confusion matrix of ``target`` on ``attack(source or target, x, y)`` (clean when ``attack`` is None);
    ``stats`` gets its ``confidence`` and ``entropy`` (see :func:`attacked_confusions`)."""
    per = {} if stats is not None else None
    cm = attacked_confusions({"t": target}, images, labels, num_classes=num_classes, attack=attack, source=source,
                             batch_size=batch_size, seed=seed, ignore_index=ignore_index, stats=per)["t"]
    if stats is not None:
        stats.update(per["t"])
    return cm
