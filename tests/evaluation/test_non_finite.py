"""Issue 22, item 9: non-finite logits never make a model look robust. An attack whose model returns NaN
logits raises a clear error (the attack's output is not silently used); the harness counts the pixels
with non-finite logits, and every pixel of an image whose attack met them, as wrong, flags the image
and warns."""
import pytest
import torch
import torch.nn as nn

from fastsegadv import attacks as A
from fastsegadv.datasets import DigitScenes
from fastsegadv.evaluation import EvalConfig, evaluate_model
from fastsegadv.models import load_pretrained

NUM_CLASSES = 11


class NaNOnSomeImages(nn.Module):
    """The shipped model, whose logits are NaN on the left half of the images whose mean brightness is
    above a threshold (so a batch mixes finite and non-finite images)."""

    def __init__(self, model, threshold):
        super().__init__()
        self.model, self.threshold = model, threshold

    def forward(self, x):
        z = self.model(x)
        hit = (x.mean((1, 2, 3)) > self.threshold).view(-1, 1, 1, 1)
        left = torch.zeros_like(z, dtype=torch.bool)
        left[..., : z.shape[-1] // 2] = True
        return torch.where(hit & left, torch.full_like(z, float("nan")), z)


@pytest.fixture(scope="module")
def data():
    ds = DigitScenes("test", num_images=8, seed=0)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    return ds, x


def test_an_attack_on_nan_logits_raises_and_leaves_the_model(data):
    ds, x = data
    base = load_pretrained("standard")
    model = NaNOnSomeImages(base, threshold=-1.0)  # every image
    y = torch.stack([ds[i][1] for i in range(len(ds))])
    before = {k: v.clone() for k, v in base.state_dict().items()}
    for attack in (A.pgd, A.segpgd, A.fgsm):
        with pytest.raises(A.NonFiniteLogitsError, match="NaN or infinite logits"):
            attack(model, x, y, eps=4 / 255, **({} if attack is A.fgsm else {"steps": 2}))
    assert all(p.requires_grad for p in base.parameters()) and not base.training
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())
    # a finite model is unaffected
    A.pgd(base, x, y, eps=4 / 255, steps=2)


def test_the_harness_counts_non_finite_images_as_wrong_and_flags_them(data):
    ds, x = data
    base = load_pretrained("standard")
    eps = 2 / 255
    means = x.mean((1, 2, 3)).sort().values
    gaps = means[1:] - means[:-1]
    k = int(gaps.argmax())
    assert gaps[k] > 2 * eps  # an attack cannot move an image across the threshold
    threshold = float(means[k] + means[k + 1]) / 2
    hit = (x.mean((1, 2, 3)) > threshold).tolist()
    assert 0 < sum(hit) < len(hit)
    cfg = EvalConfig(attacks=["pgd@2"], eps=eps, batch_size=8, progress=False, curves=False)
    with pytest.warns(UserWarning, match="NaN or infinite logits"):
        r = evaluate_model(NaNOnSomeImages(base, threshold), ds, cfg, num_classes=NUM_CLASSES)
    ref = evaluate_model(base, ds, cfg, num_classes=NUM_CLASSES)
    label = f"{r.attacks[0].spec.label}_acc"
    for rec, h, good in zip(r.per_image, hit, ref.per_image):
        assert rec["non_finite_logits"] == h
        if h:  # the attack met NaN logits: every pixel wrong; clean: the NaN half counted wrong
            assert rec[label] == 0.0 and rec["worst_attack"] != "Clean"
            assert rec["clean_acc"] < good["clean_acc"]
        else:  # the other images of the batch are attacked as if alone (batch-invariant attacks)
            assert rec["clean_acc"] == good["clean_acc"]
            assert rec[label] == pytest.approx(good[label], abs=0.02)
    assert r.attacks[0].confusion.miou() < ref.attacks[0].confusion.miou()
    assert r.worst.pixel_accuracy() < ref.worst.pixel_accuracy()
