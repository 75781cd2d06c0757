"""Models whose logits come out below the labels' resolution: the attacks take the fused upsample + loss
path, and the C++ upsample op's schema and fake registration pass ``opcheck``. Values of every kernel:
test_upsample_weighted_ce.py."""
import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv._ops import CPP_AVAILABLE
from fastsegadv.attacks import objectives
from fastsegadv.losses import Weighting
from fastsegadv.ops.weighted_ce import encode


@pytest.mark.skipif(not CPP_AVAILABLE, reason="compiled ops not built")
def test_opcheck():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(1, 5, 4, 6, generator=g), torch.randint(0, 5, (1, 16, 24), generator=g)
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
