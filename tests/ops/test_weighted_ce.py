"""The fused weighted CE on every kernel that runs here (C++ CPU, Triton under the interpreter; on a GPU
machine also the CUDA op and Triton on the GPU) against the eager reference: every mode x odd shape x
reduction with random non-unit upstream gradients, ignore variants, fp16/bf16, channels_last and
non-contiguous logits, translation invariance, all-ignored images, logits untouched, bitwise repeatability,
statistics, a retained graph's second backward, no-grad forwards and bad labels. Tolerances:
tests/ops/conftest.py. C = 150 and 171 exercise the loops over class chunks."""
import pytest
import torch

from fastsegadv import losses as L

from ..kernel_cases import MODES, make_case, run
from .conftest import assert_close, assert_no_worse_than_reference

OP = "weighted_ce"
SHAPES = {
    "compiled": [(2, 19, 13, 17), (1, 21, 7, 33), (2, 150, 5, 9), (1, 171, 6, 7), (3, 2, 11, 5)],
    "interpreted": [(2, 19, 5, 7), (1, 150, 3, 5)],
}


def assert_matches(got, ref):
    """Loss and gradient within the fp32 tolerance of the table; the region state exactly."""
    assert_close(got[0], ref[0], OP, "loss")
    assert_close(got[1], ref[1], OP, "grad")
    assert torch.equal(got[2].cpu(), ref[2].cpu())


def small(kernel, compiled_shape, interpreted_shape):
    return interpreted_shape if kernel.interpreted else compiled_shape


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fp32_matches_reference(kernel, shape, mode, reduction):
    z, y, state = make_case(*shape, seed=sum(shape), device=kernel.device)
    ref = run("reference", z, y, MODES[mode], state=state, reduction=reduction)
    got = run(kernel.backend, z, y, MODES[mode], state=state, reduction=reduction)
    assert_matches(got, ref)


