"""End-to-end attack speed on the shipped model (CPU; 16×3×64×64): per-iteration time of PGD, SegPGD,
CosPGD, RP-PGD and entropy-weighted PGD against the floor of one iteration — a bare forward plus a
backward to the input (no loss, no weight gradients) — and the same attacks as the peers implement
them, all in the same run:

- ``cospgd`` package loop (its README): CE(reduction="none") → ``segpgd_scale`` / ``cospgd_scale`` →
  ``.mean()`` → ``loss.backward()`` (weight gradients included, as the loop is written) → ``step_inf``;
- torchattacks ``PGD`` (ignore label remapped to -100, the only one its CE knows).

adv-lib's DAG is not run: adv-lib imports torchvision and visdom, which do not install on a CPU torch here.
The per-iteration time is the whole attack call divided by its steps (setup included: RP-PGD's extra
clean forward for the region state counts against it).
"""
import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained

STEPS = 10
EPS, ALPHA = 8 / 255, 0.01
OURS = {"pgd": A.pgd, "segpgd": A.segpgd, "cospgd": A.cospgd, "rp_pgd": A.rp_pgd,
        "uncertainty_pgd": lambda *a, **k: A.uncertainty_pgd(*a, measure="entropy", **k)}


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


@pytest.mark.parametrize("attack", list(OURS))
def test_fastsegadv_attack(benchmark, setup, attack):
    model, x, y = setup
    fn = OURS[attack]
    benchmark.pedantic(lambda: fn(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, seed=0), rounds=5, warmup_rounds=1)
    _record(benchmark, x, attack, "fastsegadv", STEPS)


def _cospgd_loop(model, x, y, scale):
    """The ``cospgd`` package's attack loop as its README writes it."""
    from cospgd import functions

    criterion = torch.nn.CrossEntropyLoss(ignore_index=255, reduction="none")
    images = functions.init_linf(x, epsilon=EPS)
    for itr in range(STEPS):
        images.requires_grad = True
        outputs = model(images)
        loss = criterion(outputs, y)
        if scale == "segpgd":
            loss = functions.segpgd_scale(predictions=outputs, labels=y, loss=loss, iteration=itr, iterations=STEPS)
        else:
            loss = functions.cospgd_scale(predictions=outputs, labels=y, loss=loss, num_classes=outputs.shape[1])
        loss = loss.mean()
        model.zero_grad()
        loss.backward()
        images = functions.step_inf(perturbed_image=images, epsilon=EPS, data_grad=images.grad, orig_image=x,
                                    alpha=ALPHA, targeted=False)
    return images


@pytest.mark.parametrize("attack", ["segpgd", "cospgd"])
def test_cospgd_package(benchmark, setup, attack):
    pytest.importorskip("cospgd")
    model, x, y = setup
    benchmark.pedantic(lambda: _cospgd_loop(model, x, y, attack), rounds=5, warmup_rounds=1)
    model.zero_grad(set_to_none=True)
    _record(benchmark, x, attack, "cospgd package", STEPS)


def test_torchattacks_pgd(benchmark, setup):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = setup
    atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
    y_ta = torch.where(y == 255, -100, y)
    benchmark.pedantic(lambda: atk(x, y_ta), rounds=5, warmup_rounds=1)
    _record(benchmark, x, "pgd", "torchattacks", STEPS)
