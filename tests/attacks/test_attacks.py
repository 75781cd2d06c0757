"""Properties every attack must have: budget, valid images, determinism, model untouched, ignore pixels
without influence, all-ignored batches, clear errors; and the attack-specific behaviour."""
from functools import partial

import pytest
import torch
import torch.nn as nn

from fastsegadv import attacks as A

EPS = 8 / 255
CASES = {
    "fgsm": partial(A.fgsm, eps=EPS),
    "fgsm_ll": partial(A.fgsm_ll, eps=EPS),
    "ifgsm": partial(A.ifgsm, eps=4 / 255, steps=3),
    "ifgsm_ll": partial(A.ifgsm_ll, eps=4 / 255, steps=3),
    "pgd": partial(A.pgd, eps=EPS, alpha=0.01, steps=3),
    "pgd_restarts": partial(A.pgd, eps=EPS, alpha=0.01, steps=2, restarts=2),
    "pgd_best_iterate": partial(A.pgd, eps=EPS, alpha=0.01, steps=3, best_iterate=True),
    "pgd_best_loss": partial(A.pgd, eps=EPS, alpha=0.01, steps=3, best_iterate="loss"),
    "segpgd_best_loss": partial(A.segpgd, eps=EPS, alpha=0.01, steps=3, best_iterate="loss"),
    "pgd_normalized": partial(A.pgd, eps=EPS, alpha=0.01, steps=2, normalization=((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))),
    "bim_l2": partial(A.bim_l2, eps=0.5, alpha=0.2, steps=3),
    "segpgd": partial(A.segpgd, eps=EPS, alpha=0.01, steps=3),
    "segpgd_exp": partial(A.segpgd, eps=EPS, alpha=0.01, steps=3, schedule="exp"),
    "segfgsm": partial(A.segfgsm, eps=EPS),
    "cospgd": partial(A.cospgd, eps=EPS, alpha=0.01, steps=3),
    "rp_pgd": partial(A.rp_pgd, eps=EPS, alpha=0.01, steps=3),
    "rp_pgd_regions": partial(A.rp_pgd, eps=EPS, alpha=0.01, steps=3, beta=1.0),
    "rp_pgd_best_loss": partial(A.rp_pgd, eps=EPS, alpha=0.01, steps=3, best_iterate="loss"),
    "uncertainty_fgsm": partial(A.uncertainty_fgsm, eps=EPS, measure="margin"),
    "uncertainty_ifgsm_l0": partial(A.uncertainty_ifgsm, eps=4 / 255, steps=3, measure=None, zero_out=0.75),
    "uncertainty_pgd": partial(A.uncertainty_pgd, eps=EPS, alpha=0.01, steps=3, measure="entropy", zero_out=0.75),
    "pixel_subset_ifgsm": partial(A.pixel_subset_ifgsm, eps=EPS, num_pixels=60, steps=3),
    "dag": partial(A.dag, eps=EPS, alpha=2 / 255, steps=3),
    "dag_best_loss": partial(A.dag, eps=EPS, alpha=2 / 255, steps=3, best_iterate="loss"),
}


def linf(adv, x):
    return (adv - x).abs().flatten(1).amax(1)


@pytest.mark.parametrize("name", list(CASES))
def test_budget_range_and_determinism(name, tiny_model, batch):
    x, y = batch
    adv = CASES[name](tiny_model, x, y, seed=7)
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    if name == "bim_l2":
        assert ((adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    else:
        eps = CASES[name].keywords["eps"]
        assert (linf(adv, x) <= eps + 1e-6).all()
    assert (adv != x).any(), "the attack did nothing"
    again = CASES[name](tiny_model, x, y, seed=7)
    assert torch.equal(adv, again)


@pytest.mark.parametrize("name", list(CASES))
def test_model_state_unchanged(name, tiny_model, batch):
    x, y = batch
    model = tiny_model.train()
    model.classifier.weight.requires_grad_(False)
    model.aspp.eval()  # a mixed mode must be restored as it was
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    CASES[name](model, x, y, seed=0)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_train_mode_attack_restores_batchnorm_statistics(tiny_model, batch):
    x, y = batch
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    A.pgd(tiny_model, x, y, steps=2, eval_mode=False, seed=0)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, state[k]), k


class GarbageAtIgnored(nn.Module):
    """Adds input-dependent garbage to the logits at the ignored pixels only."""

    def __init__(self, model, mask):
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, x):
        out = self.model(x)
        return out + self.mask[:, None] * 40 * torch.sin(
            7 * x.sum(1, keepdim=True) + torch.arange(out.shape[1]).view(1, -1, 1, 1)
        )


