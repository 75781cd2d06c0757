"""A 10-step SegPGD and RP-PGD on the shipped model give the same adversarial images with the fused
(C++) and the reference backend, up to sign ties of near-zero input gradients."""
import pytest
import torch

from fastsegadv import _ops
from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained


@pytest.mark.skipif(not _ops.CPP_AVAILABLE, reason="C++ ops not built")
@pytest.mark.parametrize("attack", ["segpgd", "rp_pgd", "uncertainty_pgd"])
def test_fused_and_reference_attacks_agree(attack, monkeypatch):
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=8, seed=1)
    fn = getattr(A, attack)
    runs = {}
    for backend in ("cpp", "reference"):
        monkeypatch.setenv("FASTSEGADV_BACKEND", backend)
        trace = A.AttackTrace()
        runs[backend] = (fn(model, x, y, steps=10, seed=0, trace=trace), trace.as_dicts())
    adv_f, tr_f = runs["cpp"]
    adv_r, tr_r = runs["reference"]
    same = (adv_f == adv_r).float().mean().item()
    assert same > 0.999, f"only {same:.5f} of the adversarial pixels agree"
    torch.testing.assert_close(adv_f, adv_r, rtol=0, atol=2 * 0.01 + 1e-6)  # a tie flips at most a step
    for a, b in zip(tr_f, tr_r):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
        assert a["mis_ratio"] == pytest.approx(b["mis_ratio"], abs=1e-3)
