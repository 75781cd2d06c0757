"""End-to-end attack speed on the shipped model (CPU; 16×3×64×64): per-iteration time of PGD, SegPGD,
CosPGD, RP-PGD and entropy-weighted PGD against the floor of one iteration — a bare forward plus a
backward to the input (no loss, no weight gradients) — and the same attacks as the peers implement
them, all in the same run:

- ``cospgd`` package loop (its README; peer_loops.py) for SegPGD and CosPGD;
- torchattacks ``PGD`` (ignore label remapped to -100, the only one its CE knows);
- SEA-style APGD on the Jensen-Shannon loss as its paper writes it (peer_loops.py) against
  fastsegadv's ``apgd(loss="js")``.

fastsegadv's PGD and SegPGD also run with the step graph-captured (``compile_step=True``, inductor; the
compilation happens in the warm-up round). adv-lib's DAG is not run: adv-lib imports torchvision and
visdom, which do not install on a CPU torch here.
The per-iteration time is the whole attack call divided by its steps (setup included: RP-PGD's extra
clean forward for the region state counts against it).
"""
import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained

from .peer_loops import cospgd_package_loop, sea_apgd_js

STEPS = 10
EPS, ALPHA = 8 / 255, 0.01
OURS = {"pgd": A.pgd, "segpgd": A.segpgd, "cospgd": A.cospgd, "rp_pgd": A.rp_pgd,
        "uncertainty_pgd": lambda *a, **k: A.uncertainty_pgd(*a, measure="entropy", **k),
        "apgd_js": lambda *a, alpha=None, **k: A.apgd(*a, loss="js", **k)}


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=16, seed=0)
    return model, x, y


def _record(benchmark, x, attack, provider, per_call_steps):
    benchmark.extra_info.update(suite="attack_e2e", shape=f"{tuple(x.shape)}", mode=attack, provider=provider,
                                steps=per_call_steps)


def test_bare_forward_input_backward(benchmark, setup):
    model, x, _ = setup
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        upstream = torch.randn_like(model(x))

    def one():
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi), xi, grad_outputs=upstream)
        return g

    try:
        benchmark.pedantic(one, rounds=STEPS * 5, warmup_rounds=3)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    _record(benchmark, x, "-", "bare", 1)


# (attack, provider, extra options): eager for every attack; channels_last and graph capture for a few
VARIANTS = ([(a, "fastsegadv", {}) for a in OURS]
            + [(a, "fastsegadv channels_last", {"channels_last": True}) for a in ("pgd", "segpgd", "rp_pgd")]
            + [(a, "fastsegadv compile_step", {"compile_step": True}) for a in ("pgd", "segpgd")])


@pytest.mark.parametrize("attack,provider,extra", VARIANTS, ids=[f"{a}-{p}" for a, p, _ in VARIANTS])
def test_fastsegadv_attack(benchmark, setup, attack, provider, extra):
    model, x, y = setup
    fn = OURS[attack]
    benchmark.pedantic(lambda: fn(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, seed=0, **extra), rounds=5,
                       warmup_rounds=1)
    _record(benchmark, x, attack, provider, STEPS)


def test_sea_apgd_js(benchmark, setup):
    model, x, y = setup
    for p in model.parameters():
        p.requires_grad_(False)  # SEA's loop calls backward on the loss: only the input needs a gradient
    try:
        benchmark.pedantic(lambda: sea_apgd_js(model, x, y, eps=EPS, steps=STEPS), rounds=5, warmup_rounds=1)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    _record(benchmark, x, "apgd_js", "SEA-style (paper)", STEPS)


@pytest.mark.parametrize("attack", ["segpgd", "cospgd"])
def test_cospgd_package(benchmark, setup, attack):
    pytest.importorskip("cospgd")
    model, x, y = setup
    benchmark.pedantic(lambda: cospgd_package_loop(model, x, y, scale=attack, eps=EPS, alpha=ALPHA, steps=STEPS),
                       rounds=5, warmup_rounds=1)
    model.zero_grad(set_to_none=True)
    _record(benchmark, x, attack, "cospgd package", STEPS)


def test_torchattacks_pgd(benchmark, setup):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = setup
    atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
    y_ta = torch.where(y == 255, -100, y)
    benchmark.pedantic(lambda: atk(x, y_ta), rounds=5, warmup_rounds=1)
    _record(benchmark, x, "pgd", "torchattacks", STEPS)