@pytest.mark.parametrize("ignore_index", [255, -1, 4])
@pytest.mark.parametrize("mode", ["ce", "segpgd_linear", "regions", "entropy", "zero_out"])
def test_ignore_index_variants(kernel, mode, ignore_index):
    z, y, state = make_case(*small(kernel, (2, 19, 9, 11), (2, 19, 4, 6)), ignore_index=ignore_index, seed=3,
                            device=kernel.device)
    ref = run("reference", z, y, MODES[mode], state=state, ignore_index=ignore_index)
    got = run(kernel.backend, z, y, MODES[mode], state=state, ignore_index=ignore_index)
    assert_matches(got, ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", list(MODES))
def test_low_precision_no_worse_than_reference_in_that_dtype(kernel, mode, dtype):
    """Loss and gradient against the fp64 truth (the table's rule for fp16/bf16). The gradient is compared
    away from ties of the max / second max / min (common in low precision), where the reference's
    amax/amin split the gradient between tied classes and the kernels take the first."""
    if kernel.interpreted and mode not in ("ce", "segpgd_linear", "cospgd", "entropy"):
        pytest.skip("the interpreter is slow: four modes cover its dtype handling")
    z, y, state = make_case(*small(kernel, (2, 19, 9, 13), (2, 19, 4, 5)), seed=5, device=kernel.device)
    zl = z.to(dtype)
    exact = run("reference", zl.double(), y, MODES[mode], state=state)
    ref_low = run("reference", zl, y, MODES[mode], state=state)
    got = run(kernel.backend, zl, y, MODES[mode], state=state)
    srt = zl.float().sort(1).values
    no_tie = ((srt[:, -1] != srt[:, -2]) & (srt[:, -2] != srt[:, -3]) & (srt[:, 0] != srt[:, 1])).unsqueeze(1)
    assert_no_worse_than_reference(got[0], ref_low[0], exact[0], dtype)
    assert_no_worse_than_reference(got[1], ref_low[1], exact[1], dtype, mask=no_tie.cpu())
    assert got[1].dtype == dtype


@pytest.mark.parametrize("mode", ["ce", "regions", "cospgd", "margin", "entropy"])
def test_channels_last_and_non_contiguous(kernel, mode):
    b, c, h, w = small(kernel, (2, 21, 10, 14), (2, 21, 4, 6))
    z, y, state = make_case(b, c, h, w, seed=6, device=kernel.device)
    ref = run("reference", z, y, MODES[mode], state=state, reduction="sum")
    got = run(kernel.backend, z.contiguous(memory_format=torch.channels_last), y, MODES[mode], state=state,
              reduction="sum")
    assert_matches(got, ref)
    assert got[1].is_contiguous(memory_format=torch.channels_last)
    view = torch.randn(b, c, h, 2 * w, device=kernel.device)[..., ::2]  # non-contiguous
    ref = run("reference", view, y, MODES[mode], state=state)
    got = run(kernel.backend, view, y, MODES[mode], state=state)
    assert_matches(got, ref)


@pytest.mark.parametrize("mode", sorted(set(MODES) - {"cospgd_sigmoid"}))
def test_translation_invariance(kernel, mode):
    """Softmax-based weights do not change when every logit of a pixel moves by the same amount."""
    if kernel.interpreted and mode not in ("entropy", "margin", "regions"):
        pytest.skip("the interpreter is slow: three modes cover its max-subtraction")
    z, y, state = make_case(*small(kernel, (2, 19, 8, 9), (2, 19, 4, 5)), seed=7, device=kernel.device)
    a = run(kernel.backend, z, y, MODES[mode], state=state)
    b = run(kernel.backend, z + 100, y, MODES[mode], state=state)
    assert_close(b[0], a[0], OP, "translated")
    assert_close(b[1], a[1], OP, "translated")


def test_all_ignored_batch_and_unchanged_logits(kernel):
    z, y, state = make_case(*small(kernel, (2, 19, 8, 9), (2, 19, 4, 5)), seed=8, device=kernel.device)
    y.fill_(255)
    keep = z.clone()
    for mode in (MODES if not kernel.interpreted else ["ce", "regions", "entropy", "cospgd"]):
        loss, grad, _ = run(kernel.backend, z, y, MODES[mode], state=state)
        assert loss.item() == 0 and torch.all(grad == 0)
    assert torch.equal(z, keep)


def test_bitwise_repeatable(kernel):
    z, y, state = make_case(*small(kernel, (2, 19, 64, 70), (2, 19, 6, 7)), seed=9, device=kernel.device)
    for mode in ("entropy", "regions", "cospgd"):
        a = run(kernel.backend, z, y, MODES[mode], state=state)
        b = run(kernel.backend, z, y, MODES[mode], state=state)
        assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_stats_match_reference(kernel):
    z, y, state = make_case(*small(kernel, (3, 19, 9, 10), (3, 19, 4, 5)), seed=10, device=kernel.device)
    w = L.Weighting(regions=True)
    _, s_ref = L.weighted_cross_entropy(z, y, weighting=w, step=2, steps=5, region_state=state.clone(),
                                        backend="reference", return_stats=True)
    _, s_got = L.weighted_cross_entropy(z, y, weighting=w, step=2, steps=5, region_state=state.clone(),
                                        backend=kernel.backend, return_stats=True)
    assert_close(s_got, s_ref, OP, "stats")


def test_second_backward_recomputes(kernel):
    """The forward's gradient buffer is scaled in place once; a retained graph's second backward recomputes."""
    z, y, state = make_case(2, 19, 4, 5, seed=14, device=kernel.device)
    zz = z.clone().requires_grad_(True)
    loss = L.weighted_cross_entropy(zz, y, weighting=MODES["entropy"], backend=kernel.backend)
    (g1,) = torch.autograd.grad(loss, zz, torch.tensor(2.0, device=zz.device), retain_graph=True)
    (g2,) = torch.autograd.grad(loss, zz, torch.tensor(2.0, device=zz.device))
    assert torch.equal(g1, g2)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_unit_and_non_unit_upstream_gradients(kernel, reduction):
    """The CPU path skips the scaling pass for an upstream gradient of exactly 1: test both values."""
    z, y, state = make_case(2, 19, 4, 5, seed=15, device=kernel.device)
    for g in (torch.tensor(1.0), torch.tensor(-2.5)):
        ref = run("reference", z, y, MODES["segpgd_linear"], state=state, reduction=reduction, grad_out=g)
        got = run(kernel.backend, z, y, MODES["segpgd_linear"], state=state, reduction=reduction, grad_out=g)
        assert_matches(got, ref)


def test_no_grad_forward(kernel):
    z, y, state = make_case(2, 19, 4, 5, seed=11, device=kernel.device)
    with torch.no_grad():
        a = L.weighted_cross_entropy(z.requires_grad_(True), y, weighting=MODES["entropy"], backend=kernel.backend)
    assert not a.requires_grad
    b = L.weighted_cross_entropy(z, y, weighting=MODES["entropy"], backend="reference")
    assert_close(a, b, OP, "loss")


def test_bad_labels_raise_before_the_kernel(kernel):
    z, y, _ = make_case(1, 19, 4, 5, device=kernel.device)
    y[0, 0, 0] = 19
    with pytest.raises(ValueError, match="outside"):
        L.weighted_cross_entropy(z, y, backend=kernel.backend)


def test_labels_out_of_range_without_validation(kernel):
    """``validate=False`` skips the host-side label check: the GPU kernels (CUDA, Triton) then ignore a label
    outside [0, C) (as if it were the ignore_index) and the C++ CPU kernel rejects it."""
    z, y, state = make_case(2, 19, 4, 5, seed=16, device=kernel.device)
    bad = y.clone()
    bad[0, 0, :3] = torch.tensor([19, -3, 400])
    with pytest.raises(ValueError, match="outside"):
        L.weighted_cross_entropy(z, bad, backend=kernel.backend)
    if kernel.backend == "cpp" and kernel.device == "cpu":
        with pytest.raises(RuntimeError, match="outside"):
            L.weighted_cross_entropy(z, bad, backend="cpp", validate=False)
        return
    as_ignored = torch.where((bad < 0) | (bad >= 19), torch.full_like(bad, 255), bad)
    zz = z.clone().requires_grad_(True)
    loss = L.weighted_cross_entropy(zz, bad, weighting=MODES["entropy"], backend=kernel.backend, validate=False)
    (g,) = torch.autograd.grad(loss, zz)
    ref = run("reference", z, as_ignored, MODES["entropy"], state=state, grad_out=torch.tensor(1.0))
    assert_close(loss, ref[0], OP, "loss")
    assert_close(g, ref[1], OP, "grad")


def test_region_state_is_checked_before_the_kernel(kernel):
    z, y, state = make_case(2, 19, 4, 5, seed=17, device=kernel.device)
    w = MODES["regions"]
    bad = state.clone()
    bad[0, 0, 0] = 3  # not T, B or F: the kernels index the region weights by it
    with pytest.raises(ValueError, match="region_state holds 3"):
        L.weighted_cross_entropy(z, y, weighting=w, step=1, steps=5, region_state=bad, backend=kernel.backend)
    with pytest.raises(ValueError, match="uint8 tensor shaped like"):
        L.weighted_cross_entropy(z, y, weighting=w, step=1, steps=5, region_state=state[:, :2],
                                 backend=kernel.backend)
