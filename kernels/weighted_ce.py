"""Triton kernels of the fused weighted cross-entropy (fastsegadv.ops.weighted_ce; formulas: csrc/weighting.h).

Layout (KERNELS.md): a program covers one image and BLOCK_P consecutive pixels; the classes are read
in chunks of C_CHUNK at stride ``stride_c`` (H*W for NCHW, 1 for channels_last), so every reduction
(max/argmax, second max, min, sum exp, sum exp*z, sum exp^2, sum sigmoid^2, z_y) runs along axis 0 of
a ``[C_CHUNK, BLOCK_P]`` register tile in fp32. The weight flags are constexpr: each mode compiles to
its own kernel. Statistics are written per program and summed in a fixed order on the host side
(no atomics). Runs on CPU tensors under ``TRITON_INTERPRET=1`` (set before importing triton).

This module imports only torch, triton and the kernel contract (fastsegadv/contract.py).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..contract import NUM_PARAMS, NUM_STATS, Flag
from .device import on_device


class _Flag(tl.constexpr):
    """A flag bit of csrc/weighting.h as a ``tl.constexpr``: the only kind of module global Triton's compiler
    lets @jit code read (a plain int runs in the interpreter but does not compile for a GPU). ``int & flag``
    works too, as the interpreter passes the FLAGS argument as an int; host code reads ``.value``."""

    def __rand__(self, other):
        return _Flag(int(getattr(other, "value", other)) & self.value)

    def __or__(self, other):
        return _Flag(int(getattr(other, "value", other)) | self.value)

    def __invert__(self):
        return _Flag(~self.value)

    __and__, __ror__ = __rand__, __or__


# the flags of fastsegadv/contract.py, as constexpr globals the @jit code reads by name
SEGPGD = _Flag(int(Flag.SEGPGD))
REGIONS = _Flag(int(Flag.REGIONS))
UPDATE_STATE = _Flag(int(Flag.UPDATE_STATE))
COS_SOFTMAX = _Flag(int(Flag.COS_SOFTMAX))
COS_SIGMOID = _Flag(int(Flag.COS_SIGMOID))
COS_TARGETED = _Flag(int(Flag.COS_TARGETED))
UNC_MARGIN = _Flag(int(Flag.UNC_MARGIN))
UNC_MAXMIN = _Flag(int(Flag.UNC_MAXMIN))
UNC_MEANMARGIN = _Flag(int(Flag.UNC_MEANMARGIN))
UNC_ENTROPY = _Flag(int(Flag.UNC_ENTROPY))
UNC_DETACH = _Flag(int(Flag.UNC_DETACH))
ZERO_OUT = _Flag(int(Flag.ZERO_OUT))


def kernel_params(params, device: torch.device) -> torch.Tensor:
    """The kernel parameters as an fp32 ``[6]`` tensor on ``device``: the kernels read them from memory, so
    a CUDA-graph replay of a captured attack step sees each step's lambda(t), not the recorded one."""
    p = torch.as_tensor(params, dtype=torch.float32)
    if p.numel() != NUM_PARAMS:
        raise ValueError(f"params must have {NUM_PARAMS} entries, got {p.numel()}")
    return p.to(device).contiguous()


@triton.jit
def load_params(params_ptr):
    """The six fp32 kernel parameters (w_correct, w_wrong, lambda_T, lambda_B, lambda_F, tau) from memory."""
    return (tl.load(params_ptr + 0), tl.load(params_ptr + 1), tl.load(params_ptr + 2), tl.load(params_ptr + 3),
            tl.load(params_ptr + 4), tl.load(params_ptr + 5))


