"""SEA (Croce, Singh, Hein, ECCV 2024) against its published algorithm, written out here independently:
the step-size checkpoints as the released loop counts them, the radius stages, the warm starts, the
halving rule, the three losses against their definitions (JS from softmax and one-hot), the per-image
early stop and pass count, the per-image worst case of ``sea`` and the ``sea@N`` preset of the harness."""
import importlib
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsegadv import attacks as A
from fastsegadv.attacks.sea import (
    balanced_class_weights,
    halve_step_size,
    pixel_accuracy,
    sea_checkpoints,
    sea_pixel_losses,
    stage_iterations,
)
from fastsegadv.attacks.sea_class_weights import ADE20K_CLASS_WEIGHTS, VOC_CLASS_WEIGHTS, dataset_class_weights
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained

EPS = 8 / 255
sea_module = importlib.import_module("fastsegadv.attacks.sea")  # the module (the package exports the function)


def released_checkpoints(n_iter: int) -> list[int]:
    """The released loop's bookkeeping (AutoAttack style): a counter of steps since the last check is compared
    with k after every iteration; k starts at max(int(0.22 n), 1) and after each check becomes
    max(k - max(int(0.03 n), 1), max(int(0.06 n), 1))."""
    k, k_min, decr = max(int(0.22 * n_iter), 1), max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    counter, out = 0, []
    for i in range(n_iter):
        counter += 1
        if counter == k:
            out.append(i)
            counter = 0
            k = max(k - decr, k_min)
    return out


@pytest.mark.parametrize("n", [1, 3, 10, 90, 120, 300])
def test_checkpoints_follow_the_released_schedule(n):
    assert sea_checkpoints(n) == released_checkpoints(n)
    if n == 90:
        assert sea_checkpoints(n) == [18, 35, 50, 63, 74, 83]


def test_radius_stages_split_the_iterations():
    assert stage_iterations(300) == [90, 90, 120]  # 0.3 N, 0.3 N, 0.4 N at 2 eps, 1.5 eps, eps
    assert stage_iterations(10) == [3, 3, 4]
    assert stage_iterations(7) == [2, 2, 3]
    assert [m for m, _ in sea_module.RADIUS_STAGES] == [2.0, 1.5, 1.0]


def test_halving_rule():
    """Halve where the tracked loss rose in at most rho * k of the window, or where the last check did not
    halve and the best tracked loss did not improve since."""
    inc = torch.tensor([7.0, 8.0, 8.0, 8.0])
    reduced_last = torch.tensor([True, True, False, False])
    best_now = torch.tensor([1.0, 1.0, 1.0, 2.0])
    best_then = torch.tensor([0.5, 0.5, 1.0, 1.0])
    got = halve_step_size(inc, 10, reduced_last, best_now, best_then)
    assert got.tolist() == [True, False, True, False]  # 7 <= 7.5; 8 > 7.5; stalled; improved


def _logits_labels(seed=0, b=2, c=5, h=6, w=7):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, h, w, generator=g) * 2
    y = torch.randint(0, c, (b, h, w), generator=g)
    y[:, 0] = 255
    return z, y


def test_js_avg_is_the_jensen_shannon_divergence_to_the_one_hot_label():
    z, y = _logits_labels()
    got, _ = sea_pixel_losses(z, y, "js_avg")
    p = F.softmax(z.double(), 1)
    valid = y != 255
    q = F.one_hot(torch.where(valid, y, 0), z.shape[1]).permute(0, 3, 1, 2).double()
    m = (p + q) / 2

    def kl(a, b):
        return torch.where(a > 0, a * torch.log(a / b), torch.zeros_like(a)).sum(1)

    js = 0.5 * kl(p, m) + 0.5 * kl(q, m)  # [B, H, W]
    want = (js * valid).flatten(1).sum(1) / valid.flatten(1).sum(1)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_masked_losses_and_class_weights():
    z, y = _logits_labels(1)
    valid = y != 255
    ce = F.cross_entropy(z, y, ignore_index=255, reduction="none")
    correct = (z.argmax(1) == y) & valid
    n = valid.flatten(1).sum(1)
    masked = (ce * correct).flatten(1).sum(1) / n
    got, tracked = sea_pixel_losses(z, y, "mask_ce_avg")
    torch.testing.assert_close(got, masked)
    torch.testing.assert_close(tracked, (ce * valid).flatten(1).sum(1) / n)  # ce-avg steers the step size
    uniform, _ = sea_pixel_losses(z, y, "mask_ce_bal", class_weights=torch.ones(5))
    torch.testing.assert_close(uniform, masked)
    w = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])
    weighted, _ = sea_pixel_losses(z, y, "mask_ce_bal", class_weights=w)
    torch.testing.assert_close(weighted, (ce * correct * w[torch.where(valid, y, 0)]).flatten(1).sum(1) / n)


