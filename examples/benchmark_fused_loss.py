"""Benchmark the fused segmentation loss against the eager PyTorch loss on your device.

Forward + backward (the gradient w.r.t. the logits, what an attack step needs) of SegPGD's weighted CE at
a shape of your choice, on the backend fastsegadv picks for the device (C++ on CPU; Triton or CUDA on a
GPU), against the same loss written in eager PyTorch, measured side by side in one run. Also the time of a
``copy_`` of the logits into a preallocated buffer: the memory-bound floor of any loss.

    python examples/benchmark_fused_loss.py [--shape 2 19 256 512] [--dtype float32] [--repeats 10]
"""
from __future__ import annotations

import argparse
import time

import torch

from fastsegadv.backend import choose_backend
from fastsegadv.losses import Weighting, weighted_cross_entropy, weighted_cross_entropy_reference


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=4, default=[2, 19, 256, 512], metavar=("B", "C", "H", "W"))
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    b, c, h, w = args.shape
    g = torch.Generator(device="cpu").manual_seed(0)
    logits = torch.randn(b, c, h, w, generator=g).to(device, dtype)
    labels = torch.randint(0, c, (b, h, w), generator=g).to(device)
    labels[:, : h // 8] = 255
    weighting = Weighting(segpgd="linear")
    buffer = torch.empty_like(logits)

    def run(loss_fn):
        z = logits.detach().requires_grad_(True)
        loss = loss_fn(z, labels, weighting=weighting, step=3, steps=10)
        (grad,) = torch.autograd.grad(loss, z)
        return loss.detach(), grad

    fused_loss, fused_grad = run(weighted_cross_entropy)
    eager_loss, eager_grad = run(weighted_cross_entropy_reference)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(fused_loss.float(), eager_loss.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(fused_grad.float(), eager_grad.float(), rtol=tol, atol=tol)

    t_copy = timed(lambda: buffer.copy_(logits), args.repeats, device)
    t_fused = timed(lambda: run(weighted_cross_entropy), args.repeats, device)
    t_eager = timed(lambda: run(weighted_cross_entropy_reference), args.repeats, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"SegPGD loss forward+backward, logits {list(logits.shape)} {args.dtype} on {name} "
          f"(backend {choose_backend('weighted_ce', logits)}); same value and gradient as eager (checked)")
    print(f"  copy_ of the logits : {1e3 * t_copy:8.2f} ms")
    print(f"  fused               : {1e3 * t_fused:8.2f} ms  ({t_fused / t_copy:.1f}x copy_)")
    print(f"  eager PyTorch       : {1e3 * t_eager:8.2f} ms  ({t_eager / t_copy:.1f}x copy_)")
    print(f"  fused is {t_eager / t_fused:.1f}x faster than eager")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
