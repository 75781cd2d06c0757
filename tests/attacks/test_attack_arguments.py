"""Attack arguments as users give them: budgets on the [0, 1] scale (the 0-255 scale refused before any
work), the papers' settings through specs, the harness and the CLI unless the user sets a value, an ℓ2
attack's own radius, the ℓ2 random start uniform in the ball, and model outputs of any layout in the
clean metrics."""
import importlib
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsegadv import attacks as A
from fastsegadv.attacks.perturbation import random_start
from fastsegadv.attacks.registry import AttackSpec
from fastsegadv.evaluation import EvalConfig
from fastsegadv.metrics import dataset_miou

# the attack modules (``fastsegadv.attacks.fgsm`` etc. are shadowed by the functions of the same name)
DRIVER, FGSM, SEGPGD, PGD = (
    importlib.import_module(f"fastsegadv.attacks.{m}") for m in ("driver", "fgsm", "segpgd", "pgd")
)


@pytest.mark.parametrize(
    "attack, kwargs",
    [
        (A.segpgd, dict(eps=8)),
        (A.pgd, dict(eps=8 / 255, alpha=2)),
        (A.ifgsm, dict(eps=8)),
        (A.fgsm, dict(eps=4)),
        (A.rp_pgd, dict(eps=16)),
        (A.pixel_subset_ifgsm, dict(eps=8, num_pixels=10)),
        (A.apgd, dict(eps=8)),
        (A.dag, dict(eps=8)),
    ],
)
def test_eps_on_the_0_255_scale_is_refused_before_any_work(attack, kwargs, tiny_model, batch):
    x, y = batch
    calls = []
    handle = tiny_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"(eps|alpha)=.* above 1.*/ 255"):
            attack(tiny_model, x, y, **kwargs)
    finally:
        handle.remove()
    assert not calls  # refused before the first forward


def test_l2_attacks_accept_radii_above_one(tiny_model, batch):
    x, y = batch
    adv = A.bim_l2(tiny_model, x, y, eps=2.0, alpha=0.5, steps=2)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 2.0 + 1e-5


def test_config_and_harness_refuse_the_0_255_scale():
    with pytest.raises(ValueError, match="eps=8"):
        EvalConfig(eps=8)
    with pytest.raises(ValueError, match="alpha=2"):
        EvalConfig(alpha=2)


def test_specs_keep_the_papers_settings_unless_set(monkeypatch, tiny_model, batch):
    """The harness passes alpha=None (no shared step size) and no steps for a spec without "@": I-FGSM
    then runs 002/004's alpha = 1/255 and n = min(eps + 4, floor(1.25 eps)), SegPGD its alpha = 0.01;
    a spec's own values win."""
    x, y = batch
    seen = {}
    real = DRIVER.run_attack

    def spy(*args, **kw):
        seen.update(alpha=kw["alpha"], steps=kw["steps"], eps=kw["eps"])
        return real(*args, **kw)

    for module in (FGSM, SEGPGD):
        monkeypatch.setattr(module, "run_attack", spy)
    AttackSpec.parse("ifgsm").run(tiny_model, x, y, eps=8 / 255, alpha=None)
    assert seen == dict(alpha=1 / 255, steps=10, eps=8 / 255)
    AttackSpec.parse("ifgsm").run(tiny_model, x, y, eps=4 / 255, alpha=None)
    assert seen["steps"] == 5  # min(4 + 4, floor(5))
    AttackSpec.parse("segpgd@3").run(tiny_model, x, y, eps=8 / 255, alpha=None)
    assert seen["alpha"] == 0.01 and seen["steps"] == 3
    AttackSpec.parse("ifgsm:alpha=0.002@4").run(tiny_model, x, y, eps=8 / 255, alpha=None)
    assert seen["alpha"] == 0.002 and seen["steps"] == 4
    AttackSpec.parse("ifgsm").run(tiny_model, x, y, eps=8 / 255, alpha=0.003)  # the user's shared value
    assert seen["alpha"] == 0.003


