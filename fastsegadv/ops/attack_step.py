"""The ℓ∞ PGD update (001 Eq. 1) in one pass where the compiled op exists (C++ CPU / CUDA:
``fastsegadv::linf_step``), else eagerly; both compute, elementwise and in this order,

    v = x_adv + alpha * sign(g);   d = clamp(v - x, -eps, eps);   x_new = clamp(x + d, 0, 1)

so they give bitwise-identical iterates. ``alpha < 0`` descends (targeted attacks)."""
from __future__ import annotations

import torch

from .._ops import CPP_AVAILABLE


def linf_step_reference(
    x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, alpha: float, eps: float
) -> torch.Tensor:
    """The eager ℓ∞ PGD update :func:`linf_step` is tested against (001 Eq. 1):
    ``clip_[0,1](x + clip_[-eps, eps](x_adv + alpha * sign(grad) - x))``, all tensors ``[B, 3, H, W]``."""
    v = x_adv + alpha * grad.sign()
    return (x + (v - x).clamp(-eps, eps)).clamp(0.0, 1.0)


def _has_op(device_type: str) -> bool:
    return CPP_AVAILABLE and torch._C._dispatch_has_kernel_for_dispatch_key(
        "fastsegadv::linf_step", "CUDA" if device_type == "cuda" else "CPU"
    )


_OP_DEVICES = {"cpu": _has_op("cpu"), "cuda": _has_op("cuda")}


def linf_step(x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """``[B, 3, H, W]`` next iterate (a new tensor; the inputs are not modified)."""
    if _OP_DEVICES.get(x.device.type, False) and x.dtype == grad.dtype == x_adv.dtype:
        return torch.ops.fastsegadv.linf_step(x_adv, grad, x, float(alpha), float(eps))
    return linf_step_reference(x_adv, grad, x, alpha, eps)