@triton.jit
def load_tile(z_base, offs_c, mask, stride_c, o00, o01, o10, o11, ly0, ly1, lx0, lx1, UPSAMPLE: tl.constexpr):
    """``[C_CHUNK, BLOCK_P]`` fp32 logits of classes ``offs_c``: read at pixel offsets ``o00`` or, with
    UPSAMPLE, interpolated bilinearly from the four taps ``o..`` with row weights ``ly0, ly1`` and column
    weights ``lx0, lx1`` (F.interpolate's order of operations); 0 where ``mask`` is off."""
    base = z_base + offs_c[:, None] * stride_c
    if UPSAMPLE:
        t00 = tl.load(base + o00[None, :], mask=mask, other=0.0).to(tl.float32)
        t01 = tl.load(base + o01[None, :], mask=mask, other=0.0).to(tl.float32)
        t10 = tl.load(base + o10[None, :], mask=mask, other=0.0).to(tl.float32)
        t11 = tl.load(base + o11[None, :], mask=mask, other=0.0).to(tl.float32)
        top = lx0[None, :] * t00 + lx1[None, :] * t01
        bot = lx0[None, :] * t10 + lx1[None, :] * t11
        v = ly0[None, :] * top + ly1[None, :] * bot
    else:
        v = tl.load(base + o00[None, :], mask=mask, other=0.0).to(tl.float32)
    return v


@triton.jit
def reductions(z_base, y, valid, o00, o01, o10, o11, ly0, ly1, lx0, lx1, pmask, C, stride_c,
                FLAGS: tl.constexpr, C_CHUNK: tl.constexpr, BLOCK_P: tl.constexpr, NUM_CHUNKS: tl.constexpr,
                UPSAMPLE: tl.constexpr):
    """Class reductions of a [C, BLOCK_P] tile (read by :func:`load_tile`): max m, argmax a, second max
    m2/b2, min mn/bn, S, Sz, S2, Q2, z_y (all fp32 [BLOCK_P])."""
    m = tl.full([BLOCK_P], float("-inf"), tl.float32)
    a = tl.zeros([BLOCK_P], tl.int32)
    for ci in range(NUM_CHUNKS):
        offs_c = ci * C_CHUNK + tl.arange(0, C_CHUNK)
        mask = (offs_c[:, None] < C) & pmask[None, :]
        x = tl.where(mask, load_tile(z_base, offs_c, mask, stride_c, o00, o01, o10, o11, ly0, ly1, lx0, lx1,
                                      UPSAMPLE), float("-inf"))
        cm = tl.max(x, axis=0)
        ca = tl.argmax(x, axis=0).to(tl.int32) + ci * C_CHUNK
        upd = cm > m
        a = tl.where(upd, ca, a)
        m = tl.where(upd, cm, m)
    m = tl.where(pmask, m, 0.0)  # out-of-range pixels: keep the arithmetic finite
    m2 = tl.full([BLOCK_P], float("-inf"), tl.float32)
    b2 = tl.where(a == 0, 1, 0).to(tl.int32)
    mn = tl.full([BLOCK_P], float("inf"), tl.float32)
    bn = tl.zeros([BLOCK_P], tl.int32)
    S = tl.zeros([BLOCK_P], tl.float32)
    Sz = tl.zeros([BLOCK_P], tl.float32)
    S2 = tl.zeros([BLOCK_P], tl.float32)
    Q2 = tl.zeros([BLOCK_P], tl.float32)
    zy = tl.zeros([BLOCK_P], tl.float32)
    for ci in range(NUM_CHUNKS):
        offs_c = ci * C_CHUNK + tl.arange(0, C_CHUNK)
        cmask = offs_c[:, None] < C
        mask = cmask & pmask[None, :]
        x = load_tile(z_base, offs_c, mask, stride_c, o00, o01, o10, o11, ly0, ly1, lx0, lx1, UPSAMPLE)
        d = tl.where(mask, x - m[None, :], 0.0)
        e = tl.where(mask, tl.exp(d), 0.0)
        S += tl.sum(e, axis=0)
        zy += tl.sum(tl.where(offs_c[:, None] == y[None, :], x, 0.0), axis=0)
        if FLAGS & UNC_ENTROPY:
            Sz += tl.sum(e * d, axis=0)
        if FLAGS & COS_SOFTMAX:
            S2 += tl.sum(e * e, axis=0)
        if FLAGS & COS_SIGMOID:
            s = tl.where(mask, tl.sigmoid(x), 0.0)
            Q2 += tl.sum(s * s, axis=0)
        if FLAGS & UNC_MARGIN:
            xo = tl.where(mask & (offs_c[:, None] != a[None, :]), x, float("-inf"))
            cm = tl.max(xo, axis=0)
            ca = tl.argmax(xo, axis=0).to(tl.int32) + ci * C_CHUNK
            upd = cm > m2
            b2 = tl.where(upd, ca, b2)
            m2 = tl.where(upd, cm, m2)
        if FLAGS & UNC_MAXMIN:
            xm = tl.where(mask, x, float("inf"))
            cm = tl.min(xm, axis=0)
            ca = tl.argmin(xm, axis=0).to(tl.int32) + ci * C_CHUNK
            upd = cm < mn
            bn = tl.where(upd, ca, bn)
            mn = tl.where(upd, cm, mn)
    return m, a, m2, b2, mn, bn, S, Sz, S2, Q2, zy


