"""``best_iterate="loss"`` (Croce et al.'s APGD keeps its highest-loss iterate) against the criterion written
out here: per image, the iterate x_0..x_T of plain PGD with the highest mean CE over its valid pixels."""
import pytest
import torch
import torch.nn.functional as F

from fastsegadv import attacks as A


def _mean_ce_per_image(model, x, y):
    """[B] mean CE over each image's valid pixels, from torch's own cross_entropy."""
    with torch.no_grad():
        logits = model(x)
        logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=False)
        ce = F.cross_entropy(logits, y, ignore_index=255, reduction="none")  # [B, H, W], 0 where ignored
    valid = (y != 255).flatten(1).sum(1).clamp_min(1)
    return ce.flatten(1).sum(1) / valid


def test_keeps_the_highest_loss_iterate_per_image(tiny_model, batch):
    x, y = batch
    steps = 5
    # x_k = the iterate after k steps (no random start: the path is deterministic and its prefixes agree)
    iterates = [x] + [A.pgd(tiny_model, x, y, eps=8 / 255, alpha=0.02, steps=k, random_start=False)
                      for k in range(1, steps + 1)]
    losses = torch.stack([_mean_ce_per_image(tiny_model, it, y) for it in iterates])  # [T + 1, B]
    pick = losses.argmax(0)
    expected = torch.stack([iterates[int(k)][b] for b, k in enumerate(pick)])
    got = A.pgd(tiny_model, x, y, eps=8 / 255, alpha=0.02, steps=steps, random_start=False, best_iterate="loss")
    assert torch.equal(got, expected)
    # with restarts the criterion is the same: never a lower loss than the single run's choice
    restarted = A.pgd(tiny_model, x, y, eps=8 / 255, alpha=0.02, steps=steps, restarts=2, seed=0,
                      best_iterate="loss")
    assert (_mean_ce_per_image(tiny_model, restarted, y) >= losses.amax(0) - 1e-5).all()


def test_loss_and_misratio_criteria_differ_only_in_the_choice(tiny_model, batch):
    """Both return one of the iterates; each is the best one by its own criterion."""
    x, y = batch
    by_loss = A.pgd(tiny_model, x, y, steps=4, seed=3, best_iterate="loss")
    by_mis = A.pgd(tiny_model, x, y, steps=4, seed=3, best_iterate="misratio")
    same_as_true = A.pgd(tiny_model, x, y, steps=4, seed=3, best_iterate=True)
    assert torch.equal(by_mis, same_as_true)
    with torch.no_grad():
        mis = [A.mis_ratio_per_image(tiny_model(a).argmax(1), y, 255) for a in (by_loss, by_mis)]
    assert (mis[1] >= mis[0]).all()
    assert (_mean_ce_per_image(tiny_model, by_loss, y) >= _mean_ce_per_image(tiny_model, by_mis, y) - 1e-6).all()


def test_targeted_keeps_the_lowest_target_loss(tiny_model, batch):
    x, y = batch
    target = torch.full_like(y, 2)
    iterates = [x] + [A.pgd(tiny_model, x, y, steps=k, random_start=False, targeted_labels=target)
                      for k in range(1, 4)]
    losses = torch.stack([_mean_ce_per_image(tiny_model, it, target) for it in iterates])
    pick = losses.argmin(0)
    expected = torch.stack([iterates[int(k)][b] for b, k in enumerate(pick)])
    got = A.pgd(tiny_model, x, y, steps=3, random_start=False, targeted_labels=target, best_iterate="loss")
    assert torch.equal(got, expected)


def test_unknown_criterion_is_a_clear_error(tiny_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="best_iterate must be"):
        A.pgd(tiny_model, x, y, steps=1, best_iterate="accuracy")


def test_scoring_reads_the_region_state_of_the_iterate_and_never_changes_it():
    """RP-PGD: an iterate's score is Eq. 7 per image with the state brought up to that iterate (as the attack's
    own loss sees it); the attack's region state is left as it was."""
    from fastsegadv.attacks.objectives import RegionPrototype

    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 6, 7, generator=g)
    labels = torch.randint(0, 4, (2, 6, 7), generator=g)
    features = torch.randn(2, 3, 6, 7, generator=g)
    obj = RegionPrototype(beta=0.75)
    obj.begin(labels, torch.randint(0, 4, (2, 6, 7), generator=g))
    before = obj.state.clone()
    scored = obj.per_image(logits, labels, step=2, steps=4, features=features)
    assert torch.equal(obj.state, before)  # scoring left the state alone
    loss = obj(logits, labels, step=2, steps=4, features=features)  # the attack's own loss updates it
    torch.testing.assert_close(scored.mean(), loss)
    assert torch.equal(obj.per_image(logits, labels, step=2, steps=4, features=features), scored)


def test_custom_objective_without_per_image_is_refused_and_truthy_values_work(tiny_model, batch):
    from fastsegadv.attacks.objectives import Objective

    class Margin(Objective):
        def __call__(self, logits, labels, *, step, steps, features=None, low_res=False, params=None):
            return -logits.amax(1).sum()

    x, y = batch
    with pytest.raises(NotImplementedError, match="per_image"):
        A.run_attack(tiny_model, x, y, objective=Margin(), eps=4 / 255, alpha=1 / 255, steps=1, best_iterate="loss")
    same = A.pgd(tiny_model, x, y, steps=2, seed=0, best_iterate=1)
    assert torch.equal(same, A.pgd(tiny_model, x, y, steps=2, seed=0, best_iterate=True))
