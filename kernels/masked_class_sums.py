"""Triton masked per-class feature sums (RP-PGD prototypes, 003 Eq. 5) and their backward.

Forward: a program owns image b and a block of BLOCK_D channels and walks the pixels in blocks of
BLOCK_P, accumulating ``onehot(labels) [K_PAD, BLOCK_P] @ features^T [BLOCK_P, BLOCK_D]`` in fp32: a
fixed-order segmented reduction (deterministic, no atomics). Backward: a gather of dL/dsums at each
pixel's label where the mask is set. Imports only torch and triton.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _sums_kernel(f_ptr, y_ptr, m_ptr, sums_ptr, counts_ptr, D, HW, K,
                 K_PAD: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_P: tl.constexpr):
    b = tl.program_id(0)
    d0 = tl.program_id(1) * BLOCK_D
    offs_k = tl.arange(0, K_PAD)
    offs_d = d0 + tl.arange(0, BLOCK_D)
    acc = tl.zeros([K_PAD, BLOCK_D], tl.float32)
    cnt = tl.zeros([K_PAD], tl.float32)
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        pmask = offs_p < HW
        lab = tl.load(y_ptr + b * HW + offs_p, mask=pmask, other=-1)
        keep = tl.load(m_ptr + b * HW + offs_p, mask=pmask, other=0) != 0
        onehot = ((offs_k[:, None] == lab[None, :]) & keep[None, :]).to(tl.float32)  # [K_PAD, BLOCK_P]
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
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inb = idx < total
    p = idx % HW
    c = (idx // HW) % D
    b = idx // (HW * D)
    lab = tl.load(y_ptr + b * HW + p, mask=inb, other=0)
    keep = tl.load(m_ptr + b * HW + p, mask=inb, other=0) != 0
    g = tl.load(g_ptr + (b * K + lab) * D + c, mask=inb & keep, other=0.0)
    tl.store(out_ptr + idx, g.to(out_ptr.dtype.element_ty), mask=inb)


def masked_class_sums(features, labels, mask, num_classes):
    """Same contract as ``torch.ops.fastsegadv.masked_class_sums`` (csrc/ops.cpp)."""
    f = features.contiguous()
    b, d, h, w = f.shape
    labels, mask = labels.contiguous(), mask.contiguous().to(torch.uint8)
    sums = torch.zeros((b, num_classes, d), dtype=torch.float32, device=f.device)
    counts = torch.zeros((b, num_classes), dtype=torch.float32, device=f.device)
    k_pad = max(16, triton.next_power_of_2(num_classes))
    block_d = 32
    _sums_kernel[(b, triton.cdiv(d, block_d))](f, labels, mask, sums, counts, d, h * w, num_classes,
                                              K_PAD=k_pad, BLOCK_D=block_d, BLOCK_P=64)
    return sums, counts


def masked_class_sums_backward(grad_sums, features, labels, mask):
    """Same contract as ``torch.ops.fastsegadv.masked_class_sums_backward`` (csrc/ops.cpp)."""
    b, d, h, w = features.shape
    out = torch.empty((b, d, h, w), dtype=features.dtype, device=features.device)
    total = out.numel()
    if total:
        _gather_kernel[(triton.cdiv(total, 1024),)](grad_sums.float().contiguous(), labels.contiguous(),
                                                    mask.contiguous().to(torch.uint8), out, d, h * w,
                                                    grad_sums.shape[1], total, BLOCK=1024)
    return out
