"""Gradients (float64 gradcheck), ignore handling, reductions, invariances and input errors of the losses."""
import pytest
import torch

from fastsegadv import losses as L

from ..kernel_cases import MODES

WEIGHTINGS = MODES  # every mode and product the fused kernels implement (tests/kernel_cases.py)


def run(z, y, w, *, reduction="mean", ignore_index=255, state=None):
    if w.regions and state is None:
        g = torch.Generator().manual_seed(5)
        state = torch.randint(0, 3, y.shape, generator=g).to(torch.uint8)
    return L.weighted_cross_entropy(z, y, weighting=w, step=3, steps=7, region_state=state,
                                    update_region_state=False, ignore_index=ignore_index, reduction=reduction)


def data(b=2, c=5, h=3, w=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    z = (torch.randn(b, c, h, w, generator=g) * 2).to(dtype)
    y = torch.randint(0, c, (b, h, w), generator=g)
    y[0, 1] = 255
    return z, y


DETACHED = {"cospgd", "cospgd_targeted", "cospgd_sigmoid", "entropy_detached", "regions_x_cospgd"}


@pytest.mark.parametrize("name", sorted(set(WEIGHTINGS) - DETACHED))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_float64(name, reduction):
    z, y = data()
    z.requires_grad_(True)
    # argmax/topk are piecewise constant: gradcheck holds away from ties, which random logits avoid
    assert torch.autograd.gradcheck(
        lambda t: run(t, y, WEIGHTINGS[name], reduction=reduction), (z,), eps=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("name", sorted(DETACHED))
def test_detached_weight_gradient_is_weight_times_ce_gradient(name):
    """A detached weight w0 acts as a constant: grad = d/dz sum_i w0_i CE_i(z) / N_v, checked numerically."""
    z, y = data()
    w = WEIGHTINGS[name]
    ce = L.cross_entropy(z, y, reduction="none")
    w0 = (run(z, y, w, reduction="none") / ce.clamp_min(1e-30)).detach()
    n_valid = (y != 255).sum()
    def frozen(t):
        return (w0 * L.cross_entropy(t, y, reduction="none")).sum() / n_valid
    zz = z.clone().requires_grad_(True)
    (analytic,) = torch.autograd.grad(run(zz, y, w), zz)
    assert torch.autograd.gradcheck(frozen, (z.clone().requires_grad_(True),), eps=1e-6, atol=1e-6)
    (numeric_ref,) = torch.autograd.grad(frozen(zz), zz)
    torch.testing.assert_close(analytic, numeric_ref)


def test_gradcheck_prototypes():
    g = torch.Generator().manual_seed(4)
    f = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (2, 8, 10), generator=g)
    y[1, :2] = 255
    state = torch.randint(0, 2, (2, 8, 10), generator=g).to(torch.uint8)
    assert torch.autograd.gradcheck(lambda t: L.prototype_loss(t, y, state, num_classes=4), (f,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_ignored_pixels_have_no_influence(name):
    z, y = data(dtype=torch.float32)
    z2 = z.clone()
    z2[0, :, 1] = torch.randn_like(z2[0, :, 1]) * 50  # change the logits where labels are ignored
    a, b = z.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    la, lb = run(a, y, WEIGHTINGS[name]), run(b, y, WEIGHTINGS[name])
    torch.testing.assert_close(la, lb)
    la.backward()
    lb.backward()
    mask = (y != 255).unsqueeze(1)
    torch.testing.assert_close(a.grad * mask, b.grad * mask)
    assert (b.grad[0, :, 1] == 0).all()


@pytest.mark.parametrize("name", list(WEIGHTINGS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored_gives_zero_and_no_nan(name, reduction):
    z, y = data(dtype=torch.float32)
    y.fill_(255)
    z.requires_grad_(True)
    out = run(z, y, WEIGHTINGS[name], reduction=reduction)
    assert torch.all(out == 0)
    out.sum().backward()
    assert torch.all(z.grad == 0) and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("name", sorted(set(WEIGHTINGS) - {"cospgd_sigmoid"}))  # sigmoid is not shift-invariant
def test_translation_invariance(name):
    z, y = data(dtype=torch.float64)
    torch.testing.assert_close(run(z, y, WEIGHTINGS[name]), run(z + 100.0, y, WEIGHTINGS[name]))


@pytest.mark.parametrize("ignore_index", [255, -1, 2])
def test_any_ignore_index(ignore_index):
    z, y = data(dtype=torch.float32)
    y = torch.where(y == 255, torch.full_like(y, ignore_index), y)
    got = L.cross_entropy(z, y, ignore_index=ignore_index)
    ref = torch.nn.functional.cross_entropy(z, y, ignore_index=ignore_index)
    torch.testing.assert_close(got, ref)


def test_reductions_relate_and_mean_is_over_valid_pixels():
    z, y = data(dtype=torch.float64)
    w = WEIGHTINGS["entropy"]
    none, s, m = run(z, y, w, reduction="none"), run(z, y, w, reduction="sum"), run(z, y, w, reduction="mean")
    assert none.shape == y.shape
    torch.testing.assert_close(none.sum(), s)
    torch.testing.assert_close(s / (y != 255).sum(), m)


def test_non_unit_upstream_gradient_reduction_none():
    z, y = data(dtype=torch.float64)
    z.requires_grad_(True)
    g = torch.randn(y.shape, dtype=torch.float64)
    (run(z, y, WEIGHTINGS["cospgd"], reduction="none") * g).sum().backward()
    # independent check: per-pixel gradient of CE scaled by the detached cos weight and g
    z2 = z.detach().clone().requires_grad_(True)
    cos = L.cospgd_weight(z2, torch.where(y == 255, 0, y))
    ce = L.cross_entropy(z2, y, reduction="none")
    (cos * ce * g).sum().backward()
    torch.testing.assert_close(z.grad, z2.grad)


def test_half_precision_inputs_are_evaluated_in_fp32():
    z, y = data(dtype=torch.float32)
    for dt in (torch.float16, torch.bfloat16):
        out = L.cross_entropy(z.to(dt), y)
        assert out.dtype == dt
        torch.testing.assert_close(out.float(), L.cross_entropy(z.to(dt).float(), y), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        (lambda z, y: (z[0], y), ValueError, "logits"),
        (lambda z, y: (z, y.float()), TypeError, "labels must be an integer"),
        (lambda z, y: (z, y[:, :2]), ValueError, "labels shape"),
        (lambda z, y: (z, torch.full_like(y, 7)), ValueError, "outside"),
        (lambda z, y: (z, torch.full_like(y, -3)), ValueError, "outside"),
        (lambda z, y: (z.long(), y), TypeError, "floating"),
    ],
)
def test_bad_inputs(bad, exc, match):
    z, y = data(dtype=torch.float32)
    with pytest.raises(exc, match=match):
        L.cross_entropy(*bad(z, y))


def test_bad_options():
    z, y = data(dtype=torch.float32)
    with pytest.raises(ValueError, match="reduction"):
        L.cross_entropy(z, y, reduction="avg")
    with pytest.raises(ValueError, match="schedule"):
        L.Weighting(segpgd="cubic")
    with pytest.raises(ValueError, match="lam"):
        L.Weighting(segpgd="constant")
    with pytest.raises(ValueError, match="step"):
        L.segpgd_loss(z, y, step=0, steps=3)
    with pytest.raises(ValueError, match="region_state"):
        L.weighted_cross_entropy(z, y, weighting=L.Weighting(regions=True), step=1, steps=2)