@pytest.mark.parametrize("name", list(CASES))
def test_ignored_pixels_have_no_influence(name, tiny_model, batch):
    x, y = batch
    wrapped = GarbageAtIgnored(tiny_model, (y == 255).float())
    a = CASES[name](tiny_model, x, y, seed=3)
    b = CASES[name](wrapped, x, y, seed=3)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_all_ignored_batch(name, tiny_model, batch):
    x, y = batch
    y = torch.full_like(y, 255)
    trace = A.AttackTrace()
    adv = CASES[name](tiny_model, x, y, seed=0, trace=trace)
    assert torch.isfinite(adv).all()
    assert all(float(v) == 0.0 for v in trace.loss) and all(float(m) == 0.0 for m in trace.mis_ratio)


@pytest.mark.parametrize("name", ["pgd", "segpgd", "rp_pgd", "cospgd"])
def test_other_ignore_index(name, tiny_model, batch):
    x, y = batch
    a = CASES[name](tiny_model, x, y, seed=1)
    b = CASES[name](tiny_model, x, torch.where(y == 255, -1, y), seed=1, ignore_index=-1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


class Counting(nn.Module):
    def __init__(self, model, kind="tensor"):
        super().__init__()
        self.model, self.kind, self.calls = model, kind, 0

    def forward(self, x):
        self.calls += 1
        out = self.model(x)
        if self.kind == "dict":
            return {"out": out, "aux": out * 0}
        if self.kind == "tuple":
            return out, out.mean()
        if self.kind == "lowres":
            return nn.functional.avg_pool2d(out, 4, ceil_mode=True)
        return out


def test_trace_needs_no_extra_forward(tiny_model, batch):
    x, y = batch
    counted = Counting(tiny_model)
    trace = A.AttackTrace()
    A.pgd(counted, x, y, steps=4, trace=trace, seed=0)
    assert counted.calls == 4
    rows = trace.as_dicts()
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(0 <= r["mis_ratio"] <= 1 for r in rows)
    counted.calls = 0
    clean_pred = tiny_model(x).argmax(1)
    trace = A.AttackTrace()
    A.rp_pgd(counted, x, y, steps=3, trace=trace, clean_prediction=clean_pred, seed=0)
    assert counted.calls == 3
    n_valid = int((y != 255).sum())
    for r in trace.as_dicts():
        assert r["true"] + r["boundary"] + r["false"] == n_valid
    # boundary only grows (003 Definition 2)
    b = [r["boundary"] for r in trace.as_dicts()]
    assert b == sorted(b)


@pytest.mark.parametrize("kind", ["dict", "tuple", "lowres"])
def test_model_output_adapters(kind, tiny_model, batch):
    x, y = batch
    adv = A.segpgd(Counting(tiny_model, kind), x, y, steps=2, seed=0)
    assert adv.shape == x.shape and (linf(adv, x) <= EPS + 1e-6).all()


def test_best_iterate_is_never_worse(tiny_model, batch):
    x, y = batch
    last = A.pgd(tiny_model, x, y, steps=4, seed=2)
    best = A.pgd(tiny_model, x, y, steps=4, seed=2, best_iterate=True)
    with torch.no_grad():
        m_last = A.mis_ratio_per_image(tiny_model(last).argmax(1), y, 255)
        m_best = A.mis_ratio_per_image(tiny_model(best).argmax(1), y, 255)
    assert (m_best >= m_last).all()


def test_prototype_term_reaches_the_input(tiny_model, batch):
    """beta = 0 is the prototype loss alone: its gradient must move the image (features not detached)."""
    x, y = batch
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 5, 1))
    with torch.no_grad():
        net[0].weight.normal_(0, 3)
        net[0].bias.zero_()
        pred = net(x).argmax(1)
    assert len(pred.unique()) >= 2
    y = torch.where(y == 255, y, pred)  # every valid pixel correct -> all in the True region
    adv = A.rp_pgd(net, x, y, beta=0.0, steps=1, random_start=False)
    assert (adv != x).float().mean() > 0.5


def test_pixel_subset_touches_only_its_pixels(tiny_model, batch):
    x, y = batch
    adv = A.pixel_subset_ifgsm(tiny_model, x, y, eps=EPS, num_pixels=30, steps=3, seed=4)
    changed = (adv != x).any(1)  # [B, H, W]
    assert (changed.flatten(1).sum(1) <= 30).all()
    mask = A.random_pixel_mask(y, 30, seed=4)[:, 0].bool()
    assert not (changed & ~mask).any()


