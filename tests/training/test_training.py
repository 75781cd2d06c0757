"""Adversarial training: the AT batch and loss (001 Algorithm 2), the loop's exact resume (after an
exception and after SIGKILL), configuration errors."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from fastsegadv.attacks import pgd
from fastsegadv.datasets import DigitScenes
from fastsegadv.models import TinyDeepLab
from fastsegadv.training import TrainConfig, adversarial_batch, adversarial_training_loss, fit
from fastsegadv.training.loop import CHECKPOINT_NAME

NUM_CLASSES = 11


def _snapshot(model):
    return (
        {n: m.training for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
        {n: b.clone() for n, b in model.named_buffers()},
    )


def test_adversarial_batch_keeps_the_clean_half_and_the_model(tiny_model, batch):
    images, labels = batch
    x = torch.cat([images, images.flip(0)])
    y = torch.cat([labels, labels.flip(0)])
    tiny_model.train()
    before = _snapshot(tiny_model)
    x_at, y_at, n_clean = adversarial_batch(tiny_model, x, y, attack="pgd@2", eps=4 / 255, seed=0)
    assert n_clean == 2 and torch.equal(y_at, y)
    assert torch.equal(x_at[:2], x[:2])
    delta = x_at[2:] - x[2:]
    assert delta.abs().max() <= 4 / 255 + 1e-6 and delta.abs().max() > 0
    assert x_at.min() >= 0 and x_at.max() <= 1
    after = _snapshot(tiny_model)
    assert after[0] == before[0] and after[1] == before[1]  # train mode restored, requires_grad restored
    assert all(torch.equal(before[2][k], v) for k, v in after[2].items())  # BatchNorm statistics untouched
    assert all(p.grad is None for p in tiny_model.parameters())


def test_adversarial_batch_runs_the_named_attack_in_eval_mode(tiny_model, batch):
    images, labels = batch
    tiny_model.train()
    x_at, _, n_clean = adversarial_batch(
        tiny_model, images, labels, attack="pgd@3", eps=8 / 255, alpha=0.01, clean_fraction=0.5, seed=[5, 6]
    )
    expected = pgd(tiny_model.eval(), images[1:], labels[1:], eps=8 / 255, alpha=0.01, steps=3, seed=[6])
    assert n_clean == 1 and torch.equal(x_at[1:], expected)


def test_adversarial_first_order_as_the_codebases(tiny_model, batch):
    """order="adversarial_first": the first B - n_clean images are attacked (with their own seeds) and put
    first, as the CosPGD authors' and Croce et al.'s loops lay out the batch; the loss reads the same layout."""
    images, labels = batch
    x = torch.cat([images, images.flip(0)])
    y = torch.cat([labels, labels.flip(0)])
    x_at, y_at, n_clean = adversarial_batch(tiny_model, x, y, attack="pgd@2", eps=4 / 255, seed=[1, 2, 3, 4],
                                            clean_fraction=0.25, order="adversarial_first")
    assert n_clean == 1 and torch.equal(y_at, y) and torch.equal(x_at[3:], x[3:])
    expected = pgd(tiny_model, x[:3], y[:3], eps=4 / 255, steps=2, seed=[1, 2, 3])
    assert torch.equal(x_at[:3], expected)
    z = torch.randn(4, 5, *y.shape[-2:])
    loss = adversarial_training_loss(z, y, n_clean=1, order="adversarial_first")
    by_hand = F.cross_entropy(z[3:], y[3:], ignore_index=255) + F.cross_entropy(z[:3], y[:3], ignore_index=255)
    torch.testing.assert_close(loss, by_hand)
    # the same two parts, laid out clean first, give the same loss
    swapped = adversarial_training_loss(torch.cat([z[3:], z[:3]]), torch.cat([y[3:], y[:3]]), n_clean=1)
    torch.testing.assert_close(loss, swapped)
    with pytest.raises(ValueError, match="order must be one of"):
        adversarial_batch(tiny_model, x, y, order="adv_first")
    with pytest.raises(ValueError, match="order must be one of"):
        adversarial_training_loss(z, y, n_clean=1, order="last")


def test_unknown_attack_name_is_a_clear_error(tiny_model, batch):
    with pytest.raises(ValueError, match="unknown attack 'pdg'.*did you mean 'pgd'"):
        adversarial_batch(tiny_model, *batch, attack="pdg@3")
    with pytest.raises(ValueError, match="unknown attack"):
        TrainConfig(attack="segpdg@3")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"clean_fraction": 1.5}, "clean_fraction"),
        ({"eps": -1.0}, "eps"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"amp": "fp8"}, "amp"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_per_image_seeds_make_the_random_start_independent_of_the_batch(tiny_model, batch):
    images, labels = batch
    together = pgd(tiny_model, images, labels, eps=8 / 255, alpha=0.0, steps=1, seed=[11, 12])
    alone = torch.cat(
        [
            pgd(tiny_model, images[i : i + 1], labels[i : i + 1], eps=8 / 255, alpha=0.0, steps=1, seed=[s])
            for i, s in enumerate([11, 12])
        ]
    )
    assert torch.equal(together, alone)
    with pytest.raises(ValueError, match="per-image seeds"):
        pgd(tiny_model, images, labels, steps=1, seed=[1, 2, 3])


def test_adversarial_training_loss_is_the_sum_of_the_two_means_plus_aux():
    g = torch.Generator().manual_seed(0)
    out = {"out": torch.randn(4, 5, 8, 8, generator=g), "aux": torch.randn(4, 5, 4, 4, generator=g)}
    y = torch.randint(0, 5, (4, 8, 8), generator=g)
    y[0, :3] = 255
    loss = adversarial_training_loss(out, y, n_clean=2, aux_weights={"aux": 0.4})
    aux = F.interpolate(out["aux"], size=(8, 8), mode="bilinear", align_corners=False)
    expected = sum(
        w * (F.cross_entropy(z[:2], y[:2], ignore_index=255) + F.cross_entropy(z[2:], y[2:], ignore_index=255))
        for w, z in ((1.0, out["out"]), (0.4, aux))
    )
    torch.testing.assert_close(loss, expected)
    with pytest.raises(KeyError, match="aux_weights names head 'aux2'"):
        adversarial_training_loss(out, y, n_clean=2, aux_weights={"aux2": 0.4})


def _tiny_setup(aux_head=False):
    torch.manual_seed(0)
    train = DigitScenes("train", num_images=24, size=32, seed=0)
    model = TinyDeepLab(NUM_CLASSES, width=8, aux_head=aux_head)
    return model, train


def _config(tmp_path=None, **kw):
    base = dict(attack="segpgd@2", epochs=2, batch_size=8, lr=3e-3, progress=False, checkpoint_every=2)
    base.update(kw)
    return TrainConfig(checkpoint_dir=None if tmp_path is None else str(tmp_path), **base)


def test_fit_trains_and_reports_per_epoch_metrics(tmp_path):
    model, train = _tiny_setup(aux_head=True)
    val = DigitScenes("test", num_images=8, size=32, seed=0)
    history = fit(model, train, _config(tmp_path, aux_weights={"aux": 0.4}), num_classes=NUM_CLASSES, val_set=val)
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert {"loss", "train_clean_miou", "train_adv_miou", "val_miou", "val_pixel_accuracy"} <= set(h)
        assert torch.isfinite(torch.tensor(h["loss"]))
    assert history[1]["loss"] < history[0]["loss"]
    assert (tmp_path / CHECKPOINT_NAME).exists() and (tmp_path / "metrics.json").exists()
    assert not model.training


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    model_a, train = _tiny_setup()
    hist_a = fit(model_a, train, _config(), num_classes=NUM_CLASSES)

    class Crash(RuntimeError):
        pass

    def crash_at_5(event, state):
        if event == "step_end" and state["global_step"] == 5:
            raise Crash  # the last checkpoint is the one after step 4 (epoch 2, mid-epoch)

    model_b, _ = _tiny_setup()
    with pytest.raises(Crash):
        fit(model_b, train, _config(tmp_path), num_classes=NUM_CLASSES, callbacks=[crash_at_5])
    ck = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert (ck["epoch"], ck["step"]) == (1, 1)  # 3 steps per epoch: step 4 = epoch 2, step 1
    model_c, _ = _tiny_setup()  # a fresh process would build the model again
    hist_c = fit(model_c, train, _config(tmp_path), num_classes=NUM_CLASSES)
    for (n, a), c in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.equal(a, c), n
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(hist_a) == strip(hist_c)


TRAIN_CMD = [
    sys.executable,
    "-m",
    "fastsegadv",
    "train",
    "--attack",
    "pgd@2",
    "--epochs",
    "2",
    "--num-images",
    "48",
    "--val-split",
    "none",
    "--image-size",
    "32",
    "--width",
    "8",
    "--batch-size",
    "8",
    "--no-progress",
]


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(TRAIN_CMD + ["--output", str(full)], check=True, timeout=300)
    proc = subprocess.Popen(TRAIN_CMD + ["--output", str(killed), "--checkpoint-every", "1"])
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # kill once a mid-training checkpoint exists
            ck = killed / CHECKPOINT_NAME
            if ck.exists():
                try:
                    state = torch.load(ck, weights_only=True)
                except Exception:  # noqa: BLE001 - cannot happen with atomic writes; retry if it does
                    state = None
                if state is not None and 3 <= state["epoch"] * 6 + state["step"] < 10:
                    break
            if proc.poll() is not None:
                pytest.fail("training finished before it could be killed")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.pt").exists()
    subprocess.run(TRAIN_CMD + ["--output", str(killed)], check=True, timeout=300)
    a = torch.load(full / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(killed / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_bf16_autocast_training_runs_on_cpu():
    model, train = _tiny_setup()
    history = fit(model, train, _config(amp="bf16", epochs=1), num_classes=NUM_CLASSES)
    assert torch.isfinite(torch.tensor(history[0]["loss"]))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        fit(model, train, _config(amp="fp16", epochs=1), num_classes=NUM_CLASSES)


def test_joint_reduction_is_one_mean_over_the_batch_as_the_codebases():
    """``reduction="joint"``: CrossEntropyLoss(ignore_index) over the whole batch (the codebases' AT loss,
    written here with torch's own CE); "per_part" is the sum of the two parts' means (001 Algorithm 2)."""
    torch.manual_seed(0)
    z = torch.randn(4, 5, 6, 6)
    y = torch.randint(0, 5, (4, 6, 6))
    y[0, :2] = 255
    y[3, :, :3] = 255
    joint = adversarial_training_loss(z, y, n_clean=2, reduction="joint")
    torch.testing.assert_close(joint, F.cross_entropy(z, y, ignore_index=255))
    per_part = adversarial_training_loss(z, y, n_clean=2)
    expected = F.cross_entropy(z[:2], y[:2], ignore_index=255) + F.cross_entropy(z[2:], y[2:], ignore_index=255)
    torch.testing.assert_close(per_part, expected)
    with pytest.raises(ValueError, match="reduction"):
        adversarial_training_loss(z, y, n_clean=2, reduction="mean")
