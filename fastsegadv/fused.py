"""The fused weighted cross-entropy as an autograd Function over the C++ / Triton kernels, and the
dispatching ``weighted_cross_entropy`` every loss and attack calls.

One pass over the logits computes, per pixel, the CE, the weight of every enabled term of a
:class:`~fastsegadv.losses.Weighting` (csrc/weighting.h, kernels/weighted_ce.py), the RP-PGD state
update (T -> B where wrong) and per-image statistics. On CPU the same pass writes d(sum of losses)/dz
into a new fp32 buffer (never into the logits) and the backward scales it in place by the upstream
gradient; the Triton and CUDA kernels instead recompute the softmax in a backward kernel (no saved
[B, C, H, W] tensor) with the upstream gradient folded in. Reductions are fixed-order sums of per-block partials: results are bitwise repeatable.
"""
from __future__ import annotations

import torch

from . import _ops  # noqa: F401  (loads the compiled ops and their fake kernels)
from .backend import choose_backend
from .losses.pixelwise import check_logits_labels, check_reduction, reduce_pixels
from .losses.regions import region_counts, region_lambdas
from .losses.segpgd import segpgd_lambda
from .losses.weighted import Weighting, weighted_ce_per_pixel

# csrc/weighting.h
FLAG_SEGPGD, FLAG_REGIONS, FLAG_UPDATE_STATE = 1 << 0, 1 << 1, 1 << 2
FLAG_COS_SOFTMAX, FLAG_COS_SIGMOID, FLAG_COS_TARGETED = 1 << 3, 1 << 4, 1 << 5
FLAG_UNC = {"margin": 1 << 6, "max_min": 1 << 7, "mean_margin": 1 << 8, "entropy": 1 << 9}
FLAG_UNC_DETACH, FLAG_ZERO_OUT = 1 << 10, 1 << 11
STAT_NAMES = ("loss", "valid", "correct", "true", "boundary", "false")


def encode(weighting: Weighting, step: int | None, steps: int | None, update_region_state: bool) -> tuple[int, list[float]]:
    """Kernel flags and params ``[w_correct, w_wrong, lambda_T, lambda_B, lambda_F, tau]`` of a weighting at t of T."""
    flags, params = 0, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    if weighting.segpgd is not None:
        lam = segpgd_lambda(1 if step is None else step, 1 if steps is None else steps, weighting.segpgd, lam=weighting.lam)
        flags |= FLAG_SEGPGD
        params[0], params[1] = 1.0 - lam, lam
    if weighting.regions:
        flags |= FLAG_REGIONS | (FLAG_UPDATE_STATE if update_region_state else 0)
        params[2:5] = region_lambdas(step, steps)
    if weighting.cospgd is not None:
        flags |= FLAG_COS_SOFTMAX if weighting.cospgd == "softmax" else FLAG_COS_SIGMOID
        flags |= FLAG_COS_TARGETED if weighting.cospgd_targeted else 0
    if weighting.uncertainty is not None:
        flags |= FLAG_UNC[weighting.uncertainty] | (FLAG_UNC_DETACH if weighting.detach_uncertainty else 0)
    if weighting.zero_out is not None:
        flags |= FLAG_ZERO_OUT
        params[5] = weighting.zero_out
    return flags, params


def _kernels(backend):
    """(forward, backward) kernels; ``backend`` is "cpp", "triton", or ("upsample", align_corners) for the
    C++ kernels that read low-resolution logits and upsample them on the fly (fused_upsample.py)."""
    if isinstance(backend, tuple):
        align_corners = backend[1]
        fwd, bwd = torch.ops.fastsegadv.upsample_weighted_ce_forward, torch.ops.fastsegadv.upsample_weighted_ce_backward
        return (lambda z, y, st, prm, fl, ign, pp, wg, gs: fwd(z, y, st, prm, fl, ign, align_corners, pp, wg, gs),
                lambda gs, z, y, st, prm, fl, ign: bwd(gs, z, y, st, prm, fl, ign, align_corners))
    if backend == "cpp":
        return torch.ops.fastsegadv.weighted_ce_forward, torch.ops.fastsegadv.weighted_ce_backward
    from .kernels import weighted_ce  # Triton

    return weighted_ce.weighted_ce_forward, weighted_ce.weighted_ce_backward