def test_l2_attack_needs_its_own_radius(monkeypatch, tiny_model, batch):
    """The shared ℓ∞ eps (8/255) would be a null ℓ2 radius: never passed to bim_l2, CW or DeepFool."""
    x, y = batch
    with pytest.raises(ValueError, match="bim_l2 needs its own ℓ2 radius"):
        AttackSpec.parse("bim_l2@5")
    seen = {}
    real = DRIVER.run_attack
    monkeypatch.setattr(PGD, "run_attack", lambda *a, **kw: seen.update(kw) or real(*a, **kw))
    AttackSpec.parse("bim_l2:eps=1.0,alpha=0.25@2").run(tiny_model, x, y, eps=8 / 255, alpha=0.01)
    assert seen["eps"] == 1.0 and seen["alpha"] == 0.25 and seen["step_rule"] == "l2"


def test_l2_random_start_is_uniform_in_the_ball():
    """Radius eps * u^(1/n): P(||delta|| <= r eps) = r^n, so in n = 3*4*4 = 48 dimensions almost all the mass
    is near the sphere (median radius 0.5^(1/48) = 0.9857 eps); eps * u would put the median at 0.5 eps."""
    x = torch.full((4000, 3, 4, 4), 0.5)
    g = torch.Generator().manual_seed(0)
    delta = random_start(x, 0.1, "l2", g) - x  # eps 0.1: the box [0, 1] never clips
    r = delta.flatten(1).norm(dim=1) / 0.1
    assert r.max() <= 1 + 1e-5
    assert abs(r.median().item() - 0.5 ** (1 / 48)) < 0.005
    n = 48
    for q in (0.9, 0.95):  # the CDF r^n at two radii
        assert abs((r <= q).float().mean().item() - q**n) < 0.02


@dataclass
class HFOut:
    logits: torch.Tensor


class Wrapped(nn.Module):
    """Low-resolution logits (1/4) in a torchvision dict or a Hugging Face-style object."""

    def __init__(self, net, kind):
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, x):
        z = self.net(F.avg_pool2d(x, 4))
        return {"out": z, "aux": z} if self.kind == "dict" else HFOut(z)


@pytest.mark.parametrize("kind", ["dict", "hf"])
def test_dataset_miou_reads_any_model_output(kind):
    torch.manual_seed(0)
    net = nn.Conv2d(3, 4, 1)
    x = torch.rand(5, 3, 16, 16)
    y = torch.randint(0, 4, (5, 16, 16))
    expected_pred = F.interpolate(net(F.avg_pool2d(x, 4)), size=(16, 16), mode="bilinear", align_corners=False).argmax(
        1
    )
    y = torch.where(torch.rand(5, 16, 16) < 0.5, expected_pred, y)
    plain = dataset_miou(
        lambda t: F.interpolate(net(F.avg_pool2d(t, 4)), size=(16, 16), mode="bilinear", align_corners=False),
        x,
        y,
        num_classes=4,
        batch_size=2,
    )
    assert dataset_miou(Wrapped(net, kind), x, y, num_classes=4, batch_size=2) == pytest.approx(plain)
    assert not math.isnan(plain)


def test_every_attack_honours_trace_and_seed(tiny_model, batch):
    """Every registered attack takes ``trace=`` and records its iterations (CW and DeepFool too, which used
    to drop it) and takes ``seed=`` (per-image seeds; the deterministic ones have nothing to seed)."""
    from fastsegadv.attacks.trace import AttackTrace

    x, y = batch
    small = {"bim_l2": dict(eps=0.5, alpha=0.2, steps=2), "cw_l2": dict(steps=2), "deepfool": dict(steps=2),
             "pixel_subset_ifgsm": dict(eps=4 / 255, num_pixels=20, steps=2), "apgd": dict(eps=4 / 255, steps=2),
             "sea_apgd": dict(eps=4 / 255, steps=3), "sea": dict(eps=4 / 255, steps=3),
             "tsallis_pgd": dict(eps=4 / 255, steps=3)}
    for name, info in A.REGISTRY.items():
        kw = small.get(name, dict(eps=4 / 255) if info.single_step else dict(eps=4 / 255, steps=2))
        trace = AttackTrace(num_classes=5)
        info.fn(tiny_model, x, y, trace=trace, seed=[3, 4], **kw)
        assert len(trace.loss) >= 1 and len(trace.confusion) == len(trace.loss), name
