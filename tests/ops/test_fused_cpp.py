"""The C++ fused weighted CE (csrc/) against the eager reference: every mode x dtype x odd shape x
ignore variant, reductions with random non-unit upstream gradients, channels_last, translation
invariance, region state updates, logits untouched, bitwise repeatability, opcheck, torch.compile."""
import pytest
import torch

from fastsegadv import _ops
from fastsegadv import losses as L

from ..kernel_cases import MODES, make_case, run

pytestmark = pytest.mark.skipif(not _ops.CPP_AVAILABLE, reason=f"C++ ops not built: {_ops.CPP_IMPORT_ERROR}")

SHAPES = [(2, 19, 13, 17), (1, 21, 7, 33), (2, 150, 5, 9), (1, 171, 6, 7), (3, 2, 11, 5)]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fp32_matches_reference(mode, shape, reduction):
    z, y, state = make_case(*shape, seed=sum(shape))
    ref = run("reference", z, y, MODES[mode], state=state, reduction=reduction)
    got = run("cpp", z, y, MODES[mode], state=state, reduction=reduction)
    assert_matches(got, ref)


def assert_matches(got, ref):
    """fp32: rtol 1e-5, with an absolute floor of 1e-6 x the largest magnitude (cancellation near 0)."""
    for a, b in zip(got[:2], ref[:2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * max(1.0, float(b.abs().max())))
    assert torch.equal(got[2], ref[2])


@pytest.mark.parametrize("ignore_index", [255, -1, 4])
@pytest.mark.parametrize("mode", ["ce", "segpgd_linear", "regions", "entropy", "zero_out"])
def test_ignore_index_variants(mode, ignore_index):
    z, y, state = make_case(2, 19, 9, 11, ignore_index=ignore_index, seed=3)
    ref = run("reference", z, y, MODES[mode], state=state, ignore_index=ignore_index)
    got = run("cpp", z, y, MODES[mode], state=state, ignore_index=ignore_index)
    assert_matches(got, ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", list(MODES))
def test_low_precision_no_worse_than_reference_in_that_dtype(mode, dtype):
    """|fused - ref64| <= |ref_lowprec - ref64| + tol, for the loss and the gradient. The gradient is
    compared away from ties of the max / second max / min (common in low precision), where the
    reference's amax/amin split the gradient between tied classes and the kernels take the first."""
    z, y, state = make_case(2, 19, 9, 13, seed=5)
    zl = z.to(dtype)
    ref64 = run("reference", zl.double(), y, MODES[mode], state=state)
    ref_lo = run("reference", zl, y, MODES[mode], state=state)
    got = run("cpp", zl, y, MODES[mode], state=state)
    srt = zl.float().sort(1).values
    no_tie = ((srt[:, -1] != srt[:, -2]) & (srt[:, -2] != srt[:, -3]) & (srt[:, 0] != srt[:, 1])).unsqueeze(1)
    for k in (0, 1):
        mask = no_tie if k == 1 else True
        err_got = ((got[k].double() - ref64[k]) * mask).abs().max()
        err_ref = ((ref_lo[k].double() - ref64[k]) * mask).abs().max()
        scale = ref64[k].abs().max()
        assert err_got <= err_ref + torch.finfo(dtype).eps * scale + 1e-6, (k, float(err_got), float(err_ref))
    assert got[1].dtype == dtype


@pytest.mark.parametrize("mode", ["ce", "regions", "cospgd", "margin", "entropy"])
def test_channels_last_and_non_contiguous(mode):
    z, y, state = make_case(2, 21, 10, 14, seed=6)
    ref = run("reference", z, y, MODES[mode], state=state)
    got = run("cpp", z.contiguous(memory_format=torch.channels_last), y, MODES[mode], state=state)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)
    wide = torch.randn(2, 21, 10, 28)
    view = wide[..., ::2]  # non-contiguous
    ref = run("reference", view, y, MODES[mode], state=state)
    got = run("cpp", view, y, MODES[mode], state=state)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", sorted(set(MODES) - {"cospgd_sigmoid"}))
def test_translation_invariance(mode):
    z, y, state = make_case(2, 19, 8, 9, seed=7)
    a = run("cpp", z, y, MODES[mode], state=state)
    b = run("cpp", z + 100, y, MODES[mode], state=state)
    torch.testing.assert_close(a[0], b[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a[1], b[1], rtol=1e-3, atol=1e-5)


def test_all_ignored_batch_and_unchanged_logits():
    z, y, state = make_case(2, 19, 8, 9, seed=8)
    y.fill_(255)
    keep = z.clone()
    for mode in MODES:
        loss, grad, _ = run("cpp", z, y, MODES[mode], state=state)
        assert loss.item() == 0 and torch.all(grad == 0)
    assert torch.equal(z, keep)


def test_bitwise_repeatable():
    z, y, state = make_case(2, 19, 64, 70, seed=9)
    for mode in ("entropy", "regions", "cospgd"):
        a = run("cpp", z, y, MODES[mode], state=state)
        b = run("cpp", z, y, MODES[mode], state=state)
        assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_stats_match_reference():
    z, y, state = make_case(3, 19, 9, 10, seed=10)
    w = L.Weighting(regions=True)
    _, s_ref = L.weighted_cross_entropy(z, y, weighting=w, step=2, steps=5, region_state=state.clone(),
                                        backend="reference", return_stats=True)
    _, s_cpp = L.weighted_cross_entropy(z, y, weighting=w, step=2, steps=5, region_state=state.clone(),
                                        backend="cpp", return_stats=True)
    torch.testing.assert_close(s_cpp, s_ref, rtol=1e-5, atol=1e-4)


def test_second_backward_recomputes():
    """The forward's gradient buffer is scaled in place once; a retained graph's second backward recomputes."""
    z, y, state = make_case(2, 19, 8, 9, seed=14)
    zz = z.clone().requires_grad_(True)
    loss = L.weighted_cross_entropy(zz, y, weighting=MODES["entropy"], backend="cpp")
    (g1,) = torch.autograd.grad(loss, zz, torch.tensor(2.0), retain_graph=True)
    (g2,) = torch.autograd.grad(loss, zz, torch.tensor(2.0))
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_unit_and_non_unit_upstream_gradients(reduction):
    """The CPU path skips the scaling pass for an upstream gradient of exactly 1: test both paths."""
    z, y, state = make_case(2, 19, 8, 9, seed=15)
    for g in (torch.tensor(1.0), torch.tensor(-2.5)):
        ref = run("reference", z, y, MODES["segpgd_linear"], state=state, reduction=reduction, grad_out=g)
        got = run("cpp", z, y, MODES["segpgd_linear"], state=state, reduction=reduction, grad_out=g)
        assert_matches(got, ref)


def test_no_grad_forward():
    z, y, state = make_case(2, 19, 8, 9, seed=11)
    with torch.no_grad():
        a = L.weighted_cross_entropy(z.requires_grad_(True), y, weighting=MODES["entropy"], backend="cpp")
    assert not a.requires_grad
    b = L.weighted_cross_entropy(z, y, weighting=MODES["entropy"], backend="reference")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bad_labels_raise_before_the_kernel():
    z, y, _ = make_case(1, 19, 4, 5)
    y[0, 0, 0] = 19
    with pytest.raises(ValueError, match="outside"):
        L.weighted_cross_entropy(z, y, backend="cpp")


def test_opcheck():
    from fastsegadv.fused import encode

    z, y, state = make_case(2, 19, 6, 7, seed=12)
    for w in (MODES["regions"], MODES["entropy"], MODES["margin"]):
        flags, params = encode(w, 2, 5, True)
        params = torch.tensor(params)  # fp32 [6]: the kernels read it from memory
        st = state.clone() if w.regions else torch.empty(0, dtype=torch.uint8)
        for with_grad in (False, True):
            torch.library.opcheck(torch.ops.fastsegadv.weighted_ce_forward,
                                  (z, y, st.clone(), params, flags, 255, True, with_grad, 0.5))
        torch.library.opcheck(torch.ops.fastsegadv.weighted_ce_backward,
                              (torch.tensor(0.5), z, y, st, params, flags & ~4, 255))
        torch.library.opcheck(torch.ops.fastsegadv.weighted_ce_backward,
                              (torch.rand(2, 6, 7), z, y, st, params, flags & ~4, 255))


def test_torch_compile_traces_the_op():
    z, y, state = make_case(2, 19, 6, 7, seed=13)
    def f(t):
        return L.weighted_cross_entropy(t, y, weighting=MODES["segpgd_linear"], step=2, steps=5, backend="cpp",
                                        validate=False)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(z), f(z))
