"""Fused bilinear upsample + loss (issue 6) vs upsampling first: forward+backward of SegPGD's weighted CE
from logits at 1/4 and 1/8 of the label resolution (1×19×512×1024 labels), time and peak memory, in the
same run:

- ``reference``: F.interpolate + the eager loss;
- ``upsample+fused``: F.interpolate + the fused loss (C++ on CPU, Triton on CUDA: the best without this kernel);
- ``fused_upsample``: the kernel that interpolates on the fly (fastsegadv.ops.upsample_weighted_ce: C++ on CPU,
  Triton on CUDA).

and the memory limit beside them, ``copy_``: a copy of the low-resolution logits into a preallocated
buffer plus a write of a gradient buffer of their size (the bytes the fused kernel must move at least;
x_copy in the table). On CUDA (when there is one) the tensors live there; otherwise on the CPU.
"""
import pytest
import torch
import torch.nn.functional as F

from fastsegadv import losses as L
from fastsegadv.backend import choose_backend
from fastsegadv.ops.upsample_weighted_ce import upsample_weighted_cross_entropy

from .peak_memory import peak_bytes

CASES = [(1, 19, 128, 256, 512, 1024), (1, 19, 64, 128, 512, 1024)]  # x4, x8
W = L.Weighting(segpgd="linear")


def _ident(c):
    return f"{c[0]}x{c[1]}x{c[2]}x{c[3]}->{c[4]}x{c[5]}"


DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("case", CASES, ids=_ident)
def test_copy_limit(benchmark, case):
    b, c, h, w, _, _ = case
    z = torch.randn(b, c, h, w, device=DEVICE)
    buf, grad = torch.empty_like(z), torch.empty_like(z)

    def run():
        buf.copy_(z)
        grad.fill_(0.5)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    run()
    benchmark(run)
    benchmark.extra_info.update(shape=_ident(case), mode="-", provider="copy_", bytes=4 * (b * c * h * w * 3))
    peak = peak_bytes(run, DEVICE)
    if peak is not None:
        benchmark.extra_info["peak_bytes"] = peak


@pytest.mark.parametrize("provider", ["reference", "upsample+fused", "fused_upsample"])
@pytest.mark.parametrize("case", CASES, ids=_ident)
def test_upsample_loss_forward_backward(benchmark, case, provider):
    fused = choose_backend("upsample_weighted_ce", torch.empty(1, 2, 1, 1, device=DEVICE))
    if provider != "reference" and fused == "reference":
        pytest.skip("no fused kernel for this device")
    b, c, h, w, H, Wd = case
    g = torch.Generator().manual_seed(0)
    z = torch.randn(b, c, h, w, generator=g).to(DEVICE).requires_grad_(True)
    y = torch.randint(0, c, (b, H, Wd), generator=g).to(DEVICE)

    def step():
        if provider == "fused_upsample":
            loss = upsample_weighted_cross_entropy(z, y, weighting=W, step=2, steps=10)
        else:
            up = F.interpolate(z, size=(H, Wd), mode="bilinear", align_corners=False)
            loss = L.weighted_cross_entropy(up, y, weighting=W, step=2, steps=10, validate=False,
                                            backend="reference" if provider == "reference" else fused)
        (grad,) = torch.autograd.grad(loss, z)
        return grad

    for _ in range(2):
        step()
    if DEVICE.type == "cuda":
        benchmark(lambda: (step(), torch.cuda.synchronize()))
    else:
        benchmark(step)
    benchmark.extra_info.update(shape=_ident(case), mode="segpgd_upsample", provider=provider,
                                bytes=4 * (b * c * h * w * 2))  # read + write of the low-res logits/gradient
    peak = peak_bytes(step, DEVICE)
    if peak is not None:
        benchmark.extra_info["peak_bytes"] = peak
