"""TsallisPGD (Matyasko et al., IJCNN 2026) against its definition: the followed gradient equals the gradient
of the Tsallis cross-entropy (1 − p_y^(1−q)) / (1 − q) written out from the softmax, q sweeps linearly from
−2 to 1 in every radius stage, stages hand over their highest-CE point, and it lowers the accuracy of the
shipped model within the budget."""
import importlib

import pytest
import torch
import torch.nn.functional as F

from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained

sea_module = importlib.import_module("fastsegadv.attacks.sea")
EPS = 8 / 255


@pytest.mark.parametrize("q", [-2.0, 0.0, 0.5, 0.999])
def test_followed_gradient_is_the_tsallis_cross_entropy_gradient(q):
    g = torch.Generator().manual_seed(0)
    z = (2 * torch.randn(2, 5, 4, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    y = torch.randint(0, 5, (2, 4, 6), generator=g)
    y[0, 0] = 255
    valid = y != 255
    follow, _ = sea_module.sea_pixel_losses(z, y, "tsallis", q=q)
    (got,) = torch.autograd.grad(follow.sum(), z)
    p_y = F.softmax(z, 1).gather(1, torch.where(valid, y, 0).unsqueeze(1)).squeeze(1)
    tsallis = (1 - p_y ** (1 - q)) / (1 - q)
    per_img = (tsallis * valid).flatten(1).sum(1) / valid.flatten(1).sum(1)
    (want,) = torch.autograd.grad(per_img.sum(), z)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_q_sweeps_each_stage_and_stages_hand_over_the_highest_ce_point(monkeypatch):
    model = load_pretrained("pgd_at")
    x, y = make_digit_scenes("test", num_images=2, seed=0)
    qs, stages = [], []
    real_losses, real_stage = sea_module.sea_losses_and_prediction, sea_module.apgd_stage

    def losses_spy(*args, q=None, **kwargs):
        qs.append(q)
        return real_losses(*args, q=q, **kwargs)

    def stage_spy(net, x_, labels, x_init, **kw):
        out = real_stage(net, x_, labels, x_init, **kw)
        stages.append((kw["radius"], kw["steps"], x_init.clone(), out))
        return out

    monkeypatch.setattr(sea_module, "sea_losses_and_prediction", losses_spy)
    monkeypatch.setattr(sea_module, "apgd_stage", stage_spy)
    adv = A.tsallis_pgd(model, x, y, eps=1 / 255, steps=10, seed=0)  # small eps: no image fully fooled
    expected = []
    for n in (3, 3, 4):
        expected += [-2.0 + 3.0 * s / n for s in range(n + 1)]  # the start, then after each iteration
    assert qs == pytest.approx(expected)
    for (_, _, _, out), (r, _, init, _) in zip(stages[:-1], stages[1:]):
        torch.testing.assert_close(init, (x + (out.highest_loss - x).clamp(-r, r)).clamp(0, 1), rtol=0, atol=0)
    assert torch.equal(adv, stages[-1][3].lowest_accuracy)


def test_lowers_accuracy_within_the_budget():
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=4, seed=0)
    adv = A.tsallis_pgd(model, x, y, eps=EPS, steps=10, seed=0)
    assert (adv - x).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    valid = y != 255
    with torch.no_grad():
        clean = ((model(x).argmax(1) == y) & valid).sum() / valid.sum()
        attacked = ((model(adv).argmax(1) == y) & valid).sum() / valid.sum()
    assert attacked < 0.6 * clean
