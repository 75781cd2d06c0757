"""The one place that chooses how the fused loss runs: ``triton``, ``cpp`` (C++ CPU / CUDA ops) or
``reference`` (eager PyTorch, fastsegadv/losses/weighted.py). ``FASTSEGADV_BACKEND`` forces one.

Automatic choice: CUDA tensors -> triton if importable, else cpp if built with CUDA, else reference;
CPU tensors -> cpp if built, else reference. float64 logits always use the reference (the kernels
accumulate in fp32), and so does C < 2.
"""
from __future__ import annotations

import os

import torch

from . import _ops

BACKENDS = ("reference", "cpp", "triton")
ENV = "FASTSEGADV_BACKEND"


def triton_available(device: torch.device) -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def available(name: str, device: torch.device) -> bool:
    if name == "reference":
        return True
    if name == "cpp":
        return _ops.cpp_has_device(device.type)
    if name == "triton":
        return triton_available(device)
    raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")


def choose_backend(logits: torch.Tensor, requested: str | None = None) -> str:
    """Backend for these logits: ``requested`` if given, else ``$FASTSEGADV_BACKEND``, else automatic."""
    name = requested or os.environ.get(ENV) or None
    if logits.dtype == torch.float64 or logits.shape[1] < 2:
        return "reference"
    if name is not None:
        if name not in BACKENDS:
            raise ValueError(f"{ENV}/backend must be one of {BACKENDS}, got {name!r}")
        if not available(name, logits.device):
            why = f" ({_ops.CPP_IMPORT_ERROR})" if name == "cpp" and _ops.CPP_IMPORT_ERROR else ""
            raise RuntimeError(f"backend {name!r} is not available for {logits.device.type} tensors{why}")
        return name
    if logits.device.type == "cuda":
        for cand in ("triton", "cpp"):
            if available(cand, logits.device):
                return cand
        return "reference"
    return "cpp" if available("cpp", logits.device) else "reference"