@triton.jit
def pixel_terms(m, a, m2, b2, mn, bn, S, Sz, S2, Q2, zy, y, valid, state, C,
                 w_correct, w_wrong, lam_t, lam_b, lam_f, tau, FLAGS: tl.constexpr):
    """Loss w*CE and gradient coefficients (alpha, beta, g_y, g_a, g_b, index b) per pixel; new state."""
    S_safe = tl.where(valid, S, 1.0)
    logS = tl.log(S_safe)
    ce = (m + logS) - zy
    p1 = 1.0 / S_safe
    correct = valid & (a == y)
    w = tl.full(m.shape, 1.0, tl.float32)
    if FLAGS & SEGPGD:
        w = w * tl.where(correct, w_correct, w_wrong)
    new_state = state
    if FLAGS & REGIONS:
        if FLAGS & UPDATE_STATE:
            new_state = tl.where((state == 0) & (~correct) & valid, 1, state).to(tl.uint8)
        w = w * tl.where(new_state == 0, lam_t, tl.where(new_state == 1, lam_b, lam_f))
    if FLAGS & COS_SOFTMAX:
        cosv = tl.exp(zy - m) / tl.maximum(tl.sqrt(S2), 1e-30)
        if FLAGS & COS_TARGETED:
            cosv = 1.0 - cosv
        w = w * cosv
    if FLAGS & COS_SIGMOID:
        cosv = tl.sigmoid(zy) / tl.maximum(tl.sqrt(Q2), 1e-12)
        if FLAGS & COS_TARGETED:
            cosv = 1.0 - cosv
        w = w * cosv
    if FLAGS & ZERO_OUT:
        w = tl.where((~correct) & (p1 >= tau), 0.0, w)
    dA = tl.zeros(m.shape, tl.float32)
    dB = tl.zeros(m.shape, tl.float32)
    dGa = tl.zeros(m.shape, tl.float32)
    dGb = tl.zeros(m.shape, tl.float32)
    b = tl.full(m.shape, -1, tl.int32)
    if FLAGS & UNC_ENTROPY:
        H = logS - Sz / S_safe
        inv_log_c = 1.0 / tl.log(C.to(tl.float32))
        w = w * tl.exp(H * inv_log_c)
        dA = -(H - logS) * inv_log_c
        dB = dB - inv_log_c
    if FLAGS & UNC_MARGIN:
        p2 = tl.exp(m2 - m) * p1
        w = w * tl.exp(1.0 - (p1 - p2))
        dA = p1 - p2
        dGa = -p1
        dGb = p2
        b = b2
    if FLAGS & UNC_MAXMIN:
        p2 = tl.exp(mn - m) * p1
        w = w * tl.exp(1.0 - (p1 - p2))
        dA = p1 - p2
        dGa = -p1
        dGb = p2
        b = bn
    if FLAGS & UNC_MEANMARGIN:
        cf = C.to(tl.float32)
        k = cf / (cf - 1.0)
        w = w * tl.exp(1.0 - (cf * p1 - 1.0) / (cf - 1.0))
        dA = k * p1
        dGa = -k * p1
    w = tl.where(valid, w, 0.0)
    ce = tl.where(valid, ce, 0.0)
    loss = w * ce
    alpha = w
    beta = tl.zeros(m.shape, tl.float32)
    g_a = tl.zeros(m.shape, tl.float32)
    g_b = tl.zeros(m.shape, tl.float32)
    if FLAGS & (UNC_ENTROPY | UNC_MARGIN | UNC_MAXMIN | UNC_MEANMARGIN):
        if not (FLAGS & UNC_DETACH):
            k2 = w * ce
            alpha = alpha + k2 * dA
            beta = k2 * dB
            g_a = k2 * dGa
            g_b = k2 * dGb
    return loss, alpha, beta, -w, g_a, g_b, b, correct, new_state


