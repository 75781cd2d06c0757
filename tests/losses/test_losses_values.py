"""Every loss against values computed by hand (numpy, one formula per pixel) on tiny inputs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastsegadv import losses as L


def tiny():
    z = torch.tensor([[[[2.0, 0.0]], [[1.0, 0.5]], [[-1.0, 3.0]]]])  # [1, 3, 1, 2]
    y = torch.tensor([[[0, 0]]])  # pixel 0 correct (argmax 0), pixel 1 wrong (argmax 2)
    return z, y


def np_pixel(z):
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    return p, -np.log(p)


def test_cross_entropy_matches_torch_and_hand():
    z, y = tiny()
    ce = [np_pixel(z[0, :, 0, i].numpy())[1][0] for i in range(2)]
    assert L.cross_entropy(z, y).item() == pytest.approx(np.mean(ce), rel=1e-6)
    assert L.cross_entropy(z, y, reduction="sum").item() == pytest.approx(np.sum(ce), rel=1e-6)
    zz, yy = torch.randn(2, 5, 6, 7), torch.randint(0, 5, (2, 6, 7))
    yy[0, 2] = 255
    torch.testing.assert_close(L.cross_entropy(zz, yy), F.cross_entropy(zz, yy, ignore_index=255))
    torch.testing.assert_close(L.cross_entropy(zz, yy, reduction="none"),
                               F.cross_entropy(zz, yy, ignore_index=255, reduction="none"))


@pytest.mark.parametrize("schedule,expected", [
    ("linear", 2 / 20), ("log", 0.5 * math.log2(1 + 2 / 10)), ("exp", 0.5 * (2 ** 0.2 - 1)),
])
def test_segpgd_lambda_eq5(schedule, expected):
    assert L.segpgd_lambda(3, 10, schedule) == pytest.approx(expected)
    assert L.segpgd_lambda(1, 10, schedule) == 0.0


def test_segpgd_loss_hand():
    z, y = tiny()
    ce = [np_pixel(z[0, :, 0, i].numpy())[1][0] for i in range(2)]
    lam = 2 / 20  # t = 3 of T = 10
    expected = ((1 - lam) * ce[0] + lam * ce[1]) / 2
    assert L.segpgd_loss(z, y, step=3, steps=10).item() == pytest.approx(expected, rel=1e-6)
    assert L.segpgd_loss(z, y, step=1, steps=1, schedule="only_correct").item() == pytest.approx(ce[0] / 2, rel=1e-6)
    assert L.segpgd_loss(z, y, step=5, steps=9, schedule="constant", lam=0.3).item() == pytest.approx(
        (0.7 * ce[0] + 0.3 * ce[1]) / 2, rel=1e-6)


def test_region_lambdas_eq4_and_state():
    assert L.region_lambdas(1, 10) == pytest.approx((19 / 20, 0.0, 1 / 20))
    assert L.region_lambdas(10, 10) == pytest.approx((10 / 20, 9 / 20, 1 / 20))
    z, y = tiny()
    clean_pred = torch.tensor([[[0, 1]]])  # pixel 0 correct on clean -> T, pixel 1 wrong -> F
    state = L.init_region_state(clean_pred, y)
    assert state.tolist() == [[[L.TRUE, L.FALSE]]]
    # now pixel 0 becomes wrong -> B, and stays B even when it turns back
    z_wrong = z.clone()
    z_wrong[0, 1, 0, 0] = 5.0
    ce = [np_pixel(z_wrong[0, :, 0, i].numpy())[1][0] for i in range(2)]
    loss = L.region_loss(z_wrong, y, state, step=4, steps=10)
    assert state.tolist() == [[[L.BOUNDARY, L.FALSE]]]
    assert loss.item() == pytest.approx((3 / 20 * ce[0] + 1 / 20 * ce[1]) / 2, rel=1e-6)
    L.region_loss(z, y, state, step=5, steps=10)
    assert state.tolist() == [[[L.BOUNDARY, L.FALSE]]]


def test_cospgd_hand_softmax_and_sigmoid():
    z, y = tiny()
    vals, vals_sig = [], []
    for i in range(2):
        zi = z[0, :, 0, i].numpy()
        p, nll = np_pixel(zi)
        vals.append(p[0] / np.linalg.norm(p) * nll[0])
        s = 1 / (1 + np.exp(-zi))
        vals_sig.append(s[0] / np.linalg.norm(s) * nll[0])
    assert L.cospgd_loss(z, y).item() == pytest.approx(np.mean(vals), rel=1e-6)
    assert L.cospgd_loss(z, y, activation="sigmoid").item() == pytest.approx(np.mean(vals_sig), rel=1e-6)


@pytest.mark.parametrize("measure", ["margin", "max_min", "mean_margin", "entropy"])
def test_uncertainty_hand(measure):
    z, y = tiny()
    vals = []
    for i in range(2):
        p, nll = np_pixel(z[0, :, 0, i].numpy())
        s = np.sort(p)[::-1]
        u = {
            "margin": 1 - (s[0] - s[1]),
            "max_min": 1 - (s[0] - s[-1]),
            "mean_margin": 1 - np.mean(s[0] - s[1:]),  # 004 Eq. 7
            "entropy": -(p * np.log(p)).sum() / np.log(3),
        }[measure]
        vals.append(np.exp(u) * nll[0])
    assert L.uncertainty_loss(z, y, measure=measure).item() == pytest.approx(np.mean(vals), rel=1e-6)


def test_zero_out_hand():
    z, y = tiny()
    p1, nll1 = np_pixel(z[0, :, 0, 1].numpy())
    assert p1.max() >= 0.75  # pixel 1 is confidently wrong
    p0, nll0 = np_pixel(z[0, :, 0, 0].numpy())
    assert L.zero_out_loss(z, y).item() == pytest.approx(nll0[0] / 2, rel=1e-6)
    # with tau above its confidence the pixel counts again
    assert L.zero_out_loss(z, y, tau=0.99).item() == pytest.approx((nll0[0] + nll1[0]) / 2, rel=1e-6)


def test_products_multiply():
    z, y = torch.randn(2, 4, 5, 6), torch.randint(0, 4, (2, 5, 6))
    w = L.Weighting(segpgd="linear", uncertainty="entropy", zero_out=0.75)
    prod = L.weighted_cross_entropy(z, y, weighting=w, step=2, steps=5, reduction="none")
    a = L.segpgd_loss(z, y, step=2, steps=5, reduction="none")
    b = L.uncertainty_loss(z, y, reduction="none")
    c = L.zero_out_loss(z, y, reduction="none")
    ce = L.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(prod * ce * ce, a * b * c)


def test_prototypes_hand():
    # one image 1x4, features d=2: class 0 at pixels 0,1; class 1 at pixel 2; pixel 3 ignored
    feats = torch.tensor([[[[1.0, 3.0, 0.0, 9.0]], [[0.0, 0.0, 2.0, 9.0]]]])  # [1, 2, 1, 4]
    labels = torch.tensor([[[0, 0, 1, 255]]])
    state = torch.zeros(1, 1, 4, dtype=torch.uint8)
    protos, present = L.class_prototypes(feats, labels, state, num_classes=3)
    torch.testing.assert_close(protos[0, 0], torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(protos[0, 1], torch.tensor([0.0, 2.0]))
    assert present.tolist() == [[True, True, False]]
    assert L.prototype_loss(feats, labels, state, num_classes=3).item() == pytest.approx(0.0, abs=1e-7)
    feats2 = torch.tensor([[[[1.0, 1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0, 0.0]]]])
    # cos((1,0),(1,1)) = 1/sqrt2, ordered pairs (2) / C(2,2) = 1  -> sqrt2 (Eq. 6 as written)
    assert L.prototype_loss(feats2, labels, state, num_classes=3).item() == pytest.approx(math.sqrt(2), rel=1e-6)
    # a pixel outside the True region does not count
    state[0, 0, 2] = L.BOUNDARY
    assert L.prototype_loss(feats2, labels, state, num_classes=3).item() == 0.0
