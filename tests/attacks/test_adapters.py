"""Model-output adapters: tensors, torchvision dicts with aux heads, tuples, ``.logits`` objects, logits at
1/4 and 1/8 resolution; attacks and the RP-PGD feature hook through an adapter."""
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsegadv.attacks import FeatureHook, extract_logits, pgd, rp_pgd
from fastsegadv.models import SegmentationAdapter, feature_layer_name, select_output
from fastsegadv.training import adversarial_training_loss


class LowRes(nn.Module):
    """Logits at 1/``stride`` of the input (SegFormer / mmseg decode heads), in the requested wrapping."""

    def __init__(self, stride=4, wrap="tensor", classes=5):
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, stride=stride, padding=1)
        self.head = nn.Conv2d(8, classes, 1)
        self.aux_head = nn.Conv2d(8, classes, 1)
        self.wrap = wrap

    def forward(self, x):
        f = torch.relu(self.body(x))
        z = self.head(f)
        if self.wrap == "dict":
            return {"out": z, "aux": self.aux_head(f)}
        if self.wrap == "tuple":
            return (z, self.aux_head(f))
        if self.wrap == "hf":
            return HFOutput(logits=z)
        return z


@dataclass
class HFOutput:
    logits: torch.Tensor


@pytest.mark.parametrize("stride", [4, 8])
@pytest.mark.parametrize("wrap", ["tensor", "dict", "tuple", "hf"])
def test_adapter_returns_upsampled_logits(stride, wrap):
    torch.manual_seed(0)
    net = LowRes(stride, wrap).eval()
    x = torch.rand(2, 3, 32, 40)
    out = SegmentationAdapter(net)(x)
    raw = net.head(torch.relu(net.body(x)))
    assert out.shape == (2, 5, 32, 40)
    torch.testing.assert_close(out, F.interpolate(raw, size=(32, 40), mode="bilinear", align_corners=False))


def test_adapter_aux_heads_for_training():
    net = LowRes(4, "dict")
    model = SegmentationAdapter(net, aux={"aux": "aux"})
    x = torch.rand(2, 3, 16, 16)
    out = model(x)
    assert set(out) == {"out", "aux"} and out["aux"].shape == (2, 5, 16, 16)
    y = torch.randint(0, 5, (2, 16, 16))
    loss = adversarial_training_loss(out, y, n_clean=1, aux_weights={"aux": 0.5})
    loss.backward()
    assert net.aux_head.weight.grad is not None


def test_adapter_align_corners_and_index():
    net = LowRes(4, "tuple")
    x = torch.rand(1, 3, 16, 16)
    out = SegmentationAdapter(net, output=1, align_corners=True)(x)
    aux = net.aux_head(torch.relu(net.body(x)))
    torch.testing.assert_close(out, F.interpolate(aux, size=(16, 16), mode="bilinear", align_corners=True))


def test_select_output_errors():
    with pytest.raises(KeyError, match="none of"):
        select_output({"seg": torch.zeros(1)})
    with pytest.raises(KeyError, match="index 3"):
        select_output((torch.zeros(1),), 3)
    with pytest.raises(TypeError, match="cannot find logits"):
        select_output(object())
    assert extract_logits(HFOutput(torch.ones(1))).item() == 1
    assert extract_logits({"logits": torch.ones(1)}).item() == 1


def test_attacks_through_an_adapted_low_resolution_model():
    torch.manual_seed(0)
    model = SegmentationAdapter(LowRes(8, "hf")).eval()
    x = torch.rand(2, 3, 32, 32)
    y = torch.randint(0, 5, (2, 32, 32))
    adv = pgd(model, x, y, eps=8 / 255, steps=2, seed=0)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(adv, x)
    assert feature_layer_name(model) is None  # found from the forward: the conv that produced the logits
    hook = FeatureHook(model)
    with hook:
        out = model(x.requires_grad_(True))
        assert hook.resolve(out) == "model.head"  # not aux_head, registered last
    layer = feature_layer_name(model, "head")
    assert layer == "model.head"
    adv = rp_pgd(model, x, y, eps=8 / 255, steps=2, seed=0, feature_layer=layer)
    assert adv.shape == x.shape
    with pytest.raises(ValueError, match="not a submodule"):
        feature_layer_name(model, "decode_head.conv_seg")
