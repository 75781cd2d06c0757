"""How an attack runs the user's model, in one frozen value (:class:`Execution`: normalisation, eval mode,
autocast, channels_last, graph capture) and one context that prepares the model for it
(:func:`prepared_model`): parameters frozen and modes restored afterwards, convolution weights in
channels_last if asked, the feature hook installed; it yields the forward that returns raw logits."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..outputs import extract_logits
from .model_io import NormalizedModel, channels_last_weights, frozen_for_attack

AMP_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Execution:
    """``normalization=(mean, std)`` wraps the model; ``eval_mode`` runs it in eval mode; ``amp`` ("bf16",
    "fp16") runs its forward under autocast; ``channels_last`` puts its convolution weights and the iterate
    in channels_last; ``compile_step`` captures steps 2..T as one graph (capture.py)."""

    normalization: tuple | None = None
    eval_mode: bool = True
    amp: str | None = None
    channels_last: bool = False
    compile_step: bool | str = False

    def __post_init__(self):
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {self.amp!r}")

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return AMP_DTYPES[self.amp]


@contextlib.contextmanager
def prepared_model(model: nn.Module, execution: Execution, hook=None) -> Iterator[Callable]:
    """Prepare ``model`` for an attack and yield ``forward_raw(x) -> logits [B, C, h, w]`` (the model's own
    resolution); the model's modes, flags, buffers and weight tensors are as before on exit."""
    net = NormalizedModel(model, *execution.normalization) if execution.normalization is not None else model
    dtype = execution.amp_dtype

    def forward_raw(inp: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inp.device.type, dtype=dtype, enabled=dtype is not None):
            return extract_logits(net(inp))

    with (frozen_for_attack(model, eval_mode=execution.eval_mode),
          channels_last_weights(model, execution.channels_last),
          hook if hook is not None else contextlib.nullcontext()):
        yield forward_raw
