"""The weighted cross-entropy every attack loss is an instance of (DESIGN.md §2-3).

``L = (1/N_v) sum_i v_i * w_i * CE_i`` where ``w_i`` is the product of the enabled weight terms of a
:class:`Weighting` (SegPGD lambda, RP-PGD regions, CosPGD, uncertainty ``exp(U)``, zero-out ``L^0``).
This eager function is the specification the fused kernels are tested against: it reads readable
PyTorch, materialises what it needs, and is differentiable (float64 ``gradcheck`` in the tests).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .cospgd import ACTIVATIONS, cospgd_weight
from .pixelwise import (
    check_logits_labels,
    check_reduction,
    compute_dtype,
    cross_entropy_map,
    reduce_pixels,
    valid_mask,
)
from .regions import region_weight
from .regions import update_region_state as _update_state  # the keyword argument shadows the name
from .segpgd import SCHEDULES, segpgd_lambda, segpgd_weight
from .uncertainty import MEASURES, uncertainty_weight
from .zero_out import zero_out_weight


@dataclass(frozen=True)
class Weighting:
    """Which per-pixel weight terms multiply the CE (all off = plain CE).

    segpgd: SegPGD schedule (``linear``, ``log``, ``exp``, ``constant`` with ``lam``, ``only_correct``).
    regions: RP-PGD region weights; needs a region state.
    cospgd: ``softmax`` or ``sigmoid`` CosPGD weight (``cospgd_targeted`` uses ``1 - cos``).
    uncertainty: ``margin``, ``max_min``, ``mean_margin`` or ``entropy``; ``detach_uncertainty`` stops
        the gradient through ``exp(U)``.
    zero_out: tau of L^0 (0.75 in 004), or None.
    """

    segpgd: str | None = None
    lam: float | None = None
    regions: bool = False
    cospgd: str | None = None
    cospgd_targeted: bool = False
    uncertainty: str | None = None
    detach_uncertainty: bool = False
    zero_out: float | None = None

    def __post_init__(self) -> None:
        if self.segpgd is not None and self.segpgd not in SCHEDULES:
            raise ValueError(f"segpgd schedule must be one of {SCHEDULES}, got {self.segpgd!r}")
        if self.segpgd == "constant" and (self.lam is None or not 0.0 <= self.lam <= 1.0):
            raise ValueError(f"segpgd='constant' needs lam in [0, 1], got {self.lam!r}")
        if self.cospgd is not None and self.cospgd not in ACTIVATIONS:
            raise ValueError(f"cospgd must be one of {ACTIVATIONS}, got {self.cospgd!r}")
        if self.uncertainty is not None and self.uncertainty not in MEASURES:
            raise ValueError(f"uncertainty must be one of {MEASURES}, got {self.uncertainty!r}")
        if self.zero_out is not None and not 0.0 <= self.zero_out <= 1.0:
            raise ValueError(f"zero_out tau must be a probability in [0, 1], got {self.zero_out!r}")

    @property
    def needs_step(self) -> bool:
        """True when the weight depends on the iteration t of T."""
        return self.regions or self.segpgd in ("linear", "log", "exp")

    @property
    def needs_prediction(self) -> bool:
        return self.segpgd is not None or self.regions or self.zero_out is not None

    def check_arguments(self, step, steps, region_state, labels) -> None:
        """Clear errors for a missing t/T or region state (before any kernel runs)."""
        if self.needs_step and (step is None or steps is None):
            raise ValueError(f"{self.describe()} needs step and steps (t of T)")
        if self.regions and (region_state is None or region_state.shape != labels.shape
                             or region_state.dtype != torch.uint8):
            raise ValueError("regions=True needs region_state, a uint8 tensor shaped like labels")

    def describe(self) -> str:
        parts = [
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) not in (None, False)
        ]
        return "ce" if not parts else " * ".join(parts)


def weighted_cross_entropy_reference(
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
    validate: bool = True,
) -> torch.Tensor:
    """Weighted per-pixel CE in eager PyTorch: the specification the fused kernels are tested against
    (:func:`fastsegadv.ops.weighted_cross_entropy` dispatches to it or to a kernel).

    logits ``[B, C, H, W]`` (any float dtype; fp16/bf16 evaluated in fp32), labels ``[B, H, W]`` int.
    ``step``/``steps`` = t/T (1-based) for the SegPGD schedules and RP-PGD regions. ``region_state``
    ``uint8 [B, H, W]`` is updated in place (T -> B where wrong) when ``update_region_state``.
    Returns a scalar (``mean`` over valid pixels, 0 if none; ``sum``) or ``[B, H, W]`` (``none``) in
    the logits' dtype.
    """
    check_reduction(reduction)
    if validate:
        check_logits_labels(logits, labels, ignore_index)
    per_pixel, valid = weighted_ce_per_pixel(
        logits,
        labels,
        weighting=weighting,
        step=step,
        steps=steps,
        region_state=region_state,
        update_region_state=update_region_state,
        ignore_index=ignore_index,
    )
    return reduce_pixels(per_pixel, valid, reduction).to(logits.dtype)


def weighted_ce_per_pixel(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weighting: Weighting,
    step: int | None,
    steps: int | None,
    region_state: torch.Tensor | None,
    update_region_state: bool,
    ignore_index: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_i * CE_i [B, H, W] in the compute dtype, valid [B, H, W])``: the body of the reference."""
    weighting.check_arguments(step, steps, region_state, labels)

    z = logits.to(compute_dtype(logits))  # [B, C, H, W]
    valid, safe = valid_mask(labels, ignore_index)  # [B, H, W]
    log_probs = F.log_softmax(z, dim=1)  # [B, C, H, W]
    ce = cross_entropy_map(log_probs, safe, valid)  # [B, H, W]

    w: torch.Tensor | None = None

    def times(term: torch.Tensor) -> torch.Tensor:
        return term if w is None else w * term

    correct = None
    if weighting.needs_prediction:
        correct = (z.detach().argmax(1) == labels) & valid  # [B, H, W]
    if weighting.segpgd is not None:
        lam = segpgd_lambda(
            1 if step is None else step, 1 if steps is None else steps, weighting.segpgd, lam=weighting.lam
        )
        w = times(segpgd_weight(correct, lam))
    if weighting.regions:
        if update_region_state:
            _update_state(region_state, correct, valid)
        w = times(region_weight(region_state, step, steps))
    if weighting.cospgd is not None:
        w = times(cospgd_weight(z, safe, activation=weighting.cospgd, targeted=weighting.cospgd_targeted))
    if weighting.uncertainty is not None:
        w = times(uncertainty_weight(log_probs, weighting.uncertainty, detach_weight=weighting.detach_uncertainty))
    if weighting.zero_out is not None:
        p_max = log_probs.detach().amax(1).exp()
        w = times(zero_out_weight(p_max, correct, tau=weighting.zero_out))

    per_pixel = ce if w is None else w.to(ce.dtype) * ce
    per_pixel = torch.where(valid, per_pixel, torch.zeros_like(per_pixel))
    return per_pixel, valid
