"""The fused weighted cross-entropy as an autograd Function over the C++ / Triton kernels, and the
dispatching ``weighted_cross_entropy`` every loss and attack calls.

One pass over the logits computes, per pixel, the CE, the weight of every enabled term of a
:class:`~fastsegadv.losses.Weighting` (csrc/weighting.h, kernels/weighted_ce.py), the RP-PGD state
update (T -> B where wrong) and per-image statistics. On CPU the same pass writes d(sum of losses)/dz
into a new fp32 buffer (never into the logits) and the backward scales it in place by the upstream
gradient; the Triton and CUDA kernels instead recompute the softmax in a backward kernel (no saved
[B, C, H, W] tensor) with the upstream gradient folded in. Reductions are fixed-order sums of per-block
partials: results are bitwise repeatable.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from .._ops import label_counts  # (importing _ops loads the compiled ops and their fake kernels)
from ..backend import choose_backend
from ..contract import NUM_PARAMS, NUM_STATS, UNCERTAINTY_FLAGS, Flag, Param, Stat
from ..outputs import class_prediction
from ..reference.pixelwise import check_logits_labels, check_reduction, reduce_pixels
from ..reference.regions import check_region_state, region_counts, region_lambdas
from ..reference.segpgd import segpgd_lambda
from ..reference.weighted import Weighting, weighted_ce_per_pixel


def encode(
    weighting: Weighting, step: int | None, steps: int | None, update_region_state: bool
) -> tuple[int, list[float]]:
    """Kernel flags and params (:class:`~fastsegadv.contract.Param` layout) of a weighting at t of T.
    Plain ints (``.value``): torch.compile traces this, and enum arithmetic sends dynamo into recursion."""
    flags, params = 0, [1.0] * NUM_PARAMS
    if weighting.segpgd is not None:
        lam = segpgd_lambda(
            1 if step is None else step, 1 if steps is None else steps, weighting.segpgd, lam=weighting.lam
        )
        flags |= Flag.SEGPGD.value
        params[Param.W_CORRECT.value], params[Param.W_WRONG.value] = 1.0 - lam, lam
    if weighting.regions:
        flags |= Flag.REGIONS.value | (Flag.UPDATE_STATE.value if update_region_state else 0)
        lambdas = region_lambdas(step, steps)
        params[Param.LAMBDA_T.value], params[Param.LAMBDA_B.value], params[Param.LAMBDA_F.value] = lambdas
    if weighting.cospgd is not None:
        flags |= Flag.COS_SOFTMAX.value if weighting.cospgd == "softmax" else Flag.COS_SIGMOID.value
        flags |= Flag.COS_TARGETED.value if weighting.cospgd_targeted else 0
    if weighting.uncertainty is not None:
        flags |= UNCERTAINTY_FLAGS[weighting.uncertainty].value
        flags |= Flag.UNC_DETACH.value if weighting.detach_uncertainty else 0
    if weighting.zero_out is not None:
        flags |= Flag.ZERO_OUT.value
        params[Param.TAU.value] = weighting.zero_out
    return flags, params


class Kernel(NamedTuple):
    """Which kernels run a fused loss: the implementation and whether they upsample low-resolution logits on
    the fly (ops/upsample_weighted_ce.py). The custom op carries it by :attr:`name` (ops take primitive types)."""

    impl: str  # "cpp" (C++ CPU / CUDA ops) or "triton"
    upsample: bool = False
    align_corners: bool = False

    @property
    def name(self) -> str:
        if not self.upsample:
            return self.impl
        base = "upsample" if self.impl == "cpp" else "triton_upsample"
        return base + ("_align_corners" if self.align_corners else "")

    def functions(self):
        """(forward, backward) with the op contract of csrc/ops.cpp, called with keywords after
        ``ignore_index`` (the upsampling ones get ``align_corners`` here)."""
        if self.impl == "cpp" and not self.upsample:
            return torch.ops.fastsegadv.weighted_ce_forward, torch.ops.fastsegadv.weighted_ce_backward
        if self.impl == "cpp":
            ops = torch.ops.fastsegadv
            fwd, bwd = ops.upsample_weighted_ce_forward, ops.upsample_weighted_ce_backward
        elif self.upsample:
            from ..kernels import upsample_weighted_ce as up  # triton is optional: imported on use

            fwd, bwd = up.upsample_weighted_ce_forward, up.upsample_weighted_ce_backward
        else:
            from ..kernels import weighted_ce  # triton is optional: imported on use

            return weighted_ce.weighted_ce_forward, weighted_ce.weighted_ce_backward
        return functools.partial(fwd, align_corners=self.align_corners), functools.partial(
            bwd, align_corners=self.align_corners)

    def returns_forward_grad(self, device: torch.device, with_grad: bool, reduction: str) -> bool:
        """Only the C++ CPU kernels write the gradient in the forward pass. The upsampling one's can only be
        scaled afterwards by a scalar (its per-pixel upstream lives at label resolution): "none" recomputes."""
        return (with_grad and self.impl == "cpp" and device.type == "cpu"
                and not (self.upsample and reduction == "none"))


KERNELS = {k.name: k for k in (Kernel("cpp"), Kernel("triton")) + tuple(
    Kernel(impl, True, ac) for impl in ("cpp", "triton") for ac in (False, True))}


# The params are a tensor (CPU float32 [6]) so that an attack step whose weights change with t (SegPGD
# lambda(t), RP-PGD lambdas) compiles to one graph: torch.compile would bake Python floats in as constants.
@torch.library.custom_op("fastsegadv::fused_weighted_ce", mutates_args=())
def fused_weighted_ce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    region_state: torch.Tensor,
    params: torch.Tensor,
    flags: int,
    ignore_index: int,
    reduction: str,
    kernel: str,
    with_grad: bool,
    with_prediction: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``logits [B,C,h,w]``, ``labels [B,H,W]`` int64, ``region_state`` uint8 ``[B,H,W]`` or empty -> (loss:
    scalar or ``[B,H,W]`` per pixel, stats ``[B, 6]`` float64, the CPU forward's gradient (fp32, already
    divided by N_v for a mean) or empty, the region state after this pass's update (a new tensor; the
    input is not modified, so the op is functional and autograd can be registered) or empty, N_v, and with
    ``with_prediction`` each pixel's argmax ``[B,H,W]`` int64 from the same pass, else empty)."""
    chosen = KERNELS[kernel]
    if with_prediction and chosen.upsample:
        raise ValueError("with_prediction needs logits at the labels' resolution (not the upsampling kernels)")
    prediction = (torch.empty(labels.shape, dtype=torch.int64, device=labels.device) if with_prediction
                  else labels.new_empty((0,), dtype=torch.int64))
    fwd, _ = chosen.functions()
    state_after = region_state.clone() if flags & Flag.REGIONS.value else region_state.new_empty((0,))
    pre_scale = 1.0
    with_grad = chosen.returns_forward_grad(logits.device, with_grad, reduction)
    if with_grad and reduction == "mean":
        # 1/N_v applied in the forward pass (reading a CPU scalar costs no device sync)
        pre_scale = 1.0 / max(int(label_counts(labels, logits.shape[1], ignore_index)[0]), 1)
    # params stay a tensor down to the kernels, which read them from memory (a CUDA-graph replay then
    # applies each step's lambda(t); a Python float would be frozen at the recorded step)
    per_pixel, stats, grad = fwd(
        logits,
        labels,
        state_after if flags & Flag.REGIONS.value else region_state,
        params.to(logits.device),
        flags,
        ignore_index,
        per_pixel=reduction == "none",
        with_grad=with_grad,
        grad_scale=pre_scale,
        **({"prediction": prediction} if with_prediction else {}),
    )
    n_valid = stats[:, Stat.VALID].sum()
    if reduction == "none":
        out = per_pixel.to(logits.dtype)
    elif reduction == "sum":
        out = stats[:, Stat.LOSS].sum().to(logits.dtype)
    else:
        out = (stats[:, Stat.LOSS].sum() / n_valid.clamp_min(1)).to(logits.dtype)
    return out, stats, grad, state_after, n_valid, prediction


