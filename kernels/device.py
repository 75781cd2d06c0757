"""The launch guard every Triton wrapper of this package uses."""
from __future__ import annotations

import contextlib

import torch


def on_device(t: torch.Tensor):
    """Make ``t``'s GPU the current device for a launch: Triton launches on the current device, so tensors on
    cuda:1 while cuda:0 is current would otherwise be read through the wrong context. A no-op on CPU (the
    interpreter)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()
