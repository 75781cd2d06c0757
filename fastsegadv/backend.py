"""The one place that chooses how each fused op runs: ``triton``, ``cpp`` (C++ CPU / CUDA ops) or
``reference`` (eager PyTorch, :mod:`fastsegadv.reference`).

One table, :data:`IMPLEMENTED`, says which kernels exist for each op on each device type, in the order the
automatic choice tries them; :func:`choose_backend` is the one function that reads it:

- ``backend=`` (an explicit request) must be served: a backend that has no kernel for the op on that device,
  is not built or installed, or cannot take the input (float64, fewer than 2 classes: the kernels
  accumulate in fp32 and need C >= 2) raises an error that says why;
- ``$FASTSEGADV_BACKEND`` forces a backend wherever it can serve, and leaves the call to the automatic
  choice where it cannot (float64 gradchecks, an op without that kernel on that device);
- otherwise the first available kernel of the table, else the reference. Triton on CPU (the
  interpreter, ``TRITON_INTERPRET=1``) is only ever used on request.

The linf step op (ops/attack_step.py) has a single kernel per device and no choice to make.
"""
from __future__ import annotations

import os

import torch

from . import _ops

BACKENDS = ("reference", "cpp", "triton")
ENV = "FASTSEGADV_BACKEND"

# op -> device type -> kernels, in the automatic order (triton on CPU: on request, under the interpreter)
IMPLEMENTED = {
    "weighted_ce": {"cuda": ("triton", "cpp"), "cpu": ("cpp", "triton")},
    "upsample_weighted_ce": {"cuda": ("triton",), "cpu": ("cpp", "triton")},
    "masked_class_sums": {"cuda": ("triton", "cpp"), "cpu": ("cpp", "triton")},
}
AUTOMATIC_ON_CPU = ("cpp",)


def triton_available(device: torch.device) -> bool:
    try:
        import triton  # noqa: F401  (optional dependency: probed, not required)
    except ImportError:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def available(name: str, device: torch.device) -> bool:
    """Whether ``name``'s kernels are built/installed and can run on ``device`` at all."""
    if name == "reference":
        return True
    if name == "cpp":
        return _ops.cpp_has_device(device.type)
    if name == "triton":
        return triton_available(device)
    raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")


def _cannot_serve(op: str, name: str, tensor: torch.Tensor) -> str | None:
    """Why backend ``name`` cannot run ``op`` on ``tensor`` (None if it can)."""
    if name == "reference":
        return None
    if tensor.dtype == torch.float64:
        return "the kernels accumulate in fp32 and take fp32/fp16/bf16 input, not float64"
    if op != "masked_class_sums" and tensor.dim() == 4 and tensor.shape[1] < 2:
        return "the kernels need at least 2 classes"
    kernels = IMPLEMENTED[op].get(tensor.device.type, ())
    if name not in kernels:
        return f"there is no {name} kernel of {op} for {tensor.device.type} tensors (kernels: {kernels or 'none'})"
    if not available(name, tensor.device):
        if name == "cpp":
            return f"the C++ extension is not built for {tensor.device.type}" + (
                f" ({_ops.CPP_IMPORT_ERROR})" if _ops.CPP_IMPORT_ERROR else "")
        return "triton is not installed" + (" or TRITON_INTERPRET=1 is not set" if tensor.device.type == "cpu" else "")
    return None


def choose_backend(op: str, tensor: torch.Tensor, requested: str | None = None) -> str:
    """``"triton"``, ``"cpp"`` or ``"reference"`` for ``op`` (a key of :data:`IMPLEMENTED`) on ``tensor`` (the
    logits or features): ``requested`` if given (or an error saying why it cannot serve), else
    ``$FASTSEGADV_BACKEND`` where it can serve, else the first available kernel of the table."""
    if op not in IMPLEMENTED:
        raise ValueError(f"unknown op {op!r}; choose from {sorted(IMPLEMENTED)}")
    for name, explicit in ((requested, True), (os.environ.get(ENV) or None, False)):
        if name is None:
            continue
        if name not in BACKENDS:
            raise ValueError(f"{'backend' if explicit else ENV} must be one of {BACKENDS}, got {name!r}")
        why = _cannot_serve(op, name, tensor)
        if why is None:
            return name
        if explicit:
            raise RuntimeError(f"backend {name!r} cannot run {op} here: {why}")
        break  # the environment's choice cannot serve this call: the automatic choice does
    auto = IMPLEMENTED[op].get(tensor.device.type, ())
    if tensor.device.type == "cpu":
        auto = tuple(k for k in auto if k in AUTOMATIC_ON_CPU)
    return next((k for k in auto if _cannot_serve(op, k, tensor) is None), "reference")