@triton.jit
def forward_block(z_base, y_ptr, state_ptr, loss_ptr, pred_ptr, out, offs_p, pmask, o00, o01, o10, o11, ly0, ly1,
                   lx0, lx1, w_correct, w_wrong, lam_t, lam_b, lam_f, tau, C, stride_c, ignore_index,
                   FLAGS: tl.constexpr, WRITE_LOSS: tl.constexpr, C_CHUNK: tl.constexpr, BLOCK_P: tl.constexpr,
                   NUM_CHUNKS: tl.constexpr, UPSAMPLE: tl.constexpr, WRITE_PREDICTION: tl.constexpr):
    """Loss, region update, the 6 statistics (written to ``out``) and, with ``WRITE_PREDICTION``, the argmax of
    the pixels ``offs_p`` of one image (``y_ptr``, ``state_ptr``, ``loss_ptr``, ``pred_ptr`` point at that
    image)."""
    lab = tl.load(y_ptr + offs_p, mask=pmask, other=ignore_index)
    valid = pmask & (lab != ignore_index) & (lab >= 0) & (lab < C)  # out of range (validate=False): ignored
    y = tl.where(valid, lab, -1).to(tl.int32)
    m, a, m2, b2, mn, bn, S, Sz, S2, Q2, zy = reductions(
        z_base, y, valid, o00, o01, o10, o11, ly0, ly1, lx0, lx1, pmask, C, stride_c,
        FLAGS, C_CHUNK, BLOCK_P, NUM_CHUNKS, UPSAMPLE)
    if FLAGS & REGIONS:
        state = tl.load(state_ptr + offs_p, mask=pmask, other=0)
    else:
        state = tl.zeros([BLOCK_P], tl.uint8)
    loss, alpha, beta, g_y, g_a, g_b, bidx, correct, new_state = pixel_terms(
        m, a, m2, b2, mn, bn, S, Sz, S2, Q2, zy, y, valid, state, C,
        w_correct, w_wrong, lam_t, lam_b, lam_f, tau, FLAGS)
    if FLAGS & REGIONS:
        if FLAGS & UPDATE_STATE:
            tl.store(state_ptr + offs_p, new_state, mask=pmask)
    if WRITE_LOSS:
        tl.store(loss_ptr + offs_p, loss, mask=pmask)
    if WRITE_PREDICTION:
        tl.store(pred_ptr + offs_p, a.to(tl.int64), mask=pmask)
    tl.store(out + 0, tl.sum(loss, axis=0))
    tl.store(out + 1, tl.sum(valid.to(tl.float32), axis=0))
    tl.store(out + 2, tl.sum(correct.to(tl.float32), axis=0))
    if FLAGS & REGIONS:
        tl.store(out + 3, tl.sum((valid & (new_state == 0)).to(tl.float32), axis=0))
        tl.store(out + 4, tl.sum((valid & (new_state == 1)).to(tl.float32), axis=0))
        tl.store(out + 5, tl.sum((valid & (new_state == 2)).to(tl.float32), axis=0))
    else:
        tl.store(out + 3, 0.0)
        tl.store(out + 4, 0.0)
        tl.store(out + 5, 0.0)


