"""The multiscale wrapper (002 §A4) and the dense-CRF layer (002 §A5)."""
import pytest
import torch
import torch.nn.functional as F

from fastsegadv.attacks import pgd
from fastsegadv.models.crf import DenseCRF, WithCRF
from fastsegadv.models.multiscale import MultiScale, Rescaled


def test_multiscale_at_scale_one_is_the_model(tiny_model):
    x = torch.rand(2, 3, 20, 24)
    for pool in ("max", "mean"):
        torch.testing.assert_close(MultiScale(tiny_model, scales=(1.0,), pool=pool)(x), tiny_model(x))
    torch.testing.assert_close(Rescaled(tiny_model, 1.0)(x), tiny_model(x))


def test_multiscale_pools_the_upsampled_scales(tiny_model):
    x = torch.rand(2, 3, 32, 32)
    outs = [F.interpolate(tiny_model(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)),
                          size=(32, 32), mode="bilinear", align_corners=False) for s in (0.5, 0.75)] + [tiny_model(x)]
    torch.testing.assert_close(MultiScale(tiny_model, pool="max")(x), torch.stack(outs).amax(0))
    torch.testing.assert_close(MultiScale(tiny_model, pool="mean")(x), torch.stack(outs).mean(0))
    torch.testing.assert_close(Rescaled(tiny_model, 0.5)(x), outs[0])


def test_gradients_flow_through_multiscale_and_attacks_run(tiny_model, batch):
    images, labels = batch
    x = images.clone().requires_grad_(True)
    MultiScale(tiny_model)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    adv = pgd(MultiScale(tiny_model), images, labels, eps=4 / 255, steps=2, seed=0)
    assert (adv - images).abs().max() <= 4 / 255 + 1e-6
    with pytest.raises(ValueError, match="pool"):
        MultiScale(tiny_model, pool="median")


def test_crf_with_zero_weights_returns_the_unaries():
    u = torch.randn(2, 4, 9, 11)
    img = torch.rand(2, 3, 9, 11)
    assert torch.equal(DenseCRF(w_bilateral=0.0, w_spatial=0.0)(u, img), u)
    assert torch.equal(DenseCRF(iterations=0)(u, img), u)


def test_crf_output_is_a_distribution_and_smooths():
    torch.manual_seed(0)
    img = torch.zeros(1, 3, 12, 12)
    u = torch.zeros(1, 2, 12, 12)
    u[:, 0] = 2.0  # class 0 everywhere ...
    u[0, 1, 5, 5], u[0, 0, 5, 5] = 1.0, 0.0  # ... but one pixel mildly prefers class 1
    crf = DenseCRF(iterations=5, w_bilateral=2.0, w_spatial=2.0, window=5)
    q = crf.marginals(u, img)
    torch.testing.assert_close(q.sum(1), torch.ones(1, 12, 12))
    assert (q >= 0).all()
    assert q[0, 0, 5, 5] > 0.5  # the isolated pixel is smoothed to its neighbours' label
    assert torch.softmax(u, 1)[0, 0, 5, 5] < 0.5


def test_crf_kernel_matches_the_formula():
    crf = DenseCRF(w_bilateral=1.5, w_spatial=0.5, theta_alpha=3.0, theta_beta=10.0, theta_gamma=2.0, window=3)
    img = torch.rand(1, 3, 4, 5)
    k = crf.kernel(img)  # [1, 8, 4, 5]; neighbour order: row-major offsets without the centre
    i, j, (dy, dx), n = 2, 2, (1, -1), 5
    d2, c2 = dy * dy + dx * dx, float(((img[0, :, i + dy, j + dx] - img[0, :, i, j]) * 255).pow(2).sum())
    expected = 1.5 * torch.exp(torch.tensor(-d2 / 18 - c2 / 200)) + 0.5 * torch.exp(torch.tensor(-d2 / 8))
    torch.testing.assert_close(k[0, n, i, j], expected)
    assert (k[0, :3, 0] == 0).all()  # the row above the image does not exist


def test_crf_gradcheck():
    torch.manual_seed(0)
    u = torch.randn(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    img = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    crf = DenseCRF(iterations=2, window=3, theta_beta=30.0)
    assert torch.autograd.gradcheck(lambda a, b: crf(a, b), (u, img))


def test_model_with_crf_is_attackable(tiny_model, batch):
    images, labels = batch
    m = WithCRF(tiny_model, DenseCRF(iterations=2, window=3))
    assert m(images).shape == (2, 5, 20, 24)
    adv = pgd(m, images, labels, eps=4 / 255, steps=1, seed=0)
    assert not torch.equal(adv, images)
