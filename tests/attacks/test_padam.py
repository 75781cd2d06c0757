"""PAdam (Halmosi et al. 2024, ``rse``) against projected AMSGrad-Adam written out here by hand, its cosine
loss against ``F.cosine_similarity`` with the one-hot label, and APGD's masked normalised-logit loss
against its definition; both lower the accuracy of the shipped model within the budget."""
import functools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsegadv import attacks as A
from fastsegadv.attacks.best_iterate import BestIterate
from fastsegadv.attacks.margins import pixel_loss
from fastsegadv.attacks.padam import cosine_to_label
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained

EPS = 8 / 255


def test_cosine_loss_is_one_minus_the_cosine_to_the_one_hot_label():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 4, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (2, 4, 6), generator=g)
    y[0, 0] = 255
    valid = y != 255
    onehot = F.one_hot(torch.where(valid, y, 0), 5).permute(0, 3, 1, 2).to(z.dtype)
    want = torch.where(valid, 1 - F.cosine_similarity(z, onehot, dim=1), torch.zeros(()).double())
    torch.testing.assert_close(cosine_to_label(z, y, 255), want)


def test_mask_norm_corrlog_is_the_negative_normalised_true_logit_on_correct_pixels():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 5, 4, 6, generator=g)
    y = torch.where(torch.rand(2, 4, 6, generator=g) < 0.5, z.argmax(1), torch.randint(0, 5, (2, 4, 6), generator=g))
    y[1, :, 0] = 255
    valid = y != 255
    z_y = z.gather(1, torch.where(valid, y, 0).unsqueeze(1)).squeeze(1)
    want = -(z_y / z.norm(dim=1)) * ((z.argmax(1) == y) & valid)
    torch.testing.assert_close(pixel_loss(z, y, "mask_norm_corrlog", 255), want)


def _hand_written_padam(net, x, y, delta0, eps, lr, steps, loss):
    """Projected AMSGrad ascent on δ: m, v, v̂ = max(v̂, v), bias corrections, then clip to [−ε, ε] and to
    x + δ ∈ [0, 1]; returns every iterate x + δ (the start first)."""
    b1, b2, tiny = 0.9, 0.999, 1e-8
    valid = y != 255
    delta = delta0.clone()
    m = torch.zeros_like(delta)
    v = torch.zeros_like(delta)
    vmax = torch.zeros_like(delta)
    out = [x + delta]
    for t in range(1, steps + 1):
        d = delta.clone().requires_grad_(True)
        z = net(x + d)
        if loss == "ce":
            pix = F.cross_entropy(z, y, ignore_index=255, reduction="none")
        else:
            pix = cosine_to_label(z, y, 255)
        per_img = (pix * valid).flatten(1).sum(1) / valid.flatten(1).sum(1)
        (grad,) = torch.autograd.grad(per_img.sum(), d)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        vmax = torch.maximum(vmax, v)
        step = lr / (1 - b1**t) * m / (vmax.sqrt() / (1 - b2**t) ** 0.5 + tiny)
        delta = (delta + step).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
        out.append(x + delta)
    return out


@pytest.mark.parametrize("loss", ["ce", "cos"])
def test_iterates_are_projected_amsgrad_ascent(loss, monkeypatch):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 5, 3, padding=1)).double().eval()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 8, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (2, 8, 10), generator=g)
    y[:, 0] = 255
    seen = []
    real = BestIterate.update

    def spy(self, x_cur, *args, **kwargs):
        seen.append(x_cur.clone())
        return real(self, x_cur, *args, **kwargs)

    monkeypatch.setattr(BestIterate, "update", spy)
    A.padam(net, x, y, eps=EPS, steps=6, loss=loss, seed=[4, 5])
    want = _hand_written_padam(net, x, y, seen[0] - x, EPS, 2 / 255, 6, loss)
    assert len(seen) == len(want) == 7
    for got, ref in zip(seen, want):
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("attack", [functools.partial(A.padam, loss="ce"), functools.partial(A.padam, loss="cos"),
                                    functools.partial(A.apgd, loss="mask_norm_corrlog")],
                         ids=["padam_ce", "padam_cos", "apgd_norm_corrlog"])
def test_lowers_accuracy_within_the_budget(attack):
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=4, seed=0)
    adv = attack(model, x, y, eps=EPS, steps=10, seed=0)
    assert (adv - x).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    valid = y != 255
    with torch.no_grad():
        clean = ((model(x).argmax(1) == y) & valid).sum() / valid.sum()
        attacked = ((model(adv).argmax(1) == y) & valid).sum() / valid.sum()
    assert attacked < 0.6 * clean, (float(clean), float(attacked))


def test_options_are_checked():
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=1, seed=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        A.padam(model, x, y, eps=EPS, steps=2, loss="js")
    with pytest.raises(ValueError, match="loss must be one of"):
        A.apgd(model, x, y, eps=EPS, steps=2, loss="norm_corrlog")


def test_fully_fooled_images_stop_and_passes_are_counted():
    # constant logits favouring class 0: image 0 (all class 1) is fooled from the start, image 1 never
    net = nn.Conv2d(3, 3, 1)
    nn.init.zeros_(net.weight)
    with torch.no_grad():
        net.bias.copy_(torch.tensor([2.0, 0.0, -1.0]))
    x = torch.rand(2, 3, 4, 4)
    y = torch.stack([torch.ones(4, 4, dtype=torch.long), torch.zeros(4, 4, dtype=torch.long)])
    passes = torch.zeros(2, dtype=torch.long)
    A.padam(net, x, y, eps=EPS, steps=5, loss="cos", seed=0, passes=passes)
    assert passes.tolist() == [1, 6]


def test_radius_reduction_runs_seas_three_stages(monkeypatch):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 5, 3, padding=1)).double().eval()
    x = torch.rand(2, 3, 8, 10, dtype=torch.float64)
    y = torch.randint(0, 5, (2, 8, 10))
    seen = []
    real = BestIterate.update

    def spy(self, x_cur, *args, **kwargs):
        seen.append((x_cur - x).abs().amax().item())
        return real(self, x_cur, *args, **kwargs)

    monkeypatch.setattr(BestIterate, "update", spy)
    passes = torch.zeros(2, dtype=torch.long)
    adv = A.padam(net, x, y, eps=EPS, steps=10, loss="cos", seed=0, radius_reduction=True, passes=passes)
    # 3, 3 and 4 steps (each stage scores its start and every iterate) at radii 2, 1.5 and 1 eps
    assert passes.tolist() == [13, 13] and len(seen) == 13
    for k, bound in [(range(0, 4), 2 * EPS), (range(4, 8), 1.5 * EPS), (range(8, 13), EPS)]:
        assert max(seen[i] for i in k) <= bound + 1e-12
    assert max(seen[0:4]) > 1.5 * EPS  # the first stage uses its larger ball
    assert (adv - x).abs().max() <= EPS + 1e-12


def test_radius_reduction_with_fewer_steps_than_stages():
    net = nn.Conv2d(3, 4, 1).double().eval()
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (1, 4, 4))
    passes = torch.zeros(1, dtype=torch.long)
    adv = A.padam(net, x, y, eps=EPS, steps=3, loss="cos", seed=0, radius_reduction=True, passes=passes)
    assert passes.tolist() == [4] and (adv - x).abs().max() <= EPS + 1e-12  # stages of 0, 0 and 3 steps