def test_pixel_subset_per_image_seeds_valid_pixels_and_zero_out_loss(tiny_model, batch, monkeypatch):
    """004 §4.5 as the authors run it: the subset is drawn among valid pixels only, an image's subset and
    result do not depend on its batch (per-image seed lists, as the harness and AT pass them), and the
    loss is L^0 (Eq. 10, tau = 0.75) unless asked otherwise."""
    x, y = batch
    mask = A.random_pixel_mask(y, 100, seed=[7, 8])[:, 0].bool()
    assert not (mask & (y == 255)).any() and (mask.flatten(1).sum(1) == 100).all()
    alone = A.random_pixel_mask(y[1:], 100, seed=[8])[:, 0].bool()
    assert torch.equal(alone[0], mask[1])
    few = torch.full_like(y[:1], 255)
    few[0, 0, :3] = 1  # 3 valid pixels: the subset is those 3
    assert int(A.random_pixel_mask(few, 50, seed=0).sum()) == 3
    adv = A.pixel_subset_ifgsm(tiny_model, x, y, eps=EPS, num_pixels=100, steps=2, seed=[7, 8])
    adv1 = A.pixel_subset_ifgsm(tiny_model, x[1:], y[1:], eps=EPS, num_pixels=100, steps=2, seed=[8])
    torch.testing.assert_close(adv[1:], adv1, atol=0, rtol=0)
    seen = []
    real = A.uncertainty.run_attack
    monkeypatch.setattr(A.uncertainty, "run_attack", lambda *a, **k: seen.append(k["objective"]) or real(*a, **k))
    A.pixel_subset_ifgsm(tiny_model, x, y, eps=EPS, num_pixels=10, steps=1)
    assert seen[-1].weighting.zero_out == 0.75 and seen[-1].weighting.uncertainty is None


def test_least_likely_targets(tiny_model, batch):
    x, y = batch
    t = A.least_likely_labels(tiny_model, x, y)
    assert (t[y == 255] == 255).all()
    assert torch.equal(t[y != 255], tiny_model(x).argmin(1)[y != 255])


def test_ifgsm_iteration_rule():
    assert [A.ifgsm_iterations(e) for e in (0.25, 1, 2, 4, 8, 16, 32)] == [1, 1, 2, 5, 10, 20, 36]


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(eps=-0.1), ValueError, "eps"),
        (dict(alpha=float("nan")), ValueError, "alpha"),
        (dict(steps=0), ValueError, "steps"),
        (dict(steps=2.5), ValueError, "steps"),
        (dict(restarts=0), ValueError, "restarts"),
    ],
)
def test_bad_hyper_parameters(kwargs, exc, match, tiny_model, batch):
    x, y = batch
    with pytest.raises(exc, match=match):
        A.pgd(tiny_model, x, y, **kwargs)


def test_bad_tensors(tiny_model, batch):
    x, y = batch
    bad_nan = x.clone()
    bad_nan[0, 0, 0, 0] = float("nan")
    cases = [
        ((x[0], y), ValueError, "images must be"),
        ((x, y[0]), ValueError, "labels must be"),
        ((x, y.float()), TypeError, "labels must be an integer"),
        ((x, y[:, :10]), ValueError, "labels shape"),
        ((x.long(), y), TypeError, "images must be floating"),
        ((bad_nan, y), ValueError, "NaN"),
        ((x * 2, y), ValueError, r"\[0, 1\]"),
        ((x, torch.where(y == 0, 9, y)), ValueError, "labels contain 9"),
    ]
    for (xi, yi), exc, match in cases:
        with pytest.raises(exc, match=match):
            A.pgd(tiny_model, xi, yi, steps=1)


def test_label_error_comes_before_any_change(tiny_model, batch):
    x, y = batch
    bad = torch.where(y == 0, 5, y)
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with pytest.raises(ValueError, match="outside"):
        A.rp_pgd(tiny_model, x, bad, steps=2)
    assert all(torch.equal(v, state[k]) for k, v in tiny_model.state_dict().items())
    assert all(p.requires_grad for p in tiny_model.parameters())


def test_model_on_other_device_is_reported(tiny_model, batch):
    x, y = batch
    meta = tiny_model.to("meta")
    with pytest.raises(ValueError, match="model is on meta"):
        A.pgd(meta, x, y, steps=1)