@fused_weighted_ce.register_fake
def _fused_weighted_ce_fake(logits, labels, region_state, params, flags, ignore_index, reduction, kernel, with_grad,
                            with_prediction=False):
    out = logits.new_empty(tuple(labels.shape) if reduction == "none" else ())
    stats = logits.new_empty((labels.shape[0], NUM_STATS), dtype=torch.float64)
    grad = logits.new_empty(
        tuple(logits.shape) if KERNELS[kernel].returns_forward_grad(logits.device, with_grad, reduction) else (0,),
        dtype=torch.float32,
    )
    state_after = torch.empty_like(region_state) if flags & Flag.REGIONS.value else region_state.new_empty((0,))
    if with_prediction and KERNELS[kernel].upsample:
        raise ValueError("with_prediction needs logits at the labels' resolution (not the upsampling kernels)")
    prediction = labels.new_empty(tuple(labels.shape) if with_prediction else (0,), dtype=torch.int64)
    return out, stats, grad, state_after, logits.new_empty((), dtype=torch.float64), prediction


@torch.library.custom_op("fastsegadv::fused_weighted_ce_recompute", mutates_args=())
def fused_weighted_ce_recompute(
    scale: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    region_state: torch.Tensor,
    params: torch.Tensor,
    flags: int,
    ignore_index: int,
    kernel: str,
) -> torch.Tensor:
    """``d(sum_i scale_i * w_i CE_i)/dlogits`` recomputed from the logits (``scale`` scalar or ``[B,H,W]``)."""
    _, bwd = KERNELS[kernel].functions()
    return bwd(scale, logits, labels, region_state, params.to(logits.device), flags, ignore_index)


