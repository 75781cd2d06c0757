"""The one-pass ℓ∞ update op (fastsegadv::linf_step) equals the eager update bitwise, in every dtype."""
import pytest
import torch

from fastsegadv._ops import CPP_AVAILABLE
from fastsegadv.ops.attack_step import linf_step, linf_step_reference

pytestmark = pytest.mark.skipif(not CPP_AVAILABLE, reason="compiled ops not built")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("alpha", [0.01, -0.01, 2 / 255])
def test_linf_step_matches_the_eager_update(dtype, alpha):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 13, 17, generator=g).to(dtype)
    x_adv = (x + 0.05 * torch.randn(x.shape, generator=g).to(dtype)).clamp(0, 1)
    grad = torch.randn(x.shape, generator=g).to(dtype)
    grad[0, 0, 0] = 0  # sign(0) = 0: no move
    out = torch.ops.fastsegadv.linf_step(x_adv, grad, x, alpha, 8 / 255)
    assert torch.equal(out, linf_step_reference(x_adv, grad, x, alpha, 8 / 255))
    assert torch.equal(linf_step(x_adv, grad, x, alpha, 8 / 255), out)
    assert ((out - x).abs() <= 8 / 255 + 1e-2 * (dtype in (torch.float16, torch.bfloat16))).all()


def test_linf_step_non_contiguous_and_inputs_untouched():
    x = torch.rand(2, 8, 8, 3).permute(0, 3, 1, 2)  # channels_last view
    x_adv, grad = x.clone(), torch.randn(2, 3, 8, 8)
    before = x_adv.clone()
    out = torch.ops.fastsegadv.linf_step(x_adv, grad, x, 0.01, 0.03)
    assert torch.equal(out, linf_step_reference(x_adv, grad, x, 0.01, 0.03)) and torch.equal(x_adv, before)


def test_linf_step_opcheck():
    x = torch.rand(2, 3, 5, 6)
    torch.library.opcheck(torch.ops.fastsegadv.linf_step.default, (x.clone(), torch.randn(2, 3, 5, 6), x, 0.01, 0.03),
                          test_utils=("test_schema", "test_faketensor"))
