"""Attacks under bf16 autocast reach the strength of fp32 on the shipped model (issue 6): the mIoU after
PGD and SegPGD at 10 and 20 steps is within 1 point. (bf16 convolutions are emulated on CPUs without
AVX512-BF16, so this test keeps to 8 images.)"""
import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.metrics import ConfusionMatrix
from fastsegadv.models import load_pretrained


@pytest.fixture(scope="module")
def setup():
    x, y = make_digit_scenes("test", num_images=8, seed=0)
    return load_pretrained("standard"), x, y


def _miou(model, adv, y):
    with torch.no_grad():
        return 100 * ConfusionMatrix(11).update(model(adv).argmax(1), y).miou()


@pytest.mark.parametrize("steps", [10, 20])
@pytest.mark.parametrize("attack", ["pgd", "segpgd"])
def test_bf16_attack_is_as_strong_as_fp32(setup, attack, steps):
    model, x, y = setup
    fn = getattr(A, attack)
    fp32 = fn(model, x, y, steps=steps, seed=0)
    bf16 = fn(model, x, y, steps=steps, seed=0, amp="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - x).abs().max() <= 8 / 255 + 1e-6
    assert abs(_miou(model, bf16, y) - _miou(model, fp32, y)) <= 1.0
    assert _miou(model, bf16, y) < 10


def test_amp_option_is_checked(setup):
    model, x, y = setup
    with pytest.raises(ValueError, match="amp must be"):
        A.pgd(model, x, y, steps=1, amp="fp8")
