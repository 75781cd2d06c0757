"""RP-PGD region state and region weights (Zhang et al., AAAI 2025, 003 Definitions 1-3, Eq. 3-4).

State per pixel (``uint8 [B,H,W]``, kept on the device across iterations):

- ``TRUE`` (T): correct on the clean image and at every iterate so far;
- ``BOUNDARY`` (B): was correct, became wrong at some iterate (stays B even if it turns back);
- ``FALSE`` (F): misclassified on the clean image (set once, before the first step).

Weights of Eq. 4 at iteration t of T: ``lambda1 = (2T - t)/(2T)`` on T, ``lambda2 = (t - 1)/(2T)`` on B,
``lambda3 = 1/(2T)`` on F. Eq. 3 divides by H*W; the default here is the mean over valid pixels (the
same ℓ∞ sign step). Ignored pixels are put in F; they carry no loss anyway.
"""
from __future__ import annotations

import torch

TRUE = 0
"""Region state T: correct on the clean image and at every iterate so far."""
BOUNDARY = 1
"""Region state B: was correct, became wrong at some iterate."""
FALSE = 2
"""Region state F: misclassified on the clean image."""
REGION_NAMES = {TRUE: "true", BOUNDARY: "boundary", FALSE: "false"}


def check_region_state(state: torch.Tensor, labels: torch.Tensor) -> None:
    """A clear error unless ``state`` is a uint8 tensor shaped like ``labels``, on their device, holding only
    T, B and F (0, 1, 2): the kernels index the region weights and counts by it."""
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.shape != labels.shape:
        raise ValueError(f"region_state must be a uint8 tensor shaped like the labels {tuple(labels.shape)}")
    if state.device != labels.device:
        raise ValueError(f"region_state is on {state.device}, the labels on {labels.device}")
    if state.numel() and int(state.max()) > FALSE:
        raise ValueError(f"region_state holds {int(state.max())}; its values are 0 (T), 1 (B) and 2 (F)")


def init_region_state(clean_prediction: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255) -> torch.Tensor:
    """Region state before the first step: T where the clean prediction ``[B,H,W]`` is correct, else F."""
    correct = (clean_prediction == labels) & (labels != ignore_index)
    return torch.where(correct, TRUE, FALSE).to(torch.uint8)


def update_region_state(state: torch.Tensor, correct: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """In place: T -> B where the current prediction is wrong (003 Definition 2); ignored pixels (not
    ``valid``) keep their state. Returns ``state``."""
    flip = (state == TRUE) & ~correct
    if valid is not None:
        flip &= valid
    state.masked_fill_(flip, BOUNDARY)
    return state


def region_lambdas(step: int, steps: int) -> tuple[float, float, float]:
    """(lambda1, lambda2, lambda3) of 003 Eq. 4 for iteration ``step`` = t in 1..T."""
    if steps < 1 or not 1 <= step <= steps:
        raise ValueError(f"need 1 <= step <= steps, got step={step}, steps={steps}")
    two_t = 2.0 * steps
    return (two_t - step) / two_t, (step - 1) / two_t, 1.0 / two_t


def region_weight(state: torch.Tensor, step: int, steps: int) -> torch.Tensor:
    """``[B,H,W]`` float weights lambda_{region(i)} for the (already updated) state."""
    l1, l2, l3 = region_lambdas(step, steps)
    table = torch.tensor([l1, l2, l3], dtype=torch.float32, device=state.device)
    return table[state.long()]


def region_counts(state: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[B, 3]`` int64 counts of valid pixels in (T, B, F) per image (for the attack trace)."""
    onehot = torch.nn.functional.one_hot(state.long(), 3) & valid.unsqueeze(-1)  # [B, H, W, 3]
    return onehot.flatten(1, 2).sum(1)
