"""Masked per-class feature sums (RP-PGD prototypes, 003 Eq. 5) as an autograd Function over the C++ /
Triton kernels, and the dispatching ``masked_class_sums`` that :func:`fastsegadv.losses.class_prototypes`
calls. The pairwise-cosine loss on the small ``[B, K, d]`` result stays in PyTorch."""
from __future__ import annotations

import torch

from ..backend import choose_backend
from ..reference.prototypes import masked_class_sums_reference


def _kernels(backend: str):
    if backend == "cpp":
        return torch.ops.fastsegadv.masked_class_sums, torch.ops.fastsegadv.masked_class_sums_backward
    from ..kernels import masked_class_sums as tk

    return tk.masked_class_sums, tk.masked_class_sums_backward


class MaskedClassSums(torch.autograd.Function):
    """``(features [B,d,h,w], labels [B,h,w], mask bool [B,h,w]) -> (sums [B,K,d] fp32, counts [B,K] fp32)``;
    backward: ``dL/dfeatures[b,:,p] = mask ? dL/dsums[b, labels[b,p], :] : 0``."""

    @staticmethod
    def forward(ctx, features, labels, mask, num_classes, backend):
        fwd, _ = _kernels(backend)
        sums, counts = fwd(features, labels, mask, num_classes)
        ctx.save_for_backward(features, labels, mask)
        ctx.backend = backend
        ctx.mark_non_differentiable(counts)
        return sums, counts

    @staticmethod
    def backward(ctx, grad_sums, _grad_counts):
        features, labels, mask = ctx.saved_tensors
        _, bwd = _kernels(ctx.backend)
        return bwd(grad_sums, features, labels, mask), None, None, None, None


def masked_class_sums(features: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, num_classes: int, *,
                      backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Segmented reduction ``sums [B, K, d]``, ``counts [B, K]`` of ``features [B, d, h, w]`` over ``mask``
    grouped by ``labels`` (values in [0, K) where mask), on the chosen backend."""
    name = choose_backend("masked_class_sums", features, backend)
    if name == "reference":
        return masked_class_sums_reference(features, labels, mask, num_classes)
    safe = torch.where(mask, labels.long(), torch.zeros_like(labels, dtype=torch.long))
    return MaskedClassSums.apply(features, safe, mask.bool(), num_classes, name)
