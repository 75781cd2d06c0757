"""Issue 23's mIoU-aimed objective (``mask_ce_iou``) and SEA's ``final_loss`` scheduling.

The weight of a still-correct pixel of class c is 1 / U_c: checked against scikit-learn's Jaccard index, as
the exact drop of IoU_c when one more correct pixel of class c is fooled."""
import numpy as np
import pytest
import torch
from sklearn.metrics import jaccard_score

from fastsegadv import attacks as A
from fastsegadv.attacks.sea import fp_target, image_miou_damage, iou_class_weights, sea_pixel_losses


def _iou(pred: np.ndarray, label: np.ndarray, k: int) -> np.ndarray:
    return jaccard_score(label.ravel(), pred.ravel(), labels=list(range(k)), average=None, zero_division=0.0)


def test_weight_is_the_iou_drop_of_fooling_one_pixel():
    g = torch.Generator().manual_seed(0)
    k = 5
    labels = torch.randint(0, k, (2, 9, 11), generator=g)
    pred = torch.where(torch.rand(2, 9, 11, generator=g) < 0.6, labels, torch.randint(0, k, (2, 9, 11), generator=g))
    labels[0, 0, :4] = 255  # ignored pixels count nowhere
    w = iou_class_weights(pred, labels, k, 255)  # [B, K]
    for b in range(2):
        valid = (labels[b] != 255).numpy()
        y, p = labels[b].numpy()[valid], pred[b].numpy()[valid]
        before = _iou(p, y, k)
        for c in range(k):
            correct = np.flatnonzero((y == c) & (p == c))
            if correct.size == 0:
                continue
            fooled = p.copy()
            fooled[correct[0]] = (c + 1) % k
            drop = before[c] - _iou(fooled, y, k)[c]
            assert w[b, c].item() == pytest.approx(drop, rel=1e-6)


def test_mask_ce_iou_is_the_weighted_masked_ce():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, 7, generator=g)
    labels = torch.randint(0, 4, (2, 6, 7), generator=g)
    labels[1, :2] = 255
    followed, _ = sea_pixel_losses(logits, labels, "mask_ce_iou", ignore_index=255)
    pred = logits.argmax(1)
    w = iou_class_weights(pred, labels, 4, 255)
    ce = torch.nn.functional.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    valid = labels != 255
    safe = torch.where(valid, labels, 0)
    pix = ce * ((pred == labels) & valid) * w.gather(1, safe.flatten(1)).view_as(ce)
    expected = pix.flatten(1).sum(1) / valid.flatten(1).sum(1)
    torch.testing.assert_close(followed, expected)


def test_final_loss_schedules_the_last_stage(tiny_model, batch):
    x, y = batch
    plain = A.sea_apgd(tiny_model, x, y, eps=4 / 255, steps=6, loss="mask_ce_bal", seed=0)
    same = A.sea_apgd(tiny_model, x, y, eps=4 / 255, steps=6, loss="mask_ce_bal", final_loss="mask_ce_bal", seed=0)
    assert torch.equal(plain, same)
    mixed = A.sea_apgd(tiny_model, x, y, eps=4 / 255, steps=6, loss="mask_ce_bal", final_loss="mask_ce_iou", seed=0)
    assert ((mixed - x).abs() <= 4 / 255 + 1e-6).all() and mixed.min() >= 0 and mixed.max() <= 1
    with pytest.raises(ValueError, match="final_loss must be one of"):
        A.sea_apgd(tiny_model, x, y, eps=4 / 255, steps=6, final_loss="iou")
    spec = A.AttackSpec.parse("sea_apgd:loss='mask_ce_bal',final_loss='mask_ce_iou'@6")
    assert torch.equal(spec.run(tiny_model, x, y, eps=4 / 255, seed=0), mixed)


def test_image_miou_damage_and_fp_target_against_sklearn():
    g = torch.Generator().manual_seed(3)
    k = 4
    labels = torch.randint(0, k, (3, 8, 9), generator=g)
    pred = torch.where(torch.rand(3, 8, 9, generator=g) < 0.5, labels, torch.randint(0, k, (3, 8, 9), generator=g))
    labels[2, :3] = 255
    damage = image_miou_damage(pred, labels, k, 255)
    target, drop = fp_target(pred, labels, k, 255)
    for b in range(3):
        valid = (labels[b] != 255).numpy()
        y, p = labels[b].numpy()[valid], pred[b].numpy()[valid]
        present = sorted(set(y.tolist()) | set(p.tolist()))
        iou = jaccard_score(y, p, labels=present, average=None, zero_division=0.0)
        assert damage[b].item() == pytest.approx(1 - iou.mean(), rel=1e-6)
        # k*: one more false positive (a pixel of another class predicted as k) lowers IoU_k the most
        before = _iou(p, y, k)
        drops = []
        for c in range(k):
            idx = np.flatnonzero((y != c) & (p != c))
            moved = p.copy()
            moved[idx[0]] = c
            drops.append(before[c] - _iou(moved, y, k)[c])
        assert int(target[b]) == int(np.argmax(drops)) and drop[b].item() == pytest.approx(max(drops), rel=1e-6)


def test_iou_selection_and_miou_loss_run_within_the_budget(tiny_model, batch):
    x, y = batch
    for kw in ({"select": "iou"}, {"loss": "miou"}, {"loss": "mask_ce_bal", "final_loss": "miou", "select": "iou"}):
        adv = A.sea_apgd(tiny_model, x, y, eps=4 / 255, steps=6, seed=0, **kw)
        assert ((adv - x).abs() <= 4 / 255 + 1e-6).all() and adv.min() >= 0 and adv.max() <= 1
        with torch.no_grad():
            best = image_miou_damage(tiny_model(adv).argmax(1), y, 5, 255)
        assert (best >= 0).all()
    with pytest.raises(ValueError, match="select must be one of"):
        A.sea_apgd(tiny_model, x, y, eps=4 / 255, steps=6, select="miou")


def test_class_weights_are_refused_for_the_iou_losses(tiny_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="class_weights apply to mask_ce_bal only"):
        A.sea_apgd(tiny_model, x, y, eps=4 / 255, steps=3, loss="mask_ce_iou", class_weights=torch.ones(5))
