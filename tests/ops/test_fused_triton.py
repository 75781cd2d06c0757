"""The Triton fused weighted CE (kernels/) against the eager reference, under TRITON_INTERPRET=1 on CPU
(small shapes: the interpreter is slow). C = 150 exercises the loop over class chunks."""
import pytest
import torch

from fastsegadv import backend

from ..kernel_cases import MODES, make_case, run
from .test_fused_cpp import assert_matches

pytestmark = pytest.mark.skipif(not backend.available("triton", torch.device("cpu")),
                                reason="triton not installed or TRITON_INTERPRET != 1")

SHAPES = [(2, 19, 5, 7), (1, 150, 3, 5)]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_fp32_matches_reference(mode, shape, reduction):
    z, y, state = make_case(*shape, seed=sum(shape))
    ref = run("reference", z, y, MODES[mode], state=state, reduction=reduction)
    got = run("triton", z, y, MODES[mode], state=state, reduction=reduction)
    assert_matches(got, ref)


@pytest.mark.parametrize("mode", ["ce", "regions", "entropy", "margin", "cospgd"])
def test_channels_last_sum_and_ignore_minus_one(mode):
    z, y, state = make_case(2, 21, 4, 6, ignore_index=-1, seed=4)
    ref = run("reference", z, y, MODES[mode], state=state, reduction="sum", ignore_index=-1)
    got = run("triton", z.contiguous(memory_format=torch.channels_last), y, MODES[mode], state=state,
              reduction="sum", ignore_index=-1)
    assert_matches(got, ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["ce", "segpgd_linear", "cospgd", "entropy"])
def test_low_precision(mode, dtype):
    z, y, state = make_case(2, 19, 4, 5, seed=5)
    zl = z.to(dtype)
    ref64 = run("reference", zl.double(), y, MODES[mode], state=state)
    ref_lo = run("reference", zl, y, MODES[mode], state=state)
    got = run("triton", zl, y, MODES[mode], state=state)
    for k in (0, 1):
        err_got = (got[k].double() - ref64[k]).abs().max()
        err_ref = (ref_lo[k].double() - ref64[k]).abs().max()
        assert err_got <= err_ref + torch.finfo(dtype).eps * ref64[k].abs().max() + 1e-6  # one ulp of slack
    assert got[1].dtype == dtype


def test_all_ignored_translation_and_repeatability():
    z, y, state = make_case(2, 19, 4, 5, seed=6)
    a = run("triton", z, y, MODES["entropy"], state=state)
    b = run("triton", z + 100, y, MODES["entropy"], state=state)
    torch.testing.assert_close(a[0], b[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a[1], b[1], rtol=1e-3, atol=1e-5)
    c = run("triton", z, y, MODES["entropy"], state=state)
    assert all(torch.equal(u, v) for u, v in zip(a, c))
    y.fill_(255)
    loss, grad, _ = run("triton", z, y, MODES["regions"], state=state)
    assert loss.item() == 0 and torch.all(grad == 0)
