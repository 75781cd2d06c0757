"""The papers' equations written out independently inside the tests (plain PyTorch, no call into the
project's reference losses), and peer code on identical inputs, for the attacks issue 11 fixed:

- RP-PGD's hybrid objective, 003 Eq. 3-7, per image (value and gradients w.r.t. logits and features);
- the random-pixel-subset I-FGSM of 004 §4.5 with the L^0 loss of Eq. 10 (one step, by hand);
- I-FGSM's step rule of 002/004 (n = min(eps + 4, floor(1.25 eps)), alpha = 1/255) and the whole attack
  against torchattacks' BIM (which implements the same paper rule) on the same model and inputs.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsegadv import attacks as A
from fastsegadv.attacks.objectives import RegionPrototype
from fastsegadv.attacks.registry import AttackSpec

T_, B_, F_ = 0, 1, 2  # region codes: True, Boundary, False


def paper_rp_objective(z, y, state, feats, i, n, beta, ignore=255):
    """003: per image b, regions after this step's update (T -> B where now wrong, Definition 2),
    L_R,b = (1/N_b) (l1 sum_T CE + l2 sum_B CE + l3 sum_F CE) with N_b the valid pixels (Eq. 3's H*W when
    none is ignored) and l1 = (2N - i)/2N, l2 = (i - 1)/2N, l3 = 1/2N (Eq. 4); prototypes P_c = mean of the
    features over T with y = c (Eq. 5); L_P,b = sum over ordered pairs c_i != c_j of cos(P_ci, P_cj) /
    C(N_P, 2) (Eq. 6; 0 for N_P < 2); L_RP = mean_b [beta L_R,b + (1 - beta) L_P,b] (Eq. 7)."""
    lam = {T_: (2 * n - i) / (2 * n), B_: (i - 1) / (2 * n), F_: 1 / (2 * n)}
    total = 0.0
    for b in range(z.shape[0]):
        valid = y[b] != ignore
        s = state[b].clone()
        s[(s == T_) & (z[b].argmax(0) != y[b]) & valid] = B_
        ce = F.cross_entropy(z[b:b + 1], y[b:b + 1], ignore_index=ignore, reduction="none")[0]
        w = torch.zeros_like(ce)
        for region, value in lam.items():
            w[s == region] = value
        l_r = (w * ce)[valid].sum() / valid.sum()
        protos = [feats[b][:, (s == T_) & (y[b] == c) & valid].mean(1) for c in range(z.shape[1])
                  if ((s == T_) & (y[b] == c) & valid).any()]
        k = len(protos)
        l_p = (sum(F.cosine_similarity(protos[p], protos[q], dim=0) for p in range(k) for q in range(k) if p != q)
               / math.comb(k, 2)) if k >= 2 else torch.zeros(())
        total = total + beta * l_r + (1 - beta) * l_p
    return total / z.shape[0]


@pytest.mark.parametrize("ignore_some", [False, True])
def test_rp_pgd_hybrid_objective_is_003_eq_3_to_7_per_image(ignore_some):
    g = torch.Generator().manual_seed(4)
    b, c, h, w, d = 3, 4, 6, 7, 5
    z = (torch.randn(b, c, h, w, generator=g) * 2).requires_grad_(True)
    y = torch.randint(0, c, (b, h, w), generator=g)
    y = torch.where(torch.rand(b, h, w, generator=g) < 0.6, z.detach().argmax(1), y)  # many correct: N_P >= 2
    if ignore_some:
        y[0, :2] = 255
        y[1, :5] = 255  # image 1 mostly ignored: must not shift the other images' balance
    state = torch.randint(0, 3, (b, h, w), generator=g).to(torch.uint8)
    feats = torch.randn(b, d, h, w, generator=g, requires_grad=True)
    step, steps, beta = 3, 10, 0.75
    expected = paper_rp_objective(z, y, state, feats, step, steps, beta)
    obj = RegionPrototype(beta=beta)
    obj.state = state.clone()
    ours = obj(z, y, step=step, steps=steps, features=feats)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    g_ours = torch.autograd.grad(ours, (z, feats))
    g_paper = torch.autograd.grad(paper_rp_objective(z, y, state, feats, step, steps, beta), (z, feats))
    for a, e in zip(g_ours, g_paper):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-7)


def _model():
    torch.manual_seed(5)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 5, 1)).eval()


def test_pixel_subset_ifgsm_one_step_is_004_eq_10_on_the_subset():
    """x_1 = clip(x + alpha * sign(grad L^0) on the subset only), L^0 = mean over valid pixels of
    1[(y_hat = y) or p(y_hat) < 0.75] * CE (004 Eq. 10), the subset drawn among valid pixels."""
    model = _model()
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 12, 14, generator=g)
    y = torch.randint(0, 5, (2, 12, 14), generator=g)
    y[:, :3] = 255
    eps, alpha = 4 / 255, 1 / 255
    adv = A.pixel_subset_ifgsm(model, x, y, eps=eps, alpha=alpha, steps=1, num_pixels=40, seed=[3, 4])
    mask = A.random_pixel_mask(y, 40, seed=[3, 4])  # [2, 1, 12, 14]
    assert not (mask[:, 0].bool() & (y == 255)).any()
    xr = x.clone().requires_grad_(True)
    z = model(xr)
    p = z.softmax(1)
    valid = y != 255
    keep = (p.argmax(1) == y) | (p.max(1).values < 0.75)
    ce = F.cross_entropy(z, y, ignore_index=255, reduction="none")
    l0 = (keep * ce)[valid].sum() / valid.sum()
    (grad,) = torch.autograd.grad(l0, xr)
    expected = (x + alpha * grad.sign() * mask).clamp(x - eps, x + eps).clamp(0, 1)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("eps255", [1, 2, 4, 8, 16, 32])
def test_ifgsm_iterations_follow_the_papers_rule(eps255):
    assert A.ifgsm_iterations(eps255) == max(1, int(min(eps255 + 4, math.floor(1.25 * eps255))))
    spec = AttackSpec.parse("ifgsm")  # no "@steps": the paper's rule, not a fixed 10
    assert spec.steps is None and spec.label == "I-FGSM"


def test_ifgsm_equals_torchattacks_bim_with_the_paper_defaults():
    """torchattacks.BIM(steps=0) picks n = int(min(eps*255 + 4, 1.25*eps*255)) as 002/004 do; with
    alpha = 1/255 it is the paper's I-FGSM. Ours through the spec the harness builds ("ifgsm", alpha left
    to the attack) must give the same images."""
    torchattacks = pytest.importorskip("torchattacks")
    model = _model()
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 3, 16, 16, generator=g)
    y = torch.randint(0, 5, (2, 16, 16), generator=g)
    eps = 6 / 255
    ours = AttackSpec.parse("ifgsm").run(model, x, y, eps=eps, alpha=None)
    atk = torchattacks.BIM(model, eps=eps, alpha=1 / 255, steps=0)
    assert atk.steps == A.ifgsm_iterations(6) == 7
    theirs = atk(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
