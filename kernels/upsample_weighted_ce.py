"""Triton kernels of the fused bilinear upsample + weighted cross-entropy (fastsegadv.ops.upsample_weighted_ce; the
C++ CPU kernel csrc/cpu/upsample_weighted_ce_cpu.cpp computes the same sums in the same order).

Logits ``z [B, C, h, w]`` (NCHW or channels_last), labels ``[B, H, W]``. Each output pixel's logits are
interpolated on the fly from four taps (:func:`weighted_ce.load_tile`); the per-pixel stage is the
plain kernel's. Axis tables (source rows/columns and weights of every output row/column, PyTorch's
``area_pixel_compute_source_index`` in fp32) are built once per geometry on the host.

Backward, deterministic (every sum in a fixed order, no atomics), never materialising ``[B, C, H, W]``:
1. ``_rows_kernel``, one program per (image, output row, block of low-resolution columns j): for the
   output columns x that read column j (a contiguous range, ascending), recompute that pixel's gradient
   and add its horizontal weight times it to ``rowbuf[b, c, y, j]`` (fp32 ``[B, C, H, w]``: 1/s of the
   upsampled logits): the transpose of the horizontal interpolation, as a gather.
2. ``_cols_kernel``, one program per (image, low-resolution row i, block of j): sum the output rows
   that read row i, ascending, times their vertical weight: the transpose of the vertical interpolation.

This module imports only torch and triton (and the plain kernel's jit helpers).
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from .device import on_device
from .weighted_ce import (
    NUM_STATS,
    REGIONS,
    UPDATE_STATE,
    backward_terms,
    check_image_size,
    forward_block,
    grad_tile,
    kernel_params,
    load_params,
    load_tile,
)

BLOCK_J = 32
# Forward tile [C_CHUNK, BLOCK_P] of 2048 values over 8 warps (8 per thread; each is interpolated from 4
# taps): ptxas sm_90 gives 114-128 registers under Triton 3.6 and 56-64 under 3.9, no spills. Tiles of
# 4096 over 4 warps took 255 registers and spilled up to 1068 B in every specialisation under 3.6
# (tests/ops/triton_gpu_compile.py --resources; benchmarks/results/triton_resources/).
FWD_TILE, FWD_WARPS = 2048, 8


@functools.lru_cache(maxsize=64)
def _axis(src: int, dst: int, align_corners: bool, device: torch.device):
    """Source index pair, weight pair of each of ``dst`` outputs, and for each of the ``src`` inputs the
    range ``[start, end)`` of outputs reading it, plus the longest range."""
    d = torch.arange(dst, dtype=torch.float32)
    if align_corners:
        scale = torch.tensor((src - 1) / (dst - 1) if dst > 1 else 0.0, dtype=torch.float32)
        pos = scale * d
    else:
        scale = torch.tensor(src / dst, dtype=torch.float32)
        pos = scale * (d + 0.5) - 0.5
    pos = pos.clamp_min(0.0)
    i0 = pos.to(torch.int32).clamp_max(src - 1)
    i1 = i0 + (i0 < src - 1).to(torch.int32)
    l1 = pos - i0.to(torch.float32)
    l0 = 1.0 - l1
    targets = torch.arange(src, dtype=torch.int32)
    start = torch.searchsorted(i1, targets, right=False).to(torch.int32)  # first output with i1 >= j
    end = torch.searchsorted(i0, targets, right=True).to(torch.int32)  # first output with i0 > j
    span = int((end - start).max()) if src else 0
    return tuple(t.to(device) for t in (i0, i1, l0, l1, start, end)) + (span,)


@triton.jit
def _taps(oy, ox, mask, i0y_ptr, i1y_ptr, l0y_ptr, l1y_ptr, i0x_ptr, i1x_ptr, l0x_ptr, l1x_ptr, stride_h, stride_w):
    """Offsets of the four source logits of output pixels (oy, ox) and their row/column weights."""
    r0 = tl.load(i0y_ptr + oy, mask=mask, other=0) * stride_h
    r1 = tl.load(i1y_ptr + oy, mask=mask, other=0) * stride_h
    c0 = tl.load(i0x_ptr + ox, mask=mask, other=0) * stride_w
    c1 = tl.load(i1x_ptr + ox, mask=mask, other=0) * stride_w
    ly0 = tl.load(l0y_ptr + oy, mask=mask, other=0.0)
    ly1 = tl.load(l1y_ptr + oy, mask=mask, other=0.0)
    lx0 = tl.load(l0x_ptr + ox, mask=mask, other=0.0)
    lx1 = tl.load(l1x_ptr + ox, mask=mask, other=0.0)
    return r0 + c0, r0 + c1, r1 + c0, r1 + c1, ly0, ly1, lx0, lx1


@triton.jit
def _fwd_kernel(z_ptr, y_ptr, state_ptr, loss_ptr, partial_ptr,
                i0y_ptr, i1y_ptr, l0y_ptr, l1y_ptr, i0x_ptr, i1x_ptr, l0x_ptr, l1x_ptr,
                params_ptr,
                C, W, HW, nblk, stride_b, stride_c, stride_h, stride_w, ignore_index,
                FLAGS: tl.constexpr, WRITE_LOSS: tl.constexpr,
                C_CHUNK: tl.constexpr, BLOCK_P: tl.constexpr, NUM_CHUNKS: tl.constexpr):
    w_correct, w_wrong, lam_t, lam_b, lam_f, tau = load_params(params_ptr)
    pid = tl.program_id(0)
    b = (pid // nblk).to(tl.int64)  # image offsets in 64 bits; within an image, 32 bits
    offs_p = (pid % nblk) * BLOCK_P + tl.arange(0, BLOCK_P)  # output pixels of image b
    pmask = offs_p < HW
    o00, o01, o10, o11, ly0, ly1, lx0, lx1 = _taps(offs_p // W, offs_p % W, pmask, i0y_ptr, i1y_ptr, l0y_ptr,
                                                   l1y_ptr, i0x_ptr, i1x_ptr, l0x_ptr, l1x_ptr, stride_h, stride_w)
    forward_block(z_ptr + b * stride_b, y_ptr + b * HW, state_ptr + b * HW, loss_ptr + b * HW, y_ptr,
                   partial_ptr + pid * 6, offs_p, pmask, o00, o01, o10, o11, ly0, ly1, lx0, lx1,
                   w_correct, w_wrong, lam_t, lam_b, lam_f, tau, C, stride_c, ignore_index,
                   FLAGS, WRITE_LOSS, C_CHUNK, BLOCK_P, NUM_CHUNKS, True, False)


@triton.jit
def _rows_kernel(z_ptr, y_ptr, state_ptr, scale_ptr, rowbuf_ptr,
                 i0y_ptr, i1y_ptr, l0y_ptr, l1y_ptr, i0x_ptr, i1x_ptr, l0x_ptr, l1x_ptr, xstart_ptr, xend_ptr,
                 params_ptr,
                 C, H, W, w, span_x, stride_b, stride_c, stride_h, stride_w, ignore_index,
                 FLAGS: tl.constexpr, PER_PIXEL_SCALE: tl.constexpr,
                 C_CHUNK: tl.constexpr, BLOCK_J: tl.constexpr, NUM_CHUNKS: tl.constexpr):
    w_correct, w_wrong, lam_t, lam_b, lam_f, tau = load_params(params_ptr)
    pid = tl.program_id(0)
    b = (pid // H).to(tl.int64)  # image offsets in 64 bits; within an image, 32 bits
    oy = pid % H
    offs_j = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)  # low-resolution columns
    jmask = offs_j < w
    xs = tl.load(xstart_ptr + offs_j, mask=jmask, other=0)
    xe = tl.load(xend_ptr + offs_j, mask=jmask, other=0)
    z_base = z_ptr + b * stride_b
    HW = H * W
    k_img = scale_ptr + b * HW if PER_PIXEL_SCALE else scale_ptr
    rb = rowbuf_ptr + b * C * H * w + oy * w  # + c * H * w + j
    oy_v = tl.zeros([BLOCK_J], tl.int32) + oy
    for k in range(span_x):  # the k-th output column reading column j, in increasing x
        ox = xs + k
        live = jmask & (ox < xe)
        ox = tl.where(live, ox, 0)
        o00, o01, o10, o11, ly0, ly1, lx0, lx1 = _taps(oy_v, ox, live, i0y_ptr, i1y_ptr, l0y_ptr, l1y_ptr,
                                                       i0x_ptr, i1x_ptr, l0x_ptr, l1x_ptr, stride_h, stride_w)
        offs_p = oy * W + ox
        m, a, y, bidx, inv_s, alpha, beta, g_y, g_a, g_b = backward_terms(
            z_base, y_ptr + b * HW, state_ptr + b * HW, k_img, offs_p, live, o00, o01, o10, o11,
            ly0, ly1, lx0, lx1, w_correct, w_wrong, lam_t, lam_b, lam_f, tau, C, stride_c, ignore_index,
            FLAGS, PER_PIXEL_SCALE, C_CHUNK, BLOCK_J, NUM_CHUNKS, True)
        # this pixel's weights on column j: l0 if it reads j as its left tap, l1 as its right (both at the edge)
        on0 = live & (tl.load(i0x_ptr + ox, mask=live, other=-1) == offs_j)
        on1 = live & (tl.load(i1x_ptr + ox, mask=live, other=-1) == offs_j)
        for ci in range(NUM_CHUNKS):
            offs_c = ci * C_CHUNK + tl.arange(0, C_CHUNK)
            mask = (offs_c[:, None] < C) & live[None, :]
            x = load_tile(z_base, offs_c, mask, stride_c, o00, o01, o10, o11, ly0, ly1, lx0, lx1, True)
            g = grad_tile(x, mask, offs_c, m, a, y, bidx, inv_s, alpha, beta, g_y, g_a, g_b)
            ptrs = rb + offs_c[:, None] * (H * w) + offs_j[None, :]
            omask = (offs_c[:, None] < C) & jmask[None, :]
            acc = tl.load(ptrs, mask=omask, other=0.0)
            acc = tl.where(on0[None, :], acc + lx0[None, :] * g, acc)
            acc = tl.where(on1[None, :], acc + lx1[None, :] * g, acc)
            tl.store(ptrs, acc, mask=omask)


@triton.jit
def _cols_kernel(rowbuf_ptr, grad_ptr, i0y_ptr, i1y_ptr, l0y_ptr, l1y_ptr, ystart_ptr, yend_ptr,
                 C, H, h, w, span_y, stride_b, stride_c, stride_h, stride_w,
                 C_CHUNK: tl.constexpr, BLOCK_J: tl.constexpr, NUM_CHUNKS: tl.constexpr):
    pid = tl.program_id(0)
    b = (pid // h).to(tl.int64)  # image offsets in 64 bits; within an image, 32 bits
    i = pid % h
    rb = rowbuf_ptr + b * C * H * w
    offs_j = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)
    jmask = offs_j < w
    ys = tl.load(ystart_ptr + i)
    ye = tl.load(yend_ptr + i)
    for ci in range(NUM_CHUNKS):
        offs_c = ci * C_CHUNK + tl.arange(0, C_CHUNK)
        mask = (offs_c[:, None] < C) & jmask[None, :]
        acc = tl.zeros([C_CHUNK, BLOCK_J], tl.float32)
        for k in range(span_y):  # output rows reading row i, in increasing order
            oy = tl.zeros([BLOCK_J], tl.int32) + ys + k  # the same row in every lane
            live = jmask & (oy < ye)
            oy = tl.where(live, oy, 0)
            v = tl.load(rb + (offs_c[:, None] * H + oy[None, :]) * w + offs_j[None, :],
                        mask=mask & live[None, :], other=0.0)
            on0 = live & (tl.load(i0y_ptr + oy, mask=live, other=-1) == i)
            on1 = live & (tl.load(i1y_ptr + oy, mask=live, other=-1) == i)
            acc = tl.where(on0[None, :], acc + tl.load(l0y_ptr + oy, mask=live, other=0.0)[None, :] * v, acc)
            acc = tl.where(on1[None, :], acc + tl.load(l1y_ptr + oy, mask=live, other=0.0)[None, :] * v, acc)
        ptrs = grad_ptr + b * stride_b + offs_c[:, None] * stride_c + i * stride_h + offs_j[None, :] * stride_w
        tl.store(ptrs, acc.to(grad_ptr.dtype.element_ty), mask=mask)


def _geometry(logits: torch.Tensor, labels: torch.Tensor, align_corners: bool):
    check_image_size(logits.shape[1] * labels.shape[-2] * labels.shape[-1])  # C at label resolution: an upper bound
    if not (logits.is_contiguous() or logits.is_contiguous(memory_format=torch.channels_last)):
        logits = logits.contiguous()
    b, c, h, w = logits.shape
    H, W = labels.shape[-2:]
    c_chunk = min(triton.next_power_of_2(c), 64)
    ay = _axis(h, H, align_corners, logits.device)
    ax = _axis(w, W, align_corners, logits.device)
    return logits, b, c, h, w, H, W, c_chunk, triton.cdiv(c, c_chunk), ay, ax


def upsample_weighted_ce_forward(logits, labels, region_state, params, flags, ignore_index, align_corners, per_pixel,
                                 with_grad=False, grad_scale=1.0):
    """Same contract as ``torch.ops.fastsegadv.upsample_weighted_ce_forward`` (csrc/ops.cpp); the gradient
    always comes from :func:`upsample_weighted_ce_backward` (the third output is empty)."""
    logits, b, c, h, w, H, W, c_chunk, n_chunks, ay, ax = _geometry(logits, labels, align_corners)
    labels = labels.contiguous()
    block_p = max(16, min(256, FWD_TILE // c_chunk))
    nblk = triton.cdiv(H * W, block_p)
    loss = torch.empty((b, H * W) if per_pixel else (1,), dtype=torch.float32, device=logits.device)
    partial = torch.empty((b * nblk, NUM_STATS), dtype=torch.float32, device=logits.device)
    state = region_state if flags & REGIONS.value else labels  # a placeholder pointer when unused
    with on_device(logits):
        _fwd_kernel[(b * nblk,)](
            logits, labels, state, loss, partial, *ay[:4], *ax[:4], kernel_params(params, logits.device),
            c, W, H * W, nblk, logits.stride(0), logits.stride(1), logits.stride(2), logits.stride(3), ignore_index,
            FLAGS=flags, WRITE_LOSS=per_pixel, C_CHUNK=c_chunk, BLOCK_P=block_p, NUM_CHUNKS=n_chunks,
            num_warps=FWD_WARPS)
    stats = partial.view(b, nblk, NUM_STATS).double().sum(1)
    loss = loss.view(b, H, W) if per_pixel else loss.new_empty((0,))
    return loss, stats, loss.new_empty((0,))


def upsample_weighted_ce_backward(grad_scale, logits, labels, region_state, params, flags, ignore_index, align_corners):
    """Same contract as ``torch.ops.fastsegadv.upsample_weighted_ce_backward``: the gradient w.r.t. the
    low-resolution logits, in their dtype and layout."""
    logits, b, c, h, w, H, W, c_chunk, n_chunks, ay, ax = _geometry(logits, labels, align_corners)
    labels = labels.contiguous()
    scale = grad_scale.float().contiguous()
    state = region_state if flags & REGIONS.value else labels
    rowbuf = torch.zeros((b, c, H, w), dtype=torch.float32, device=logits.device)
    n_j = triton.cdiv(w, BLOCK_J)
    grad = torch.empty_like(logits)
    with on_device(logits):
        _rows_kernel[(b * H, n_j)](
            logits, labels, state, scale, rowbuf, *ay[:4], *ax[:4], ax[4], ax[5], kernel_params(params, logits.device),
            c, H, W, w, ax[6], logits.stride(0), logits.stride(1), logits.stride(2), logits.stride(3), ignore_index,
            FLAGS=flags & ~UPDATE_STATE.value, PER_PIXEL_SCALE=scale.numel() != 1,
            C_CHUNK=c_chunk, BLOCK_J=BLOCK_J, NUM_CHUNKS=n_chunks)
        _cols_kernel[(b * h, n_j)](
            rowbuf, grad, *ay[:4], ay[4], ay[5], c, H, h, w, ay[6],
            grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
            C_CHUNK=c_chunk, BLOCK_J=BLOCK_J, NUM_CHUNKS=n_chunks)
    return grad
