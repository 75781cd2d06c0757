"""Parity with the peers' released code (PEERS.md). Skipped when the package is absent; `.ci/run`
installs both (`pip install --no-deps cospgd torchattacks`)."""
import pytest
import torch
import torch.nn.functional as F

from fastsegadv import attacks as A
from fastsegadv import losses as L


def logits_labels(b=2, c=6, h=9, w=11):
    g = torch.Generator().manual_seed(11)
    z = torch.randn(b, c, h, w, generator=g) * 3
    y = torch.randint(0, c, (b, h, w), generator=g)
    y[:, 2:4] = 255
    y[1, 0, :5] = z[1, :, 0, :5].argmax(0)  # some correct pixels
    return z, y


def test_cospgd_equals_cospgd_scale_on_valid_pixels():
    cospgd = pytest.importorskip("cospgd")
    z, y = logits_labels()
    ce = F.cross_entropy(z, y, ignore_index=255, reduction="none")
    theirs = cospgd.functions.cospgd_scale(z, y, ce, num_classes=z.shape[1])
    ours = L.cospgd_loss(z, y, reduction="none")
    valid = y != 255
    torch.testing.assert_close(ours[valid], theirs[valid], rtol=1e-5, atol=1e-6)
    assert (ours[~valid] == 0).all()


@pytest.mark.parametrize("iteration", [0, 3, 9])
def test_segpgd_equals_segpgd_scale_up_to_normalisation(iteration):
    cospgd = pytest.importorskip("cospgd")
    z, y = logits_labels()
    iterations = 10
    ce = F.cross_entropy(z, y, ignore_index=255, reduction="none")
    theirs = cospgd.functions.segpgd_scale(z, y, ce, iteration, iterations)  # batch sum / (H*W)
    ours = L.segpgd_loss(z, y, step=iteration + 1, steps=iterations, reduction="sum") / (z.shape[-2] * z.shape[-1])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    # and per pixel: our 'none' equals their weighting before the sum
    lam = iteration / (2 * iterations)
    correct = z.argmax(1) == y
    torch.testing.assert_close(L.segpgd_loss(z, y, step=iteration + 1, steps=iterations, reduction="none"),
                               torch.where(correct, (1 - lam) * ce, lam * ce))


def test_pgd_equals_torchattacks_pgd(tiny_model, batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    eps, alpha, steps = 8 / 255, 2 / 255, 5
    ours = A.pgd(tiny_model, x, y, eps=eps, alpha=alpha, steps=steps, random_start=False)
    atk = torchattacks.PGD(tiny_model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    theirs = atk(x, torch.where(y == 255, -100, y))  # torchattacks' CE only knows -100
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