class FusedWeightedCrossEntropy(torch.autograd.Function):
    """``(logits [B,C,H,W], labels [B,H,W], region_state uint8 [B,H,W] or empty, ...) -> (loss, stats [B, 6])``."""

    @staticmethod
    def forward(ctx, logits, labels, region_state, params, flags, ignore_index, reduction, backend, with_grad):
        fwd, _ = _kernels(backend)
        # The CPU kernel also returns d(sum of per-pixel losses)/dz (fp32) from the same pass; the backward
        # then only scales it in place. Other kernels return an empty tensor and recompute in backward.
        # with_grad comes from the caller: inside forward, grad mode is always off.
        pre_scale = 1.0
        if with_grad and reduction == "mean" and logits.device.type == "cpu":
            # 1/N_v applied in the forward pass (reading a CPU scalar costs no device sync)
            pre_scale = 1.0 / max(int((labels != ignore_index).sum()), 1)
        per_pixel, stats, grad = fwd(logits, labels, region_state, params, flags, ignore_index,
                                     reduction == "none", with_grad, pre_scale)
        ctx.grad_buffer = grad if grad.numel() else None
        n_valid = stats[:, 1].sum()
        if reduction == "none":
            out = per_pixel.to(logits.dtype)
        elif reduction == "sum":
            out = stats[:, 0].sum().to(logits.dtype)
        else:
            out = (stats[:, 0].sum() / n_valid.clamp_min(1)).to(logits.dtype)
        saved_state = region_state.clone() if flags & FLAG_REGIONS else region_state  # state after the update
        ctx.save_for_backward(logits, labels, saved_state, n_valid)
        ctx.args = (params, flags & ~FLAG_UPDATE_STATE, ignore_index, reduction, backend)
        ctx.mark_non_differentiable(stats)
        return out, stats

    @staticmethod
    def backward(ctx, grad_out, _grad_stats):
        logits, labels, state, n_valid = ctx.saved_tensors
        params, flags, ignore_index, reduction, backend = ctx.args
        buffer = ctx.grad_buffer
        if buffer is not None:  # the forward's gradient (CPU), already divided by N_v for a mean
            ctx.grad_buffer = None  # used once; a second backward (retain_graph) recomputes
            if reduction == "none":
                buffer.mul_(grad_out.float().unsqueeze(1))
            elif float(grad_out) != 1.0:  # a CPU scalar: no device sync
                buffer.mul_(grad_out.float())
            grad = buffer if buffer.dtype == logits.dtype else buffer.to(logits.dtype)
        else:  # recompute with the upstream gradient folded in: g/N_v (mean), g (sum), g per pixel (none)
            if reduction == "mean":
                scale = (grad_out.float() / n_valid.clamp_min(1).float()).reshape(())
            elif reduction == "sum":
                scale = grad_out.float().reshape(())
            else:
                scale = grad_out.float()
            _, bwd = _kernels(backend)
            grad = bwd(scale, logits, labels, state, params, flags, ignore_index)
        return grad, None, None, None, None, None, None, None, None


def reference_stats(logits, labels, per_pixel, region_state, ignore_index) -> torch.Tensor:
    """``[B, 6]`` float64 statistics of the reference path (same layout as the kernels')."""
    valid = labels != ignore_index
    correct = (logits.detach().argmax(1) == labels) & valid
    b = labels.shape[0]
    regions = (region_counts(region_state, valid) if region_state is not None and region_state.numel()
               else torch.zeros((b, 3), dtype=torch.int64, device=labels.device))
    cols = [per_pixel.detach().double().flatten(1).sum(1), valid.flatten(1).sum(1), correct.flatten(1).sum(1)]
    return torch.cat([torch.stack(cols, 1).double(), regions.double()], 1)


def weighted_cross_entropy(
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
    backend: str | None = None,
    return_stats: bool = False,
):
    """Weighted per-pixel CE (DESIGN.md §2-3) on the chosen backend (:mod:`fastsegadv.backend`).

    Same contract as :func:`~fastsegadv.losses.weighted.weighted_cross_entropy_reference`; ``backend``
    (or ``$FASTSEGADV_BACKEND``) forces ``reference``, ``cpp`` or ``triton``. With
    ``return_stats`` also returns ``[B, 6]`` float64 per-image (loss sum, valid, correct, true,
    boundary, false) from the same pass, without a host sync.
    """
    check_reduction(reduction)
    if validate:
        check_logits_labels(logits, labels, ignore_index)
    weighting.check_arguments(step, steps, region_state, labels)
    name = choose_backend(logits, backend)
    if name == "reference":
        per_pixel, valid = weighted_ce_per_pixel(
            logits, labels, weighting=weighting, step=step, steps=steps, region_state=region_state,
            update_region_state=update_region_state, ignore_index=ignore_index)
        out = reduce_pixels(per_pixel, valid, reduction).to(logits.dtype)
        if not return_stats:
            return out
        return out, reference_stats(logits, labels, per_pixel, region_state if weighting.regions else None, ignore_index)
    flags, params = encode(weighting, step, steps, update_region_state)
    state = region_state if weighting.regions else torch.empty(0, dtype=torch.uint8, device=logits.device)
    with_grad = torch.is_grad_enabled() and logits.requires_grad
    out, stats = FusedWeightedCrossEntropy.apply(logits, labels.long(), state, params, flags, ignore_index,
                                                 reduction, name, with_grad)
    return (out, stats) if return_stats else out
