"""Triton masked per-class feature sums (RP-PGD prototypes, 003 Eq. 5) and their backward.

Forward: a program owns image b, a block of BLOCK_D channels and a block of BLOCK_K classes, and walks
the pixels in blocks of BLOCK_P, accumulating ``onehot(labels) [BLOCK_K, BLOCK_P] @ features^T
[BLOCK_P, BLOCK_D]`` in fp32: a fixed-order segmented reduction (deterministic, no atomics). Backward: a
gather of dL/dsums at each pixel's label where the mask is set. Imports only torch and triton.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .device import on_device


@triton.jit
def _sums_kernel(f_ptr, y_ptr, m_ptr, sums_ptr, counts_ptr, D, HW, K,
                 BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_P: tl.constexpr):
    """Program (b, d block, k block): sums ``[BLOCK_K, BLOCK_D]`` of classes k0 .. k0 + BLOCK_K. Tiling the
    classes keeps the accumulator and the one-hot tile small at 150 classes (no spill to local memory);
    the features are read once per class block."""
    b = tl.program_id(0).to(tl.int64)  # 64-bit offsets: b * D * HW may pass 2^31
    d0 = tl.program_id(1) * BLOCK_D
    offs_k = tl.program_id(2) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_d = d0 + tl.arange(0, BLOCK_D)
    acc = tl.zeros([BLOCK_K, BLOCK_D], tl.float32)
    cnt = tl.zeros([BLOCK_K], tl.float32)
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        pmask = offs_p < HW
        lab = tl.load(y_ptr + b * HW + offs_p, mask=pmask, other=-1)
        keep = tl.load(m_ptr + b * HW + offs_p, mask=pmask, other=0) != 0
        onehot = ((offs_k[:, None] == lab[None, :]) & keep[None, :]).to(tl.float32)  # [BLOCK_K, BLOCK_P]
        f = tl.load(f_ptr + (b * D + offs_d[None, :]) * HW + offs_p[:, None],
                    mask=pmask[:, None] & (offs_d[None, :] < D), other=0.0).to(tl.float32)  # [BLOCK_P, BLOCK_D]
        acc += tl.dot(onehot, f, input_precision="ieee")
        cnt += tl.sum(onehot, axis=1)
    kmask = offs_k < K
    tl.store(sums_ptr + (b * K + offs_k[:, None]) * D + offs_d[None, :], acc,
             mask=kmask[:, None] & (offs_d[None, :] < D))
    if tl.program_id(1) == 0:
        tl.store(counts_ptr + b * K + offs_k, cnt, mask=kmask)


@triton.jit
def _gather_kernel(g_ptr, y_ptr, m_ptr, out_ptr, D, HW, K, total, BLOCK: tl.constexpr):
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = idx < total
    p = idx % HW
    c = (idx // HW) % D
    b = idx // (HW * D)
    lab = tl.load(y_ptr + b * HW + p, mask=inb, other=0)
    keep = tl.load(m_ptr + b * HW + p, mask=inb, other=0) != 0
    keep = keep & (lab >= 0) & (lab < K)  # a label outside [0, K) has no class sum to read
    g = tl.load(g_ptr + (b * K + lab) * D + c, mask=inb & keep, other=0.0)
    tl.store(out_ptr + idx, g.to(out_ptr.dtype.element_ty), mask=inb)


def masked_class_sums(features, labels, mask, num_classes):
    """Same contract as ``torch.ops.fastsegadv.masked_class_sums`` (csrc/ops.cpp)."""
    f = features.contiguous()
    b, d, h, w = f.shape
    labels, mask = labels.contiguous(), mask.contiguous().to(torch.uint8)
    sums = torch.zeros((b, num_classes, d), dtype=torch.float32, device=f.device)
    counts = torch.zeros((b, num_classes), dtype=torch.float32, device=f.device)
    block_k = min(32, max(16, triton.next_power_of_2(num_classes)))  # tl.dot needs >= 16
    block_d = 32
    with on_device(f):
        _sums_kernel[(b, triton.cdiv(d, block_d), triton.cdiv(num_classes, block_k))](
            f, labels, mask, sums, counts, d, h * w, num_classes, BLOCK_K=block_k, BLOCK_D=block_d, BLOCK_P=64)
    return sums, counts


def masked_class_sums_backward(grad_sums, features, labels, mask):
    """Same contract as ``torch.ops.fastsegadv.masked_class_sums_backward`` (csrc/ops.cpp)."""
    b, d, h, w = features.shape
    out = torch.empty((b, d, h, w), dtype=features.dtype, device=features.device)
    total = out.numel()
    if total:
        with on_device(features):
            _gather_kernel[(triton.cdiv(total, 1024),)](grad_sums.float().contiguous(), labels.contiguous(),
                                                        mask.contiguous().to(torch.uint8), out, d, h * w,
                                                        grad_sums.shape[1], total, BLOCK=1024)
    return out
