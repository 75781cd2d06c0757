"""budget_from_normalized: a codebase's ε on (x - mean) / std, written out here per channel, and the
attack with the converted ε stays inside their ball (checked on the normalised scale)."""
import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv.models import TinyDeepLab


def test_values_per_channel_and_reductions():
    std = (0.229, 0.224, 0.225)
    eps, alpha = A.budget_from_normalized(0.03, 0.01, std=std)
    assert eps == pytest.approx(0.03 * 0.229) and alpha == pytest.approx(0.01 * 0.229)
    assert eps * 255 == pytest.approx(1.75, abs=0.01)  # not 0.03 * 255 = 7.65
    assert A.budget_from_normalized(0.03, std=std, reduce="min") == (pytest.approx(0.03 * 0.224), None)
    assert A.budget_from_normalized(0.03, std=std, reduce="mean")[0] == pytest.approx(0.03 * sum(std) / 3)
    with pytest.raises(ValueError, match="reduce"):
        A.budget_from_normalized(0.03, std=std, reduce="median")
    with pytest.raises(ValueError, match="std"):
        A.budget_from_normalized(0.03, std=(0.2, 0.0, 0.2))


def test_an_attack_with_the_converted_budget_covers_their_ball():
    """With reduce="min" the perturbation lies inside their ball on the normalised scale; with "max" their
    ball lies inside ours (so ours is at least as strong)."""
    torch.manual_seed(0)
    model = TinyDeepLab(5, width=8).eval()
    x, y = torch.rand(2, 3, 16, 16), torch.randint(0, 5, (2, 16, 16))
    std = torch.tensor(A.IMAGENET_STD).view(1, 3, 1, 1)
    for reduce in ("min", "max"):
        eps, alpha = A.budget_from_normalized(0.03, 0.01, std=A.IMAGENET_STD, reduce=reduce)
        adv = A.pgd(model, x, y, eps=eps, alpha=alpha, steps=3, seed=0,
                    normalization=(A.IMAGENET_MEAN, A.IMAGENET_STD))
        radius_normalised = ((adv - x) / std).abs().amax()
        if reduce == "min":
            assert radius_normalised <= 0.03 + 1e-6
        else:
            assert eps >= (0.03 * std).max() - 1e-9
