"""Which batches a rank evaluates, batch assembly from a map-style dataset, and the clean confusion matrix
of a model over a dataset (sharded across ranks, summed exactly)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..metrics import ConfusionMatrix, prediction_confusion
from .context import DistContext, all_reduce_sum


def image_seed(seed: int, index: int, *, salt: int = 1) -> int:
    """Random-start seed of dataset item ``index``, independent of its batch and rank (so sharded runs and
    any batch size reproduce one process): the evaluation uses ``salt=1``, training ``epoch * 100_003 + 17``."""
    return (seed * 1_000_003 + salt + index * 7919) % (2**62)


def batch_ranges(n: int, batch_size: int, ctx: DistContext) -> list[tuple[int, int, int]]:
    """``(k, start, stop)`` of the batches rank ``ctx.rank`` handles: batch k = items [k*bs, (k+1)*bs),
    batches dealt round-robin. The batches (and so every per-batch seed) are the same for any world size."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    starts = range(0, n, batch_size)
    return [(k, s, min(s + batch_size, n)) for k, s in enumerate(starts) if k % ctx.world_size == ctx.rank]


def stack_items(items) -> tuple[torch.Tensor, torch.Tensor]:
    """``[(image [3, H, W], label [H, W]), ...]`` -> images ``[B, 3, H, W]``, labels ``[B, H, W]`` int64 (also
    the DataLoader ``collate_fn`` of the training loop)."""
    shapes = {tuple(x.shape) for x, _ in items}
    if len(shapes) > 1:
        raise ValueError(f"images of different sizes {sorted(shapes)} cannot be batched; use batch size 1 "
                         "or a reader with a fixed crop size")
    return torch.stack([x for x, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items]).long()


def collate(dataset, indices, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``dataset[i]`` for ``indices`` into images ``[B, 3, H, W]`` and labels ``[B, H, W]`` on ``device``."""
    images, labels = stack_items([dataset[int(i)] for i in indices])
    return images.to(device), labels.to(device)


@torch.no_grad()
def clean_confusion(model: nn.Module, dataset, *, num_classes: int, ignore_index: int, batch_size: int,
                    ctx: DistContext, forward=None) -> ConfusionMatrix:
    """Confusion matrix of ``model``'s argmax predictions over ``dataset`` in eval mode (the model's mode
    is restored), summed over ranks."""
    was_training = model.training
    model.eval()
    batches = (collate(dataset, range(start, stop), ctx.device)
               for _, start, stop in batch_ranges(len(dataset), batch_size, ctx))
    try:
        cm = prediction_confusion(forward or model, batches, num_classes=num_classes, ignore_index=ignore_index,
                                  device=ctx.device)
    finally:
        model.train(was_training)
    all_reduce_sum(cm.matrix, ctx)
    return cm
