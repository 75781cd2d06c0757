"""The fused bilinear upsample + weighted CE on every kernel that runs here against ``F.interpolate`` + the
eager loss: the loss and the gradient with respect to the low-resolution logits for every weighting family,
scale factors 4 and 8 and odd sizes, align_corners both ways, reductions with random non-unit (and per-pixel)
upstream gradients, the region-state update, fp16/bf16 and channels_last, determinism, all-ignored images,
translation invariance, logits untouched, and two kernels agreeing. Tolerances: tests/ops/conftest.py."""
import pytest
import torch

from fastsegadv.losses import Weighting, init_region_state
from fastsegadv.ops.upsample_weighted_ce import (
    upsample_weighted_cross_entropy,
    upsample_weighted_cross_entropy_reference,
)

from .conftest import assert_close, assert_no_worse_than_reference, kernel_targets

OP = "upsample_weighted_ce"
MODES = {
    "ce": Weighting(), "segpgd": Weighting(segpgd="linear"), "regions": Weighting(regions=True),
    "cospgd": Weighting(cospgd="softmax"), "entropy": Weighting(uncertainty="entropy"),
    "margin_detached": Weighting(uncertainty="margin", detach_uncertainty=True), "zero_out": Weighting(zero_out=0.75),
    "segpgd_x_zero_out": Weighting(segpgd="linear", zero_out=0.75),
}
# (B, C, h, w, H, W): x4, x8, odd
SHAPES = {
    "compiled": [(2, 19, 16, 32, 64, 128), (1, 21, 8, 8, 64, 64), (2, 5, 13, 17, 50, 67)],
    "interpreted": [(1, 3, 3, 5, 12, 20), (1, 4, 2, 3, 16, 24), (2, 4, 5, 7, 13, 17)],
}


