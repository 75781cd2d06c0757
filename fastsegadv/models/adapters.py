"""Adapters that make any segmentation network look like ``model(x [B, 3, H, W]) -> logits [B, C, H, W]``:
tensors, torchvision-style dicts (``"out"`` / ``"aux"``), tuples/lists, objects with ``.logits`` (Hugging
Face SegFormer), and logits at 1/4 or 1/8 of the input resolution (SegFormer, mmseg decode heads), which
are upsampled bilinearly as those libraries do before their loss."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from ..outputs import extract_logits, logits_at

select_output = extract_logits  # the models API's name for the one output adapter (fastsegadv.outputs)



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
        return logits_at(logits, size, align_corners=self.align_corners)

    def forward(self, x: torch.Tensor):
        raw = self.model(x)
        size = x.shape[-2:]
        main = self._resize(extract_logits(raw, self.output), size)
        if not self.aux:
            return main
        return {"out": main, **{name: self._resize(extract_logits(raw, k), size) for name, k in self.aux.items()}}


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
