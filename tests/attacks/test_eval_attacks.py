"""CW-ℓ2, DeepFool and APGD (with SEA's losses) for dense outputs."""
import math

import pytest
import torch
import torch.nn.functional as F

from fastsegadv.attacks import apgd, cw_l2, deepfool, perturbation_norms
from fastsegadv.attacks.apgd import apgd_checkpoints
from fastsegadv.attacks.margins import label_margin, pixel_loss
from fastsegadv.data import make_digit_scenes
from fastsegadv.metrics import ConfusionMatrix
from fastsegadv.models import load_pretrained


@pytest.fixture(scope="module")
def shipped():
    x, y = make_digit_scenes("test", num_images=4, seed=3)
    return load_pretrained("standard"), x, y


def _acc(model, adv, y):
    with torch.no_grad():
        return ConfusionMatrix(11).update(model(adv).argmax(1), y).pixel_accuracy()


def test_cw_success_rises_with_c_and_norms_are_reported(shipped):
    model, x, y = shipped
    accs, norms = [], []
    for c in (0.01, 10.0):
        adv = cw_l2(model, x, y, c=c, steps=15, lr=0.02)
        assert adv.min() >= 0 and adv.max() <= 1
        accs.append(_acc(model, adv, y))
        norms.append(perturbation_norms(adv, x)["l2"].mean().item())
    assert accs[1] < accs[0] - 0.2 and norms[1] > norms[0]


def test_cw_max_norm_bounds_the_perturbation(shipped):
    model, x, y = shipped
    adv = cw_l2(model, x, y, c=10.0, steps=5, lr=0.05, max_norm=0.5)
    assert perturbation_norms(adv, x)["l2"].max() <= 0.5 + 1e-4


def test_deepfool_success_rises_with_the_budget(shipped):
    model, x, y = shipped
    accs = [_acc(model, deepfool(model, x, y, steps=10, max_norm=r), y) for r in (0.1, 1.0, None)]
    assert accs[0] > accs[1] > accs[2]
    adv = deepfool(model, x, y, steps=10, max_norm=1.0)
    assert perturbation_norms(adv, x)["l2"].max() <= 1.0 * 1.02 + 1e-4  # clipping to [0, 1] only shrinks it


def test_apgd_stays_in_the_ball_and_beats_the_clean_image(shipped):
    model, x, y = shipped
    for loss in ("ce", "masked_ce", "js"):
        adv = apgd(model, x, y, eps=4 / 255, steps=8, loss=loss, seed=0)
        assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        assert _acc(model, adv, y) < _acc(model, x, y) - 0.2
    with pytest.raises(ValueError, match="loss must be"):
        apgd(model, x, y, steps=2, loss="hinge")


def test_apgd_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, ... (Croce & Hein 2020, §3.2)
    assert apgd_checkpoints(100)[:5] == [22, 41, 57, 70, 80]


def test_pixel_losses():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 3, 3, generator=g)
    y = torch.randint(0, 4, (2, 3, 3), generator=g)
    y[0, 0, 0] = 255
    valid = y != 255
    ce = pixel_loss(z, y, "ce", 255)
    torch.testing.assert_close(ce, F.cross_entropy(z, y, ignore_index=255, reduction="none"))
    correct = (z.argmax(1) == y) & valid
    torch.testing.assert_close(pixel_loss(z, y, "masked_ce", 255), ce * correct)
    p = z.softmax(1)
    onehot = F.one_hot(y.clamp_max(3), 4).permute(0, 3, 1, 2).float()
    m = (p + onehot) / 2
    js = 0.5 * (p * (p / m).log()).sum(1) + 0.5 * (onehot * (onehot.clamp_min(1e-30) / m).log()).sum(1)
    torch.testing.assert_close(pixel_loss(z, y, "js", 255), js * valid)
    # the closed form in p_y has the gradient of the full definition (random per-pixel upstream)
    zg = (3 * z).requires_grad_(True)
    p = zg.softmax(1)
    m = (p + onehot) / 2
    full = (0.5 * (p * (p / m).log()).sum(1) + 0.5 * (onehot * (onehot.clamp_min(1e-30) / m).log()).sum(1)) * valid
    up = torch.rand(y.shape, generator=g)
    torch.testing.assert_close(torch.autograd.grad(pixel_loss(zg, y, "js", 255), zg, up)[0],
                               torch.autograd.grad(full, zg, up)[0], rtol=1e-4, atol=1e-6)
    assert (pixel_loss(z, y, "js", 255) <= math.log(2) + 1e-6).all()
    margin, v = label_margin(z, y, 255)
    assert torch.equal(v, valid) and ((margin > 0) == correct).all()
