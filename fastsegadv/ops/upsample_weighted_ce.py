"""Fused bilinear upsample + weighted cross-entropy (issue 6): many models give logits at 1/4 or 1/8 of
the label resolution and upsample them before the loss; the upsampled logits (and their gradient) are
then the biggest tensors of an attack step. ``upsample_weighted_cross_entropy`` computes the loss,
every weighting of DESIGN.md §3 and the gradient w.r.t. the *low-resolution* logits straight from them,
interpolating on the fly (C++ CPU kernel, csrc/cpu/upsample_weighted_ce_cpu.cpp; Triton kernels,
kernels/upsample_weighted_ce.py; both with a deterministic backward). The reference beside it is
``F.interpolate`` followed by the eager loss. The backend comes from
:func:`fastsegadv.backend.choose_backend` (``FASTSEGADV_BACKEND`` included): on CUDA the Triton kernel
(there is no CUDA C++ one), on CPU the C++ kernel (Triton under ``TRITON_INTERPRET=1`` when asked for);
float64 and C < 2 run the reference.

    loss = upsample_weighted_cross_entropy(logits_low, labels, weighting=Weighting(segpgd="linear"),
                                           step=t, steps=T, align_corners=False)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backend import choose_backend
from ..reference.pixelwise import check_label_range, check_labels_like, check_reduction
from ..reference.regions import check_region_state
from ..reference.weighted import Weighting, weighted_cross_entropy_reference
from .weighted_ce import Kernel, check_params_need_kernel, checked_step_arguments, weighted_fused_loss


def upsample_weighted_cross_entropy_reference(logits, labels, *, align_corners: bool = False, **kwargs):
    """``F.interpolate(logits, labels' size, bilinear)`` then the eager weighted CE (the spec)."""
    up = F.interpolate(logits, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=align_corners)
    return weighted_cross_entropy_reference(up, labels, **kwargs)


def upsample_weighted_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weighting: Weighting = Weighting(),
    step: int | None = None,
    steps: int | None = None,
    region_state: torch.Tensor | None = None,
    update_region_state: bool = True,
    ignore_index: int = 255,
    reduction: str = "mean",
    align_corners: bool = False,
    validate: bool = True,
    backend: str | None = None,
    params: torch.Tensor | None = None,
):
    """Weighted CE of ``logits [B, C, h, w]`` upsampled to ``labels [B, H, W]``; ``region_state`` at label
    resolution. ``validate``, ``backend`` and ``params`` as in :func:`fastsegadv.ops.weighted_cross_entropy`
    (``validate=False`` skips the host-side checks of labels and region state: the GPU kernels then ignore
    labels outside [0, C), the C++ CPU kernel rejects them)."""
    check_reduction(reduction)
    if logits.dim() != 4 or labels.dim() != 3 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"logits must be [B, C, h, w] and labels [B, H, W]; got {tuple(logits.shape)}, "
                         f"{tuple(labels.shape)}")
    step, steps = checked_step_arguments(weighting, step, steps, region_state, labels, params)
    if validate:
        if not logits.is_floating_point():
            raise TypeError(f"logits must be floating point, got {logits.dtype}")
        check_labels_like(labels, logits, "logits", spatial=False)
        check_label_range(labels, logits.shape[1], ignore_index)
        if weighting.regions:
            check_region_state(region_state, labels)
    kw = dict(weighting=weighting, step=step, steps=steps, region_state=region_state,
              update_region_state=update_region_state, ignore_index=ignore_index, reduction=reduction)
    name = choose_backend("upsample_weighted_ce", logits, backend)
    if name == "reference":
        check_params_need_kernel(params, weighting)
        return upsample_weighted_cross_entropy_reference(logits, labels, align_corners=align_corners, **kw)
    out, _, _ = weighted_fused_loss(logits, labels, **kw, params=params,
                                    kernel=Kernel(name, upsample=True, align_corners=align_corners))
    return out