@fused_weighted_ce_recompute.register_fake
def _fused_weighted_ce_recompute_fake(scale, logits, labels, region_state, params, flags, ignore_index, kernel):
    return torch.empty_like(logits)


def _traced(t: torch.Tensor) -> bool:
    """True while torch.compile / AOTAutograd / make_fx trace (a fake tensor has no value to read)."""
    return torch.compiler.is_compiling() or torch._guards.detect_fake_mode((t,)) is not None


def _setup_context(ctx, inputs, output):
    logits, labels, _, params, flags, ignore_index, reduction, kernel = inputs[:8]
    _, _, grad, state_after, n_valid, _ = output
    ctx.save_for_backward(logits, labels, state_after, params, n_valid, grad)
    ctx.args = (flags & ~Flag.UPDATE_STATE.value, ignore_index, reduction, kernel)
    # Only the loss is differentiable. Without this, autograd would materialise a zero gradient for every
    # other output in each backward, the [B, C, H, W] gradient buffer included: a fill_ that cost more
    # than the fused kernel itself (2.5x slower attacks, issue 11).
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_out, _grad_stats, _grad_buffer, _grad_state, _grad_n_valid, _grad_prediction):
    logits, labels, state, params, n_valid, buffer = ctx.saved_tensors
    flags, ignore_index, reduction, kernel = ctx.args
    if grad_out is None:  # only the statistics were used downstream
        return None, None, None, None, None, None, None, None, None, None
    if buffer.numel():  # the forward's gradient (CPU), already divided by N_v for a mean
        if reduction == "none":
            grad = buffer * grad_out.float().unsqueeze(1)
        elif _traced(grad_out) or float(grad_out) != 1.0:  # a CPU scalar: no device sync
            grad = buffer * grad_out.float()
        else:
            grad = buffer
        grad = grad.to(logits.dtype)
    else:  # recompute with the upstream gradient folded in: g/N_v (mean), g (sum), g per pixel (none)
        if reduction == "mean":
            scale = (grad_out.float() / n_valid.clamp_min(1).float()).reshape(())
        elif reduction == "sum":
            scale = grad_out.float().reshape(())
        else:
            scale = grad_out.float()
        grad = fused_weighted_ce_recompute(scale, logits, labels, state, params, flags, ignore_index, kernel)
    return grad, None, None, None, None, None, None, None, None, None


fused_weighted_ce.register_autograd(_backward, setup_context=_setup_context)


def fused_loss(logits, labels, region_state, params, flags, ignore_index, reduction, kernel, with_prediction=False):
    """The fused loss, ``[B, 6]`` stats and (``with_prediction``) the ``[B, H, W]`` argmax, else None, through
    :func:`fused_weighted_ce` (autograd included); ``region_state`` is updated in place when ``flags`` ask for
    it."""
    with_grad = torch.is_grad_enabled() and logits.requires_grad
    if not isinstance(params, torch.Tensor):
        params = torch.tensor(params, dtype=torch.float32)
    out, stats, _, state_after, _, prediction = fused_weighted_ce(
        logits, labels.long(), region_state, params, flags, ignore_index, reduction, kernel, with_grad,
        with_prediction
    )
    if flags & Flag.UPDATE_STATE.value:
        region_state.copy_(state_after)  # RP-PGD's T -> B update of this pass
    return out, stats, prediction if with_prediction else None


