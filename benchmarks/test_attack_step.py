"""End to end: per-iteration time of 10-step SegPGD and RP-PGD on the shipped model, fused (default
backend) vs the eager reference loss, measured in the same run."""
import pytest

from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained

STEPS = 10


@pytest.fixture(scope="module")
def setup():
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=16, seed=0)
    return model, x, y


@pytest.mark.parametrize("backend", ["cpp", "reference"])
@pytest.mark.parametrize("attack", ["segpgd", "rp_pgd"])
def test_attack_iteration(benchmark, setup, attack, backend, monkeypatch):
    monkeypatch.setenv("FASTSEGADV_BACKEND", backend)
    model, x, y = setup
    fn = getattr(A, attack)
    benchmark.extra_info.update(shape=f"{tuple(x.shape)}", mode=attack, provider=backend, steps=STEPS)
    benchmark.pedantic(lambda: fn(model, x, y, steps=STEPS, seed=0), rounds=3, warmup_rounds=1)
