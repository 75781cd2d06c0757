"""Loads the compiled ops (``fastsegadv._C``, built by setup.py) once, and registers their fake
(meta) implementations so ``torch.compile`` and ``torch.library.opcheck`` can trace them."""
from __future__ import annotations

import torch

from .contract import NUM_STATS

try:
    from . import _C  # noqa: F401  (registers torch.ops.fastsegadv.*)

    CPP_AVAILABLE = True
    CPP_IMPORT_ERROR: Exception | None = None
except ImportError as e:  # pure-Python install (FASTSEGADV_NO_EXTENSIONS=1) or build failure
    CPP_AVAILABLE = False
    CPP_IMPORT_ERROR = e



def _has_kernel(key: str) -> bool:
    return CPP_AVAILABLE and torch._C._dispatch_has_kernel_for_dispatch_key("fastsegadv::weighted_ce_forward", key)


# looked up once at import (a plain dict, so torch.compile traces the backend choice)
CPP_DEVICES = {"cpu": _has_kernel("CPU"), "cuda": _has_kernel("CUDA")}


def cpp_has_device(device_type: str) -> bool:
    return CPP_DEVICES.get(device_type, False)


def label_counts(labels: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """int64 ``[2]``: the pixels whose label is not ``ignore_index`` (N_v) and, of those, the labels outside
    ``[0, num_classes)``, in one pass without a ``[B, H, W]`` mask on CPU (csrc/cpu/label_counts_cpu.cpp)."""
    if (labels.device.type == "cpu" and CPP_AVAILABLE
            and torch._C._dispatch_has_kernel_for_dispatch_key("fastsegadv::label_counts", "CPU")):
        return torch.ops.fastsegadv.label_counts(labels, num_classes, ignore_index)
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= num_classes))
    return torch.stack([valid.sum(), bad.sum()])


if CPP_AVAILABLE:

    @torch.library.register_fake("fastsegadv::weighted_ce_forward")
    def _weighted_ce_forward_fake(logits, labels, region_state, params, flags, ignore_index, per_pixel, with_grad,
                                  grad_scale, prediction=None):
        b, _, h, w = logits.shape
        loss = logits.new_empty((b, h, w) if per_pixel else (0,), dtype=torch.float32)
        # only the CPU kernel returns the gradient from the forward pass
        grad = (torch.empty_like(logits, dtype=torch.float32) if with_grad and logits.device.type == "cpu"
                else logits.new_empty((0,), dtype=torch.float32))
        return loss, logits.new_empty((b, NUM_STATS), dtype=torch.float64), grad

    @torch.library.register_fake("fastsegadv::weighted_ce_backward")
    def _weighted_ce_backward_fake(grad_scale, logits, labels, region_state, params, flags, ignore_index):
        return torch.empty_like(logits)

    @torch.library.register_fake("fastsegadv::masked_class_sums")
    def _masked_class_sums_fake(features, labels, mask, num_classes):
        b, d = features.shape[:2]
        return (features.new_empty((b, num_classes, d), dtype=torch.float32),
                features.new_empty((b, num_classes), dtype=torch.float32))

    @torch.library.register_fake("fastsegadv::upsample_weighted_ce_forward")
    def _upsample_weighted_ce_forward_fake(logits, labels, region_state, params, flags, ignore_index, align_corners,
                                           per_pixel, with_grad, grad_scale):
        b, h, w = labels.shape
        loss = logits.new_empty((b, h, w) if per_pixel else (0,), dtype=torch.float32)
        grad = (logits.new_empty(logits.shape, dtype=torch.float32) if with_grad
                else logits.new_empty((0,), dtype=torch.float32))
        return loss, logits.new_empty((b, NUM_STATS), dtype=torch.float64), grad

    @torch.library.register_fake("fastsegadv::upsample_weighted_ce_backward")
    def _upsample_weighted_ce_backward_fake(grad_scale, logits, labels, region_state, params, flags, ignore_index,
                                            align_corners):
        return logits.new_empty(logits.shape)

    @torch.library.register_fake("fastsegadv::label_counts")
    def _label_counts_fake(labels, num_classes, ignore_index):
        return labels.new_empty((2,), dtype=torch.int64)

    @torch.library.register_fake("fastsegadv::linf_step")
    def _linf_step_fake(x_adv, grad, x, alpha, eps):
        # x's layout is kept (csrc/cpu/attack_step_cpu.cpp: step_memory_format)
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        return torch.empty_like(x, memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    @torch.library.register_fake("fastsegadv::masked_class_sums_backward")
    def _masked_class_sums_backward_fake(grad_sums, features, labels, mask):
        return torch.empty_like(features, memory_format=torch.contiguous_format)