def checked_step_arguments(weighting: Weighting, step, steps, region_state, labels, params):
    """(step, steps) after :meth:`Weighting.check_arguments`; with ``params`` (t already encoded in them)
    any valid t gives the kernel flags, so (1, 1)."""
    if params is not None:
        step, steps = 1, 1
    weighting.check_arguments(step, steps, region_state, labels)
    return step, steps


def weighted_fused_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weighting: Weighting,
    step: int | None,
    steps: int | None,
    region_state: torch.Tensor | None,
    update_region_state: bool,
    params: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    kernel: Kernel,
    with_prediction: bool = False,
):
    """:func:`fused_loss` of a weighting at t: flags and parameters encoded here unless ``params`` are
    given; the region state is passed only when the weighting uses it."""
    flags, encoded = encode(weighting, step, steps, update_region_state)
    state = region_state if weighting.regions else torch.empty(0, dtype=torch.uint8, device=logits.device)
    return fused_loss(
        logits, labels, state, encoded if params is None else params, flags, ignore_index, reduction, kernel.name,
        with_prediction,
    )


def check_params_need_kernel(params, weighting: Weighting) -> None:
    if params is not None and weighting.needs_step:
        raise ValueError(
            "params= (the kernel parameters of t) needs the cpp or triton backend; the reference takes step= and steps="
        )


def reference_stats(logits, labels, per_pixel, region_state, ignore_index) -> torch.Tensor:
    """``[B, 6]`` float64 statistics of the reference path (same layout as the kernels')."""
    valid = labels != ignore_index
    correct = (logits.detach().argmax(1) == labels) & valid
    b = labels.shape[0]
    regions = (
        region_counts(region_state, valid)
        if region_state is not None and region_state.numel()
        else torch.zeros((b, 3), dtype=torch.int64, device=labels.device)
    )
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
    params: torch.Tensor | None = None,
    return_prediction: bool = False,
):
    """Weighted per-pixel CE (DESIGN.md §2-3) on the chosen backend (:mod:`fastsegadv.backend`).

    Same contract as :func:`~fastsegadv.reference.weighted.weighted_cross_entropy_reference`; ``backend``
    (or ``$FASTSEGADV_BACKEND``) forces ``reference``, ``cpp`` or ``triton``. With
    ``return_stats`` also returns ``[B, 6]`` float64 per-image (loss sum, valid, correct, true,
    boundary, false) from the same pass, without a host sync. ``params``: the kernel parameters of this
    weighting at t (``encode(...)[1]`` as a float32 ``[6]`` CPU tensor), given by graph-captured attack
    steps so that t is an input of the graph, not a constant baked into it (the reference uses ``step``).
    ``return_prediction``: also returns each pixel's class prediction (argmax of the logits, first index on
    ties, int64 ``[B, H, W]``) from the same pass over the logits: ``(loss, [stats,] prediction)``; a pixel
    with a NaN logit gets an unspecified class (torch's argmax returns the NaN's index).
    ``validate=False`` skips the checks that read the labels and region state on the host (a sync): the GPU
    kernels (CUDA, Triton) then treat labels outside [0, C) as ignored and region states above 2 as
    weightless; the C++ CPU kernel rejects such labels.
    """
    check_reduction(reduction)
    if validate:
        check_logits_labels(logits, labels, ignore_index)
    step, steps = checked_step_arguments(weighting, step, steps, region_state, labels, params)
    if validate and weighting.regions:
        check_region_state(region_state, labels)
    name = choose_backend("weighted_ce", logits, backend)
    if name == "reference":
        check_params_need_kernel(params, weighting)
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
        out = reduce_pixels(per_pixel, valid, reduction).to(logits.dtype)
        stats = (reference_stats(logits, labels, per_pixel, region_state if weighting.regions else None, ignore_index)
                 if return_stats else None)
        prediction = class_prediction(logits.detach()) if return_prediction else None
    else:
        out, stats, prediction = weighted_fused_loss(
            logits, labels, weighting=weighting, step=step, steps=steps, region_state=region_state,
            update_region_state=update_region_state, params=params, ignore_index=ignore_index, reduction=reduction,
            kernel=Kernel(name), with_prediction=return_prediction,
        )
    if not (return_stats or return_prediction):
        return out
    return (out,) + ((stats,) if return_stats else ()) + ((prediction,) if return_prediction else ())
