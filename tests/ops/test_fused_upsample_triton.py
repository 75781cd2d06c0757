"""The Triton fused bilinear upsample + weighted CE (kernels/upsample_weighted_ce.py) against
F.interpolate + the eager loss, under TRITON_INTERPRET=1 on CPU (slow: small shapes). The per-pixel stage
is the plain Triton kernel's (tested for every mode in test_fused_triton.py); these tests cover what is
new: the interpolation, the gather-form backward to the low-resolution logits, scale factors 4 and 8 and
odd sizes, align_corners both ways, per-pixel upstream gradients, the region-state update, channels_last,
low precision, determinism and agreement with the C++ kernel."""
import pytest
import torch

from fastsegadv import backend
from fastsegadv._ops import CPP_AVAILABLE
from fastsegadv.fused_upsample import upsample_weighted_cross_entropy, upsample_weighted_cross_entropy_reference
from fastsegadv.losses import Weighting, init_region_state

pytestmark = pytest.mark.skipif(not backend.available("triton", torch.device("cpu")),
                                reason="triton not installed or TRITON_INTERPRET != 1")

# (B, C, h, w, H, W): x4, x8, odd (13/5 and 17/7)
SHAPES = {"x4": (1, 3, 3, 5, 12, 20), "x8": (1, 4, 2, 3, 16, 24), "odd": (2, 4, 5, 7, 13, 17)}


def _case(b, c, h, w, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(b, c, h, w, generator=g)).requires_grad_(True)
    y = torch.randint(0, c, (b, H, W), generator=g)
    y[:, : max(1, H // 7)] = 255
    return z, y


def _loss_and_grad(fn, z, y, upstream, **kw):
    out = fn(z, y, step=2, steps=5, **kw)
    return out, torch.autograd.grad(out, z, grad_outputs=upstream)[0]


def _compare(z, y, upstream, **kw):
    out, g = _loss_and_grad(upsample_weighted_cross_entropy, z, y, upstream, backend="triton", **kw)
    ref, ref_g = _loss_and_grad(upsample_weighted_cross_entropy_reference, z, y, upstream, **kw)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, ref_g, rtol=1e-4, atol=1e-6 * float(ref_g.abs().max()))
    return g


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("ac", [False, True])
def test_matches_upsample_then_loss(shape, ac):
    z, y = _case(*SHAPES[shape])
    _compare(z, y, torch.tensor(1.7), weighting=Weighting(segpgd="linear"), align_corners=ac)


def test_per_pixel_upstream_and_non_detached_uncertainty():
    z, y = _case(*SHAPES["odd"])
    upstream = torch.rand(y.shape, generator=torch.Generator().manual_seed(1)) + 0.5
    _compare(z, y, upstream, weighting=Weighting(uncertainty="entropy"), reduction="none")


def test_region_state_update_matches():
    z, y = _case(*SHAPES["x4"])
    state = init_region_state(torch.randint(0, 3, y.shape, generator=torch.Generator().manual_seed(3)), y)
    st_ours, st_ref = state.clone(), state.clone()
    out, g = _loss_and_grad(upsample_weighted_cross_entropy, z, y, torch.tensor(1.0), backend="triton",
                            weighting=Weighting(regions=True), region_state=st_ours)
    ref, ref_g = _loss_and_grad(upsample_weighted_cross_entropy_reference, z, y, torch.tensor(1.0),
                                weighting=Weighting(regions=True), region_state=st_ref)
    assert torch.equal(st_ours, st_ref) and not torch.equal(st_ours, state)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, ref_g, rtol=1e-4, atol=1e-6 * float(ref_g.abs().max()))


def test_channels_last_bf16_and_deterministic():
    z, y = _case(*SHAPES["x4"])
    zl = z.detach().to(torch.bfloat16).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out, g = _loss_and_grad(upsample_weighted_cross_entropy, zl, y, torch.tensor(1.0, dtype=torch.bfloat16),
                            backend="triton")
    again = _loss_and_grad(upsample_weighted_cross_entropy, zl, y, torch.tensor(1.0, dtype=torch.bfloat16),
                           backend="triton")[1]
    assert g.dtype == torch.bfloat16 and g.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(g, again)
    # fp32 accumulation from bf16 logits: no worse than the bf16 reference against the fp64 truth, up to one
    # ulp of the final rounding (the interpreter rounds fp32 -> bf16 toward zero; GPUs round to nearest)
    exact, exact_g = _loss_and_grad(
        upsample_weighted_cross_entropy_reference,
        zl.detach().double().requires_grad_(True),
        y,
        torch.tensor(1.0, dtype=torch.float64),
    )
    ref, ref_g = _loss_and_grad(
        upsample_weighted_cross_entropy_reference, zl, y, torch.tensor(1.0, dtype=torch.bfloat16)
    )
    err = lambda a, b: float((a.detach().double() - b.detach()).abs().max())  # noqa: E731
    assert err(out, exact) <= err(ref, exact) + 1e-3
    assert err(g, exact_g) <= err(ref_g, exact_g) + torch.finfo(torch.bfloat16).eps * float(exact_g.abs().max())


def test_all_ignored_gives_zero():
    z, y = _case(*SHAPES["x4"])
    out, g = _loss_and_grad(
        upsample_weighted_cross_entropy, z, torch.full_like(y, 255), torch.tensor(1.0), backend="triton"
    )
    assert float(out) == 0.0 and not g.any()


@pytest.mark.skipif(not CPP_AVAILABLE, reason="compiled ops not built")
def test_agrees_with_the_cpp_kernel():
    z, y = _case(*SHAPES["odd"])
    kw = dict(weighting=Weighting(cospgd="softmax"), align_corners=True)
    t = _loss_and_grad(upsample_weighted_cross_entropy, z, y, torch.tensor(1.0), backend="triton", **kw)
    c = _loss_and_grad(upsample_weighted_cross_entropy, z, y, torch.tensor(1.0), backend="cpp", **kw)
    torch.testing.assert_close(t[0], c[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(t[1], c[1], rtol=1e-5, atol=1e-8)
