"""Fused bilinear upsample + weighted CE (C++ CPU) against F.interpolate + the eager loss: loss and the
gradient w.r.t. the low-resolution logits, every weighting family, scale factors 4 and 8 and odd sizes,
align_corners False/True, reductions with random upstream gradients, low precision, determinism."""
import pytest
import torch

from fastsegadv._ops import CPP_AVAILABLE
from fastsegadv.fused_upsample import upsample_weighted_cross_entropy, upsample_weighted_cross_entropy_reference
from fastsegadv.losses import Weighting, init_region_state

pytestmark = pytest.mark.skipif(not CPP_AVAILABLE, reason="compiled ops not built")

MODES = {
    "ce": Weighting(), "segpgd": Weighting(segpgd="linear"), "regions": Weighting(regions=True),
    "cospgd": Weighting(cospgd="softmax"), "entropy": Weighting(uncertainty="entropy"),
    "margin_detached": Weighting(uncertainty="margin", detach_uncertainty=True), "zero_out": Weighting(zero_out=0.75),
    "segpgd_x_zero_out": Weighting(segpgd="linear", zero_out=0.75),
}
SHAPES = [(2, 19, 16, 32, 64, 128), (1, 21, 8, 8, 64, 64), (2, 5, 13, 17, 50, 67)]  # x4, x8, odd


def _case(b, c, h, w, H, W, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(b, c, h, w, generator=g)).to(dtype).requires_grad_(True)
    y = torch.randint(0, c, (b, H, W), generator=g)
    y[:, : H // 7] = 255
    y[0, :, W // 3] = 255
    return z, y


def _run(fn, z, y, mode, reduction, ac, upstream, state=None):
    w = MODES[mode]
    st = None if state is None else state.clone()
    out = fn(z, y, weighting=w, step=2, steps=5, region_state=st, reduction=reduction, align_corners=ac)
    (g,) = torch.autograd.grad(out, z, grad_outputs=upstream)
    return out, g, st


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ac", [False, True])
def test_matches_upsample_then_loss(shape, mode, reduction, ac):
    z, y = _case(*shape)
    state = None
    if MODES[mode].regions:  # a state from another prediction: T, B and F pixels, some T pixels now wrong
        state = init_region_state(torch.randint(0, shape[1], y.shape, generator=torch.Generator().manual_seed(3)), y)
    g = torch.Generator().manual_seed(1)
    upstream = (torch.rand(y.shape, generator=g) + 0.5) if reduction == "none" else torch.tensor(1.7)
    out, grad, st = _run(upsample_weighted_cross_entropy, z, y, mode, reduction, ac, upstream, state)
    ref, ref_grad, ref_st = _run(upsample_weighted_cross_entropy_reference, z, y, mode, reduction, ac, upstream, state)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6 * float(ref_grad.abs().max()))
    if state is not None:
        assert torch.equal(st, ref_st)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_is_no_worse_than_the_reference_in_that_dtype(dtype):
    z, y = _case(2, 19, 16, 32, 64, 128)
    exact, exact_g, _ = _run(upsample_weighted_cross_entropy_reference, z.detach().double().requires_grad_(True), y,
                             "segpgd", "mean", False, torch.tensor(1.0, dtype=torch.float64))
    zl = z.detach().to(dtype).requires_grad_(True)
    ours, ours_g, _ = _run(
        upsample_weighted_cross_entropy, zl, y, "segpgd", "mean", False, torch.tensor(1.0, dtype=dtype)
    )
    ref, ref_g, _ = _run(
        upsample_weighted_cross_entropy_reference, zl, y, "segpgd", "mean", False, torch.tensor(1.0, dtype=dtype)
    )
    assert ours.dtype == dtype and ours_g.dtype == dtype
    err = lambda a, b: float((a.detach().double() - b.detach()).abs().max())  # noqa: E731
    assert err(ours, exact) <= err(ref, exact) + 1e-3
    assert err(ours_g, exact_g) <= err(ref_g, exact_g) + 1e-6


def test_deterministic_and_all_ignored():
    z, y = _case(2, 19, 16, 32, 64, 128)
    a = torch.autograd.grad(upsample_weighted_cross_entropy(z, y), z)[0]
    b = torch.autograd.grad(upsample_weighted_cross_entropy(z, y), z)[0]
    assert torch.equal(a, b)
    y_ign = torch.full_like(y, 255)
    loss = upsample_weighted_cross_entropy(z, y_ign)
    (g,) = torch.autograd.grad(loss, z)
    assert float(loss) == 0.0 and not g.any()


def test_translation_invariance_and_logits_untouched():
    z, y = _case(1, 19, 16, 32, 64, 128)
    before = z.detach().clone()
    a = upsample_weighted_cross_entropy(z, y, weighting=MODES["cospgd"])
    ga = torch.autograd.grad(a, z)[0]
    z2 = (z.detach() + 100).requires_grad_(True)
    b = upsample_weighted_cross_entropy(z2, y, weighting=MODES["cospgd"])
    gb = torch.autograd.grad(b, z2)[0]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-5)
    assert torch.equal(z.detach(), before)


def test_opcheck():
    z, y = _case(1, 5, 4, 6, 16, 24)
    from fastsegadv.fused import encode

    flags, params = encode(Weighting(segpgd="linear"), 2, 5, True)
    params = torch.tensor(params)
    state = torch.empty(0, dtype=torch.uint8)
    torch.library.opcheck(
        torch.ops.fastsegadv.upsample_weighted_ce_forward.default,
        (z.detach(), y, state, params, flags, 255, False, True, True, 1.0),
        test_utils=("test_schema", "test_faketensor"),
    )
    torch.library.opcheck(
        torch.ops.fastsegadv.upsample_weighted_ce_backward.default,
        (torch.tensor(0.5), z.detach(), y, state, params, flags, 255, True),
        test_utils=("test_schema", "test_faketensor"),
    )


class _QuarterRes(torch.nn.Module):
    """A segmentation net whose logits come out at 1/4 of the input (SegFormer-like)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Conv2d(3, 16, 3, stride=4, padding=1)
        self.head = torch.nn.Conv2d(16, 5, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


@pytest.mark.parametrize("attack", ["pgd", "segpgd", "cospgd"])
def test_attacks_on_low_resolution_logits_use_the_fused_upsample(attack, monkeypatch):
    from fastsegadv import attacks as A
    from fastsegadv.attacks import objectives

    model = _QuarterRes().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 48, generator=g)
    y = torch.randint(0, 5, (2, 32, 48), generator=g)
    y[:, :4] = 255
    calls = []
    real = objectives.upsample_weighted_cross_entropy
    monkeypatch.setattr(objectives, "upsample_weighted_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))
    fn = getattr(A, attack)
    fused = fn(model, x, y, eps=8 / 255, alpha=2 / 255, steps=4, seed=0)
    assert len(calls) == 4
    monkeypatch.setenv("FASTSEGADV_BACKEND", "reference")  # upsample first, eager loss
    ref = fn(model, x, y, eps=8 / 255, alpha=2 / 255, steps=4, seed=0)
    assert len(calls) == 4
    same = (fused == ref).float().mean()
    assert same > 0.99  # equal up to sign ties where the input gradient is ~0