def _case(b, c, h, w, H, W, *, dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(b, c, h, w, generator=g)).to(device, dtype).requires_grad_(True)
    y = torch.randint(0, c, (b, H, W), generator=g)
    y[:, : max(1, H // 7)] = 255
    y[0, :, W // 3] = 255
    return z, y.to(device)


def _run(fn, z, y, upstream, *, state=None, **kw):
    """(loss, gradient w.r.t. the low-resolution logits, updated region state) at t = 2 of T = 5."""
    st = None if state is None else state.clone()
    out = fn(z, y, step=2, steps=5, region_state=st, **kw)
    (g,) = torch.autograd.grad(out, z, grad_outputs=upstream.to(out.device, out.dtype))
    return out, g, st


def _interpreted_case(shape, mode, reduction, ac) -> bool:
    """The cases the Triton interpreter runs: every scale and align_corners for one weighting, plus a
    per-pixel upstream gradient with a non-detached uncertainty weight and a region-state update."""
    x4, _, odd = SHAPES["interpreted"]
    return ((mode, reduction) == ("segpgd", "mean") or (mode, reduction, shape, ac) == ("entropy", "none", odd, False)
            or (mode, reduction, shape, ac) == ("regions", "mean", x4, False))


def _kernel_fn(kernel):
    return lambda *a, **k: upsample_weighted_cross_entropy(*a, backend=kernel.backend, **k)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ac", [False, True])
def test_matches_upsample_then_loss(kernel, shape, mode, reduction, ac):
    if kernel.interpreted and not _interpreted_case(shape, mode, reduction, ac):
        pytest.skip("the interpreter is slow: the per-pixel stage is the plain kernel's, tested for every mode")
    z, y = _case(*shape, device=kernel.device)
    state = None
    if MODES[mode].regions:  # a state from another prediction: T, B and F pixels, some T pixels now wrong
        prediction = torch.randint(0, shape[1], y.shape, generator=torch.Generator().manual_seed(3))
        state = init_region_state(prediction.to(y.device), y)
    g = torch.Generator().manual_seed(1)
    upstream = (torch.rand(y.shape, generator=g) + 0.5) if reduction == "none" else torch.tensor(1.7)
    kw = dict(weighting=MODES[mode], reduction=reduction, align_corners=ac, state=state)
    out, grad, st = _run(_kernel_fn(kernel), z, y, upstream, **kw)
    ref, ref_grad, ref_st = _run(upsample_weighted_cross_entropy_reference, z, y, upstream, **kw)
    assert_close(out, ref, OP, "loss")
    assert_close(grad, ref_grad, OP, "grad")
    if state is not None:
        assert torch.equal(st, ref_st) and not torch.equal(st, state)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_and_channels_last_no_worse_than_the_reference(kernel, dtype):
    z, y = _case(*SHAPES["interpreted" if kernel.interpreted else "compiled"][0], device=kernel.device)
    one = torch.tensor(1.0)
    exact = _run(upsample_weighted_cross_entropy_reference, z.detach().double().requires_grad_(True), y, one,
                 weighting=MODES["segpgd"])
    zl = z.detach().to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ours = _run(_kernel_fn(kernel), zl, y, one, weighting=MODES["segpgd"])
    ref = _run(upsample_weighted_cross_entropy_reference, zl, y, one, weighting=MODES["segpgd"])
    assert ours[0].dtype == dtype and ours[1].dtype == dtype
    assert_no_worse_than_reference(ours[0], ref[0], exact[0], dtype)
    assert_no_worse_than_reference(ours[1], ref[1], exact[1], dtype)


def test_deterministic_and_all_ignored(kernel):
    z, y = _case(*SHAPES["interpreted" if kernel.interpreted else "compiled"][0], device=kernel.device)
    fn, one = _kernel_fn(kernel), torch.tensor(1.0)
    a = _run(fn, z, y, one, weighting=MODES["entropy"])
    b = _run(fn, z, y, one, weighting=MODES["entropy"])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    loss, g, _ = _run(fn, z, torch.full_like(y, 255), one)
    assert float(loss) == 0.0 and not g.any()


def test_translation_invariance_and_logits_untouched(kernel):
    z, y = _case(*SHAPES["interpreted" if kernel.interpreted else "compiled"][2], device=kernel.device)
    fn, one = _kernel_fn(kernel), torch.tensor(1.0)
    before = z.detach().clone()
    a = _run(fn, z, y, one, weighting=MODES["cospgd"])
    b = _run(fn, (z.detach() + 100).requires_grad_(True), y, one, weighting=MODES["cospgd"])
    assert_close(b[0], a[0], "weighted_ce", "translated")
    assert_close(b[1], a[1], "weighted_ce", "translated")
    assert torch.equal(z.detach(), before)


@pytest.mark.skipif(len(kernel_targets(OP)) < 2, reason="one kernel of the op runs here")
def test_kernels_agree():
    """Every pair of kernels that run here gives the same loss and gradient (same fp32 arithmetic)."""
    targets = kernel_targets(OP)
    z, y = _case(*SHAPES["interpreted"][2])
    kw = dict(weighting=MODES["cospgd"], align_corners=True)
    first = _run(_kernel_fn(targets[0]), z, y, torch.tensor(1.0), **kw)
    for other in targets[1:]:
        got = _run(_kernel_fn(other), z.detach().to(other.device).requires_grad_(True), y.to(other.device),
                   torch.tensor(1.0), **kw)
        assert_close(got[0], first[0], "kernels_agree", "loss")
        assert_close(got[1], first[1], "kernels_agree", "grad")


def test_bad_labels_and_region_state_raise_before_the_kernel(kernel):
    z, y = _case(*SHAPES["interpreted"][0], device=kernel.device)
    bad = y.clone()
    bad[0, 1, 1] = z.shape[1]
    with pytest.raises(ValueError, match="outside"):
        upsample_weighted_cross_entropy(z, bad, backend=kernel.backend)
    with pytest.raises(ValueError, match="region_state holds 7"):
        upsample_weighted_cross_entropy(z, y, weighting=MODES["regions"], step=1, steps=5, backend=kernel.backend,
                                        region_state=torch.full(y.shape, 7, dtype=torch.uint8, device=y.device))
    with pytest.raises(TypeError, match="floating point"):
        upsample_weighted_cross_entropy(z.detach().long(), y, backend=kernel.backend)
