"""The one output adapter: logits from whatever a segmentation model returns (tensors, torchvision dicts,
Hugging Face output objects, tuples), at the labels' resolution, and the class prediction. Every layer
that reads a model's output (metrics, attacks, training, evaluation, model adapters) uses these."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F


def extract_logits(output, key: str | int | None = None) -> torch.Tensor:
    """The logits ``[B, C, h, w]`` in a model's output: a tensor, a torchvision-style dict (``"out"``), a
    Hugging Face output (``.logits`` / ``"logits"``) or a tuple/list (element 0). ``key``: a dict key /
    attribute name or a tuple index instead of those defaults."""
    if isinstance(output, torch.Tensor):
        if key not in (None, 0, "out"):
            raise KeyError(f"output is a tensor; there is no {key!r} in it")
        return output
    if isinstance(output, Mapping):
        keys = [key] if key is not None else ["out", "logits"]
        for k in keys:
            if k in output:
                return output[k]
        raise KeyError(f"model output has keys {sorted(map(str, output))}, none of {keys}: return the logits, or "
                       "wrap the model in an nn.Module whose forward returns model(x)[your key]")
    if isinstance(output, (tuple, list)):
        idx = 0 if key is None else key
        if not isinstance(idx, int) or not -len(output) <= idx < len(output):
            raise KeyError(f"model output is a sequence of {len(output)}; index {key!r} is not in it")
        return output[idx]
    name = key if isinstance(key, str) else "logits"
    if hasattr(output, name):
        return getattr(output, name)
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def logits_at(output, size: Sequence[int], *, align_corners: bool = False) -> torch.Tensor:
    """Logits at label resolution ``size = (H, W)``; other sizes are resized bilinearly (``align_corners``
    False by default, as torchvision's and mmseg's heads do)."""
    logits = extract_logits(output)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model's logits must be a tensor [B, C, h, w], got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"the model returned {logits.dtype} logits: attacks and metrics need its floating-point "
                        "class scores [B, C, h, w], not class indices")
    if logits.dim() != 4:
        raise ValueError(f"model logits must be [B, C, h, w], got shape {tuple(logits.shape)} (a model that drops "
                         "the batch dimension? keep it, also for a batch of one)")
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)
    return logits


def class_prediction(logits: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` argmax over the classes of ``logits [B, C, H, W]`` (first index on ties, as
    ``argmax``). ``max(1).indices``: on CPU about 5x faster than ``argmax(1)`` over NCHW logits."""
    return logits.max(1).indices