def test_balanced_weights_are_normalised_inverse_frequencies():
    y = torch.tensor([[[0, 0, 0, 1], [1, 2, 255, 255]]])  # counts 3, 2, 1 of classes 0, 1, 2
    w = balanced_class_weights(y, 4, 255)[0]
    inv = torch.tensor([1 / 3, 1 / 2, 1.0, 0.0])
    torch.testing.assert_close(w, inv / inv.sum())
    totals = w * torch.tensor([3.0, 2.0, 1.0, 0.0])  # each present class weighs the same in total
    torch.testing.assert_close(totals[:3], totals[:1].expand(3))
    assert totals[3] == 0


def test_stages_warm_start_from_the_projected_best_point(tiny_model, batch, monkeypatch):
    x, y = batch
    calls = []
    real = sea_module.apgd_stage

    def spy(net, x_, labels, x_init, *, radius, steps, **kw):
        out = real(net, x_, labels, x_init, radius=radius, steps=steps, **kw)
        calls.append((radius, steps, x_init.clone(), out[0].clone()))
        return out

    monkeypatch.setattr(sea_module, "apgd_stage", spy)
    adv = A.sea_apgd(tiny_model, x, y, eps=EPS, steps=10, loss="mask_ce_avg", seed=[1, 2])
    assert [(r, n) for r, n, _, _ in calls] == [(2 * EPS, 3), (1.5 * EPS, 3), (EPS, 4)]
    first_init = calls[0][2]
    assert (first_init - x).abs().max() <= 2 * EPS + 1e-6 and (first_init != x).any()  # random start, 2 eps
    for (_, _, _, best), (r, _, init, _) in zip(calls[:-1], calls[1:]):
        torch.testing.assert_close(init, (x + (best - x).clamp(-r, r)).clamp(0, 1), rtol=0, atol=0)
    assert torch.equal(adv, calls[-1][3])
    assert (adv - x).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("loss", sea_module.SEA_LOSSES)
def test_attack_lowers_accuracy_and_counts_passes(loss):
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=4, seed=0)
    passes = torch.zeros(4, dtype=torch.long)
    adv = A.sea_apgd(model, x, y, eps=EPS, steps=10, loss=loss, seed=0, passes=passes)
    with torch.no_grad():
        clean = pixel_accuracy(model(x).argmax(1), y, 255)
        attacked = pixel_accuracy(model(adv).argmax(1), y, 255)
    assert (attacked < clean).all() and attacked.mean() < 0.5 * clean.mean(), (clean, attacked)
    assert ((passes >= 3) & (passes <= 10 + 3)).all()  # one start per stage, at most one pass per iteration