@triton.jit
def _fwd_kernel(z_ptr, y_ptr, state_ptr, loss_ptr, pred_ptr, partial_ptr,
                params_ptr,
                C, HW, nblk, stride_b, stride_c, stride_p, ignore_index,
                FLAGS: tl.constexpr, WRITE_LOSS: tl.constexpr,
                C_CHUNK: tl.constexpr, BLOCK_P: tl.constexpr, NUM_CHUNKS: tl.constexpr,
                WRITE_PREDICTION: tl.constexpr):
    w_correct, w_wrong, lam_t, lam_b, lam_f, tau = load_params(params_ptr)
    pid = tl.program_id(0)
    b = (pid // nblk).to(tl.int64)  # image offsets in 64 bits (B*C*H*W may pass 2^31); within an image, 32 bits
    offs_p = (pid % nblk) * BLOCK_P + tl.arange(0, BLOCK_P)
    o = offs_p * stride_p
    forward_block(z_ptr + b * stride_b, y_ptr + b * HW, state_ptr + b * HW, loss_ptr + b * HW, pred_ptr + b * HW,
                   partial_ptr + pid * 6, offs_p, offs_p < HW, o, o, o, o, 0.0, 0.0, 0.0, 0.0,
                   w_correct, w_wrong, lam_t, lam_b, lam_f, tau, C, stride_c, ignore_index,
                   FLAGS, WRITE_LOSS, C_CHUNK, BLOCK_P, NUM_CHUNKS, False, WRITE_PREDICTION)


@triton.jit
def grad_tile(x, mask, offs_c, m, a, y, bidx, inv_s, alpha, beta, g_y, g_a, g_b):
    """d(k * w CE)/dz of a ``[C_CHUNK, BLOCK_P]`` logit tile ``x`` from the per-pixel coefficients of
    :func:`pixel_terms` (already multiplied by the upstream gradient k; ``inv_s`` = k / S)."""
    d = x - m[None, :]
    e = tl.where(mask, tl.exp(d), 0.0)
    g = inv_s[None, :] * e * (alpha[None, :] + beta[None, :] * d)
    cc = offs_c[:, None]
    g += tl.where(cc == y[None, :], g_y[None, :], 0.0)
    g += tl.where(cc == a[None, :], g_a[None, :], 0.0)
    g += tl.where(cc == bidx[None, :], g_b[None, :], 0.0)
    return g


@triton.jit
def backward_terms(z_base, y_img, state_img, k_img, offs_p, pmask, o00, o01, o10, o11, ly0, ly1, lx0, lx1,
                    w_correct, w_wrong, lam_t, lam_b, lam_f, tau, C, stride_c, ignore_index,
                    FLAGS: tl.constexpr, PER_PIXEL_SCALE: tl.constexpr, C_CHUNK: tl.constexpr,
                    BLOCK_P: tl.constexpr, NUM_CHUNKS: tl.constexpr, UPSAMPLE: tl.constexpr):
    """Per-pixel gradient coefficients of the pixels ``offs_p`` of one image, with the upstream gradient
    k (``k_img``: that image's per-pixel scales, or the scalar) folded in, for :func:`grad_tile`."""
    lab = tl.load(y_img + offs_p, mask=pmask, other=ignore_index)
    valid = pmask & (lab != ignore_index) & (lab >= 0) & (lab < C)  # out of range (validate=False): ignored
    y = tl.where(valid, lab, -1).to(tl.int32)
    m, a, m2, b2, mn, bn, S, Sz, S2, Q2, zy = reductions(
        z_base, y, valid, o00, o01, o10, o11, ly0, ly1, lx0, lx1, pmask, C, stride_c,
        FLAGS, C_CHUNK, BLOCK_P, NUM_CHUNKS, UPSAMPLE)
    if FLAGS & REGIONS:
        state = tl.load(state_img + offs_p, mask=pmask, other=0)
    else:
        state = tl.zeros([BLOCK_P], tl.uint8)
    loss, alpha, beta, g_y, g_a, g_b, bidx, correct, new_state = pixel_terms(
        m, a, m2, b2, mn, bn, S, Sz, S2, Q2, zy, y, valid, state, C,
        w_correct, w_wrong, lam_t, lam_b, lam_f, tau, FLAGS & ~UPDATE_STATE)
    if PER_PIXEL_SCALE:
        k = tl.load(k_img + offs_p, mask=pmask, other=0.0).to(tl.float32)
    else:
        k = tl.load(k_img).to(tl.float32)
    k = tl.where(valid, k, 0.0)
    inv_s = k / tl.where(valid, S, 1.0)
    return m, a, y, bidx, inv_s, alpha, beta, k * g_y, k * g_a, k * g_b


@triton.jit
def _bwd_kernel(z_ptr, y_ptr, state_ptr, scale_ptr, grad_ptr,
                params_ptr,
                C, HW, nblk, stride_b, stride_c, stride_p, ignore_index,
                FLAGS: tl.constexpr, PER_PIXEL_SCALE: tl.constexpr,
                C_CHUNK: tl.constexpr, BLOCK_P: tl.constexpr, NUM_CHUNKS: tl.constexpr):
    w_correct, w_wrong, lam_t, lam_b, lam_f, tau = load_params(params_ptr)
    pid = tl.program_id(0)
    b = (pid // nblk).to(tl.int64)  # image offsets in 64 bits (B*C*H*W may pass 2^31); within an image, 32 bits
    offs_p = (pid % nblk) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = offs_p < HW
    z_base = z_ptr + b * stride_b
    o = offs_p * stride_p
    k_img = scale_ptr + b * HW if PER_PIXEL_SCALE else scale_ptr
    m, a, y, bidx, inv_s, alpha, beta, g_y, g_a, g_b = backward_terms(
        z_base, y_ptr + b * HW, state_ptr + b * HW, k_img, offs_p, pmask, o, o, o, o, 0.0, 0.0, 0.0, 0.0,
        w_correct, w_wrong, lam_t, lam_b, lam_f, tau, C, stride_c, ignore_index,
        FLAGS, PER_PIXEL_SCALE, C_CHUNK, BLOCK_P, NUM_CHUNKS, False)
    g_base = grad_ptr + b * stride_b
    for ci in range(NUM_CHUNKS):
        offs_c = ci * C_CHUNK + tl.arange(0, C_CHUNK)
        mask = (offs_c[:, None] < C) & pmask[None, :]
        x = load_tile(z_base, offs_c, mask, stride_c, o, o, o, o, 0.0, 0.0, 0.0, 0.0, False)
        g = grad_tile(x, mask, offs_c, m, a, y, bidx, inv_s, alpha, beta, g_y, g_a, g_b)
        tl.store(g_base + offs_c[:, None] * stride_c + o[None, :], g.to(grad_ptr.dtype.element_ty), mask=mask)


def check_image_size(numel_per_image: int) -> None:
    """The kernels address one image's logits with 32-bit offsets (64-bit only across images): registers
    that a 64-bit offset tile would take spill the backward kernel."""
    if numel_per_image >= 2**31:
        raise ValueError(f"one image has {numel_per_image} logits (C*H*W); the Triton kernels take fewer than 2^31")


# [C_CHUNK, BLOCK_P] tiles of 4096 values (128 pixels at 19-32 classes, 64 at 150) over 16 warps: 8 values
# per thread. ptxas sm_90 (tests/ops/triton_gpu_compile.py --resources): 51-105 registers under Triton
# 3.6 and 50-91 under 3.9, no spills. Over 8 warps, 3 forward (3.6) and 2 backward (3.9)
# specialisations at C_CHUNK=32 spilled 4 B; over 4 warps the backward's live tiles spilled.
TILE = 4096


def num_warps(tile: int) -> int:
    """Warps of a program over a ``tile``-value [C_CHUNK, BLOCK_P] tile (see :data:`TILE`)."""
    return 16 if tile >= TILE else 4


def _geometry(logits: torch.Tensor):
    check_image_size(logits[0].numel() if logits.shape[0] else 0)
    if not (logits.is_contiguous() or logits.is_contiguous(memory_format=torch.channels_last)):
        logits = logits.contiguous()
    b, c, h, w = logits.shape
    c_chunk = min(triton.next_power_of_2(c), 64)
    block_p = max(16, min(256, TILE // c_chunk))
    nblk = triton.cdiv(h * w, block_p)
    return logits, b, c, h * w, c_chunk, block_p, nblk, triton.cdiv(c, c_chunk)


def weighted_ce_forward(logits, labels, region_state, params, flags, ignore_index, per_pixel, with_grad=False,
                        grad_scale=1.0, prediction=None):
    """Same contract as ``torch.ops.fastsegadv.weighted_ce_forward`` (csrc/ops.cpp); the gradient always
    comes from :func:`weighted_ce_backward` (the third output is empty). ``prediction``: an int64 tensor
    shaped like the labels that receives each pixel's argmax."""
    logits, b, c, hw, c_chunk, block_p, nblk, n_chunks = _geometry(logits)
    labels = labels.contiguous()
    if prediction is not None and (prediction.dtype != torch.int64 or prediction.shape != labels.shape
                                   or prediction.device != labels.device or not prediction.is_contiguous()):
        raise ValueError("prediction must be a contiguous int64 tensor shaped and placed like the labels")
    loss = torch.empty((b, hw) if per_pixel else (1,), dtype=torch.float32, device=logits.device)
    partial = torch.empty((b * nblk, NUM_STATS), dtype=torch.float32, device=logits.device)
    state = region_state if flags & REGIONS.value else labels  # a placeholder pointer when unused
    with on_device(logits):
        _fwd_kernel[(b * nblk,)](
            logits, labels, state, loss, labels if prediction is None else prediction, partial,
            kernel_params(params, logits.device),
            c, hw, nblk, logits.stride(0), logits.stride(1), logits.stride(3), ignore_index,
            FLAGS=flags, WRITE_LOSS=per_pixel, C_CHUNK=c_chunk, BLOCK_P=block_p, NUM_CHUNKS=n_chunks,
            WRITE_PREDICTION=prediction is not None, num_warps=num_warps(c_chunk * block_p))
    stats = partial.view(b, nblk, NUM_STATS).double().sum(1)
    loss = loss.view(b, logits.shape[2], logits.shape[3]) if per_pixel else loss.new_empty((0,))
    return loss, stats, loss.new_empty((0,))


def weighted_ce_backward(grad_scale, logits, labels, region_state, params, flags, ignore_index):
    """Same contract as ``torch.ops.fastsegadv.weighted_ce_backward`` (csrc/ops.cpp)."""
    logits, b, c, hw, c_chunk, block_p, nblk, n_chunks = _geometry(logits)
    labels = labels.contiguous()
    grad = torch.empty_like(logits)
    scale = grad_scale.float().contiguous()
    state = region_state if flags & REGIONS.value else labels
    with on_device(logits):
        _bwd_kernel[(b * nblk,)](
            logits, labels, state, scale, grad, kernel_params(params, logits.device),
            c, hw, nblk, logits.stride(0), logits.stride(1), logits.stride(3), ignore_index,
            FLAGS=flags & ~UPDATE_STATE.value, PER_PIXEL_SCALE=scale.numel() != 1,
            C_CHUNK=c_chunk, BLOCK_P=block_p, NUM_CHUNKS=n_chunks,
            num_warps=num_warps(c_chunk * block_p))
    return grad
