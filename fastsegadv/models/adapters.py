"""Adapters that make any segmentation network look like ``model(x [B, 3, H, W]) -> logits [B, C, H, W]``:
tensors, torchvision-style dicts (``"out"`` / ``"aux"``), tuples/lists, objects with ``.logits`` (Hugging
Face SegFormer), and logits at 1/4 or 1/8 of the input resolution (SegFormer, mmseg decode heads), which
are upsampled bilinearly as those libraries do before their loss."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F



def select_output(output, key: str | int | None = None) -> torch.Tensor:
    """The logits in a model's output. ``key``: a dict key / attribute name or a tuple index; by default
    ``"out"`` then ``"logits"`` for mappings and objects, element 0 for tuples."""
    if isinstance(output, torch.Tensor):
        if key not in (None, 0, "out"):
            raise KeyError(f"output is a tensor; there is no {key!r} in it")
        return output
    if isinstance(output, Mapping):
        keys = [key] if key is not None else ["out", "logits"]
        for k in keys:
            if k in output:
                return output[k]
        raise KeyError(f"model output has keys {sorted(map(str, output))}, none of {keys}")
    if isinstance(output, (tuple, list)):
        idx = 0 if key is None else key
        if not isinstance(idx, int) or not -len(output) <= idx < len(output):
            raise KeyError(f"model output is a sequence of {len(output)}; index {key!r} is not in it")
        return output[idx]
    name = key if isinstance(key, str) else "logits"
    if hasattr(output, name):
        return getattr(output, name)
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


class SegmentationAdapter(nn.Module):
    """``SegmentationAdapter(model, output="out", aux={"aux": "aux"})(x)`` returns the main logits at the
    input resolution, or ``{"out": ..., "aux": ...}`` (all at input resolution) when ``aux`` names
    auxiliary heads (for :func:`~fastsegadv.training.adversarial_training_loss`). ``align_corners`` is
    that of the upsampling (False: torchvision, mmseg; match your model's training)."""

    def __init__(self, model: nn.Module, *, output: str | int | None = None, aux: Mapping[str, str | int] | None = None,
                 align_corners: bool = False):
        super().__init__()
        self.model = model
        self.output = output
        self.aux = dict(aux or {})
        self.align_corners = align_corners

    def _resize(self, logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
            raise ValueError(f"logits must be a [B, C, h, w] tensor, got {getattr(logits, 'shape', type(logits))}")
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: torch.Tensor):
        raw = self.model(x)
        size = x.shape[-2:]
        main = self._resize(select_output(raw, self.output), size)
        if not self.aux:
            return main
        return {"out": main, **{name: self._resize(select_output(raw, k), size) for name, k in self.aux.items()}}


def feature_layer_name(model: nn.Module, layer: str | None = None) -> str | None:
    """The submodule RP-PGD hooks for its prototype features: ``layer`` checked (inside a
    :class:`SegmentationAdapter` the name is prefixed), or None: the attack then takes the input of the
    convolution that produces the main logits, found in its first forward
    (:class:`fastsegadv.attacks.FeatureHook`)."""
    if layer is None:
        return None
    names = dict(model.named_modules())
    if layer not in names:
        prefixed = f"model.{layer}"
        if prefixed in names:
            return prefixed
        close = [n for n in names if n.endswith(layer)][:3]
        raise ValueError(f"feature layer {layer!r} is not a submodule of the model"
                         + (f" (did you mean {close}?)" if close else ""))
    return layer