class _AlwaysClassZero(nn.Module):
    """Predicts class 0 everywhere whatever the input (a large margin plus a small input-dependent term)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        base = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
        return base + 1e-3 * self.conv(x)


def test_images_already_fooled_stop_at_once():
    model = _AlwaysClassZero().eval()
    x = torch.rand(2, 3, 8, 8)
    y = torch.ones(2, 8, 8, dtype=torch.long)  # every valid pixel is wrong from the start (prediction 0)
    y[1, :4] = 0  # image 1 still has correct pixels
    passes = torch.zeros(2, dtype=torch.long)
    A.sea_apgd(model, x, y, eps=EPS, steps=30, seed=0, passes=passes)
    assert passes[0] == 3  # the starting point of each radius stage, no iteration
    assert passes[1] > 3


def test_sea_keeps_the_lowest_accuracy_per_image():
    model = load_pretrained("pgd_at")
    x, y = make_digit_scenes("test", num_images=4, seed=1)
    losses = ("mask_ce_avg", "js_avg")
    adv = A.sea(model, x, y, eps=4 / 255, steps=6, losses=losses, seed=[5, 6, 7, 8])
    accs = []
    with torch.no_grad():
        for loss in losses:
            a = A.sea_apgd(model, x, y, eps=4 / 255, steps=6, loss=loss, seed=[5, 6, 7, 8])
            accs.append(pixel_accuracy(model(a).argmax(1), y, 255))
        got = pixel_accuracy(model(adv).argmax(1), y, 255)
    assert not torch.equal(accs[0], accs[1])  # the losses differ: the choice is per image
    torch.testing.assert_close(got, torch.minimum(accs[0], accs[1]))


def test_published_class_weights_by_dataset(tiny_model, batch):
    voc = dataset_class_weights("voc", 21)
    assert len(voc) == 21 and math.isclose(sum(voc), 1.0, abs_tol=1e-6) and min(voc) > 0
    assert voc[0] == min(voc)  # the background, by far the most frequent class, weighs least
    assert dataset_class_weights("ade20k", 151) == ADE20K_CLASS_WEIGHTS
    assert dataset_class_weights("ade20k", 150) == ADE20K_CLASS_WEIGHTS[1:]  # raw 0 ('other') ignored
    assert VOC_CLASS_WEIGHTS == voc
    with pytest.raises(ValueError, match="for 21 classes"):
        dataset_class_weights("voc", 19)
    with pytest.raises(ValueError, match="not 'cityscapes'"):
        dataset_class_weights("cityscapes", 19)
    x, y = batch  # a 5-class model: VOC's weights do not fit, and the attack says so before any work
    with pytest.raises(ValueError, match="for 21 classes"):
        A.sea_apgd(tiny_model, x, y, eps=EPS, steps=6, class_weights="voc")
    with pytest.raises(ValueError, match="one weight per class"):
        A.sea_apgd(tiny_model, x, y, eps=EPS, steps=6, class_weights=torch.ones(4))
    A.sea_apgd(tiny_model, x, y, eps=EPS, steps=3, class_weights=torch.ones(x.shape[0], 5))  # per image


def test_options_are_checked(tiny_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="loss must be one of"):
        A.sea_apgd(tiny_model, x, y, eps=EPS, steps=6, loss="masked_ce")
    with pytest.raises(ValueError, match="at least 3 steps"):
        A.sea_apgd(tiny_model, x, y, eps=EPS, steps=2)
    with pytest.raises(ValueError, match="eps"):
        A.sea_apgd(tiny_model, x, y, eps=8, steps=6)
    assert math.isclose(sea_module.RHO, 0.75) and math.isclose(sea_module.MOMENTUM, 0.75)


def _released_loop(net, x, y, eps, steps, loss, first_start):
    """SEA's APGD with radius reduction for ONE image (batch of 1), transcribed from the published
    pseudo-code of the released code (apgd_largereps / apgd_train) with this module's documented choices
    (accuracy over valid pixels, first window against the starting point, stop once fully fooled)."""
    valid = y != 255
    ys = torch.where(valid, y, 0)
    counts = torch.stack([((ys == c) & valid).sum() for c in range(5)]).double()
    inv = torch.where(counts > 0, 1 / counts.clamp_min(1), torch.zeros_like(counts))
    weights = inv / inv.sum()

    def losses(v, need_grad=True):
        v = v.detach().requires_grad_(need_grad)
        z = net(v)
        ce = F.cross_entropy(z, y, ignore_index=255, reduction="none")
        correct = (z.argmax(1) == y) & valid
        if loss == "mask_ce_avg":
            pix = ce * correct
        elif loss == "mask_ce_bal":
            pix = ce * correct * weights[ys]
        else:  # JS(p || onehot) as a function of p_y (its value against the KL form: test above)
            p_y = F.softmax(z, 1).gather(1, ys.unsqueeze(1)).squeeze(1)
            pix = math.log(2) + 0.5 * (p_y * torch.log(p_y) - (1 + p_y) * torch.log1p(p_y))
        n = valid.sum()
        follow = (pix * valid).sum() / n
        g = torch.autograd.grad(follow, v)[0] if need_grad else None
        acc = float((correct.sum() / n).detach())
        return float(((ce * valid).sum() / n).detach()), g, acc

    x_init = first_start
    n_first = int(0.3 * steps)
    for mult, n in ((2.0, n_first), (1.5, n_first), (1.0, steps - 2 * n_first)):
        r = mult * eps

        def proj(v):
            return torch.min(torch.max(v, x - r), x + r).clamp(0, 1)

        x_adv = (x + (x_init - x).clamp(-r, r)).clamp(0, 1)
        eta = 2 * r
        k, k_min, decr = max(int(0.22 * n), 1), max(int(0.06 * n), 1), max(int(0.03 * n), 1)
        track, g, acc = losses(x_adv)
        x_best, g_best, loss_best = x_adv, g, track
        x_best_adv, acc_best = x_adv, acc
        x_old, prev, counter, inc = x_adv, track, 0, 0
        reduced_last, loss_best_last = True, loss_best
        for i in range(n):
            if acc_best == 0:
                break
            a = 1.0 if i == 0 else 0.75
            z = proj(x_adv + eta * g.sign())
            x_new = proj(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_old))
            x_old, x_adv = x_adv, x_new
            track, g_new, acc = losses(x_adv, need_grad=i < n - 1)
            if acc <= acc_best:
                x_best_adv, acc_best = x_adv, acc
            inc += track > prev
            prev = track
            if track > loss_best:
                loss_best, x_best, g_best = track, x_adv, g_new
            g = g_new
            counter += 1
            if counter == k:
                halve = inc <= 0.75 * k or (not reduced_last and loss_best <= loss_best_last)
                if halve:
                    eta, x_adv, g = eta / 2, x_best, g_best
                reduced_last, loss_best_last, counter, inc = halve, loss_best, 0, 0
                k = max(k - decr, k_min)
        x_init = x_best_adv
    return x_init


@pytest.mark.parametrize("loss", sea_module.SEA_LOSSES)
def test_iterates_match_the_released_loop_in_float64(loss, monkeypatch):
    """End to end in float64 (no rounding ties): a batch of 3 through :func:`sea_apgd` equals the transcribed
    released loop run on each image alone."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 5, 3, padding=1)).double().eval()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 10, 12, generator=g, dtype=torch.float64)
    with torch.no_grad():
        pred = net(x).argmax(1)
    y = torch.where(torch.rand(3, 10, 12, generator=g) < 0.7, pred, torch.randint(0, 5, (3, 10, 12), generator=g))
    starts = []
    real = sea_module.apgd_stage

    def spy(net_, x_, labels, x_init, **kw):
        starts.append(x_init.clone())
        return real(net_, x_, labels, x_init, **kw)

    monkeypatch.setattr(sea_module, "apgd_stage", spy)
    ours = A.sea_apgd(net, x, y, eps=EPS, steps=20, loss=loss, seed=[1, 2, 3])
    for i in range(3):
        want = _released_loop(net, x[i:i + 1], y[i:i + 1], EPS, 20, loss, starts[0][i:i + 1])
        assert torch.equal(ours[i:i + 1], want), f"image {i}"


def test_stages_without_iterations_spend_no_pass(tiny_model, batch):
    x, y = batch
    passes = torch.zeros(x.shape[0], dtype=torch.long)
    adv = A.sea_apgd(tiny_model, x, y, eps=EPS, steps=3, loss="mask_ce_avg", seed=0, passes=passes)
    assert stage_iterations(3) == [0, 0, 3]
    assert (passes <= 4).all()  # the last stage's start and its 3 iterations only
    assert (adv - x).abs().max() <= EPS + 1e-6
