"""Masked per-class feature sums (C++ and Triton) against the eager one-hot reference: sums, counts and
the scatter backward; odd shapes, empty masks, repeatability, opcheck; the prototype loss end to end."""
import pytest
import torch

from fastsegadv import _ops, backend
from fastsegadv import losses as L
from fastsegadv.fused_prototypes import masked_class_sums

BACKENDS = [b for b in ("cpp", "triton") if backend.available(b, torch.device("cpu"))]


def case(b=2, d=24, h=7, w=9, k=21, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, d, h, w, generator=g).to(dtype)
    y = torch.randint(0, k, (b, h, w), generator=g)
    m = torch.rand(b, h, w, generator=g) < 0.6
    return f, y, m


def sums_and_grad(bk, f, y, m, k):
    ff = f.detach().clone().requires_grad_(True)
    s, c = masked_class_sums(ff, y, m, k, backend=bk)
    up = torch.randn(s.shape, generator=torch.Generator().manual_seed(3))
    (grad,) = torch.autograd.grad((s * up.to(s.dtype)).sum(), ff)
    return s.float(), c.float(), grad


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 24, 7, 9, 21), (1, 5, 3, 11, 2), (3, 70, 4, 4, 150)],
                         ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(bk, shape):
    b, d, h, w, k = shape
    f, y, m = case(b, d, h, w, k, seed=sum(shape))
    ref = sums_and_grad("reference", f, y, m, k)
    got = sums_and_grad(bk, f, y, m, k)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], ref[1])
    torch.testing.assert_close(got[2], ref[2], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bk", BACKENDS)
def test_empty_mask_and_repeatable(bk):
    f, y, m = case(seed=4)
    s, c, g = sums_and_grad(bk, f, y, torch.zeros_like(m), 21)
    assert torch.all(s == 0) and torch.all(c == 0) and torch.all(g == 0)
    a = sums_and_grad(bk, f, y, m, 21)
    b = sums_and_grad(bk, f, y, m, 21)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_features(bk, dtype):
    f, y, m = case(seed=5, dtype=dtype)
    ref64 = sums_and_grad("reference", f.double(), y, m, 21)
    ref_lo = sums_and_grad("reference", f, y, m, 21)
    got = sums_and_grad(bk, f, y, m, 21)
    err_got = (got[0].double() - ref64[0]).abs().max()
    err_ref = (ref_lo[0].double() - ref64[0]).abs().max()
    assert err_got <= err_ref + 1e-6  # fp32 accumulation: no worse than the reference in that dtype
    assert got[2].dtype == dtype


@pytest.mark.parametrize("bk", BACKENDS)
def test_prototype_loss_through_the_kernel(bk, monkeypatch):
    g = torch.Generator().manual_seed(6)
    f = torch.randn(2, 16, 6, 8, generator=g)
    y = torch.randint(0, 5, (2, 12, 16), generator=g)
    y[1, :3] = 255
    state = torch.randint(0, 2, (2, 12, 16), generator=g).to(torch.uint8)
    out = {}
    for name in ("reference", bk):
        monkeypatch.setenv("FASTSEGADV_BACKEND", name)
        ff = f.clone().requires_grad_(True)
        loss = L.prototype_loss(ff, y, state, num_classes=5)
        (grad,) = torch.autograd.grad(loss, ff)
        out[name] = (loss, grad)
    torch.testing.assert_close(out[bk][0], out["reference"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[bk][1], out["reference"][1], rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not _ops.CPP_AVAILABLE, reason="C++ ops not built")
def test_opcheck():
    f, y, m = case(seed=7)
    torch.library.opcheck(torch.ops.fastsegadv.masked_class_sums, (f, y, m, 21))
    gs = torch.randn(2, 21, 24)
    torch.library.opcheck(torch.ops.fastsegadv.masked_class_sums_backward, (gs, f, y, m))
