"""Masked per-class feature sums on every kernel that runs here against the eager one-hot reference:
sums, counts and the scatter backward; odd shapes, empty masks, repeatability, low precision, opcheck; the
prototype loss end to end. Tolerances: tests/ops/conftest.py."""
import pytest
import torch

from fastsegadv import _ops
from fastsegadv import losses as L
from fastsegadv.ops.masked_class_sums import masked_class_sums

from .conftest import assert_close, assert_no_worse_than_reference

OP = "masked_class_sums"
SHAPES = {  # (B, D, H, W, K)
    "compiled": [(2, 24, 7, 9, 21), (1, 5, 3, 11, 2), (3, 70, 4, 4, 150)],
    "interpreted": [(2, 24, 7, 9, 21), (1, 5, 3, 11, 2), (3, 70, 4, 4, 150)],
}


def case(b=2, d=24, h=7, w=9, k=21, seed=0, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, h, w, generator=g).to(dtype)
    y = torch.randint(0, k, (b, h, w), generator=g)
    m = torch.rand(b, h, w, generator=g) < 0.6
    return f.to(device), y.to(device), m.to(device)


def sums_and_grad(bk, f, y, m, k):
    ff = f.detach().clone().requires_grad_(True)
    s, c = masked_class_sums(ff, y, m, k, backend=bk)
    up = torch.randn(s.shape, generator=torch.Generator().manual_seed(3))
    (grad,) = torch.autograd.grad((s * up.to(s.device, s.dtype)).sum(), ff)
    return s.float(), c.float(), grad


def test_matches_reference(kernel, shape):
    b, d, h, w, k = shape
    f, y, m = case(b, d, h, w, k, seed=sum(shape), device=kernel.device)
    ref = sums_and_grad("reference", f, y, m, k)
    got = sums_and_grad(kernel.backend, f, y, m, k)
    assert_close(got[0], ref[0], OP, "sums")
    assert torch.equal(got[1].cpu(), ref[1].cpu())  # counts are integers
    assert_close(got[2], ref[2], OP, "grad")


def test_empty_mask_and_repeatable(kernel):
    bk = kernel.backend
    f, y, m = case(seed=4, device=kernel.device)
    s, c, g = sums_and_grad(bk, f, y, torch.zeros_like(m), 21)
    assert torch.all(s == 0) and torch.all(c == 0) and torch.all(g == 0)
    a = sums_and_grad(bk, f, y, m, 21)
    b = sums_and_grad(bk, f, y, m, 21)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_features(kernel, dtype):
    f, y, m = case(seed=5, dtype=dtype, device=kernel.device)
    ref64 = sums_and_grad("reference", f.double(), y, m, 21)
    ref_lo = sums_and_grad("reference", f, y, m, 21)
    got = sums_and_grad(kernel.backend, f, y, m, 21)
    assert_no_worse_than_reference(got[0], ref_lo[0], ref64[0], dtype)  # fp32 accumulation
    assert got[2].dtype == dtype


def test_prototype_loss_through_the_kernel(kernel, monkeypatch):
    bk = kernel.backend
    g = torch.Generator().manual_seed(6)
    f = torch.randn(2, 16, 6, 8, generator=g).to(kernel.device)
    y = torch.randint(0, 5, (2, 12, 16), generator=g)
    y[1, :3] = 255
    y = y.to(kernel.device)
    state = torch.randint(0, 2, (2, 12, 16), generator=g).to(kernel.device, torch.uint8)
    out = {}
    for name in ("reference", bk):
        monkeypatch.setenv("FASTSEGADV_BACKEND", name)
        ff = f.clone().requires_grad_(True)
        loss = L.prototype_loss(ff, y, state, num_classes=5)
        (grad,) = torch.autograd.grad(loss, ff)
        out[name] = (loss, grad)
    assert_close(out[bk][0], out["reference"][0], OP, "prototype_loss")
    assert_close(out[bk][1], out["reference"][1], OP, "prototype_grad")


@pytest.mark.skipif(not _ops.CPP_AVAILABLE, reason="C++ ops not built")
def test_opcheck():
    f, y, m = case(seed=7)
    torch.library.opcheck(torch.ops.fastsegadv.masked_class_sums, (f, y, m, 21))
    gs = torch.randn(2, 21, 24)
    torch.library.opcheck(torch.ops.fastsegadv.masked_class_sums_backward, (gs, f, y, m))


def test_labels_outside_the_classes_contribute_nothing(kernel):
    """A masked pixel whose label is not a class (the ignore_index, -1) is in no class sum and gets no
    gradient on the GPU kernels (no read or write outside the [B, K, D] sums); the C++ CPU kernel rejects it."""
    f, y, m = case(seed=8, device=kernel.device)
    y = y.clone()
    y[0, 0, :4] = torch.tensor([255, -1, 21, 1000])
    m[0, 0, :4] = True
    if kernel.backend == "cpp" and kernel.device == "cpu":
        with pytest.raises(RuntimeError, match="outside"):
            sums_and_grad("cpp", f, y, m, 21)
        return
    keep = (y >= 0) & (y < 21)
    ref = sums_and_grad("reference", f, torch.where(keep, y, 0), m & keep, 21)
    got = sums_and_grad(kernel.backend, f, y, m, 21)
    assert_close(got[0], ref[0], OP, "sums")
    assert torch.equal(got[1].cpu(), ref[1].cpu())
    assert_close(got[2], ref[2], OP, "grad")
