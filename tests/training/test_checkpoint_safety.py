"""The training checkpoint and the model files the user names (issue 22, items 1-5): nothing is loaded
with pickle (a crafted ``last.pt`` does not run code), a corrupt or foreign file is one clear error
naming it, a resume with other settings is refused naming them (``--resume-with-changes`` accepts them,
a longer ``--epochs`` is allowed and rebuilds the schedule), the metrics of a run killed after its last
checkpoint are written on resume, and temporaries of a killed write are cleaned."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from fastsegadv.datasets import DigitScenes
from fastsegadv.models import TinyDeepLab, load_model, save_model
from fastsegadv.safe_load import UnreadableFile
from fastsegadv.training import TrainConfig, fit
from fastsegadv.training.checkpoint import CheckpointError
from fastsegadv.training.loop import CHECKPOINT_NAME

NUM_CLASSES = 11
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol")


def _setup(epochs=2, **kw):
    torch.manual_seed(0)
    train = DigitScenes("train", num_images=16, size=32, seed=0)
    model = TinyDeepLab(NUM_CLASSES, width=8)
    return model, train, dict(attack="pgd@1", epochs=epochs, batch_size=8, lr=3e-3, progress=False, **kw)


class _WritesMarker:
    """Unpickling this calls ``open(path, 'w')``: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_pickle_checkpoint_does_not_run_code(tmp_path):
    marker = tmp_path / "marker"
    with open(tmp_path / CHECKPOINT_NAME, "wb") as f:
        pickle.dump({"epoch": 1, "payload": _WritesMarker(str(marker))}, f)
    with pytest.raises(CheckpointError, match="not readable as a fastsegadv training checkpoint"):
        model, train, kw = _setup()
        fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
    assert not marker.exists()
    # a torch.save'd checkpoint with a pickled object inside is refused the same way
    torch.save({"model": {}, "evil": _WritesMarker(str(marker))}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="only an unsafe"):
        fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
    assert not marker.exists()


def test_the_cli_refuses_a_crafted_checkpoint_in_one_line(tmp_path):
    marker = tmp_path / "marker"
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"x": _WritesMarker(str(marker))}, out / CHECKPOINT_NAME)
    proc = subprocess.run([sys.executable, "-m", "fastsegadv", "train", "--output", str(out), "--epochs", "1",
                           "--num-images", "16", "--batch-size", "8", "--image-size", "32", "--width", "8",
                           "--val-split", "none", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and not marker.exists()
    assert "Traceback" not in proc.stderr and str(out / CHECKPOINT_NAME) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content", ["random", "truncated", "model_file", "empty"])
def test_corrupt_or_foreign_checkpoints_name_the_file(tmp_path, content):
    path = tmp_path / CHECKPOINT_NAME
    model, train, kw = _setup(epochs=1)
    if content == "random":
        path.write_bytes(os.urandom(4096))
    elif content == "empty":
        path.write_bytes(b"")
    else:
        fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
        if content == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        else:
            save_model(model, path)
    with pytest.raises(CheckpointError) as e:
        fit(TinyDeepLab(NUM_CLASSES, width=8), train, TrainConfig(checkpoint_dir=str(tmp_path), **kw),
            num_classes=NUM_CLASSES)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    if content == "model_file":
        assert "no 'format'" in str(e.value) and "model file" in str(e.value)


def test_a_checkpoint_of_another_model_is_named_not_a_size_mismatch_traceback(tmp_path):
    model, train, kw = _setup(epochs=1)
    fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
    with pytest.raises(CheckpointError, match="weights of another model"):
        fit(TinyDeepLab(NUM_CLASSES, width=16), train, TrainConfig(checkpoint_dir=str(tmp_path), **kw),
            num_classes=NUM_CLASSES)


@pytest.mark.parametrize("change", [{"lr": 1e-3}, {"seed": 1}, {"eps": 4 / 255}, {"attack": "segpgd@1"},
                                    {"batch_size": 4}, {"schedule": "poly"}, {"optimizer": "sgd"},
                                    {"epochs": 1}])
def test_resume_with_other_settings_is_refused_naming_them(tmp_path, change):
    model, train, kw = _setup(epochs=3, checkpoint_every=1)

    def stop_at_3(event, state):
        if event == "step_end" and state["global_step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES,
            callbacks=[stop_at_3])
    name = next(iter(change))
    with pytest.raises(CheckpointError, match=name):
        fit(TinyDeepLab(NUM_CLASSES, width=8), train, TrainConfig(checkpoint_dir=str(tmp_path), **{**kw, **change}),
            num_classes=NUM_CLASSES)
    if name == "epochs":
        return  # fewer epochs than the run was started with: refused (more are allowed, next test)
    history = fit(TinyDeepLab(NUM_CLASSES, width=8), train,
                  TrainConfig(checkpoint_dir=str(tmp_path), resume_with_changes=True, **{**kw, **change}),
                  num_classes=NUM_CLASSES)
    assert len(history) == 3 and all(torch.isfinite(torch.tensor(h["loss"])) for h in history)


def test_more_epochs_on_resume_rebuild_the_schedule(tmp_path):
    model, train, kw = _setup(epochs=2)
    fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
    history = fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **{**kw, "epochs": 4}),
                  num_classes=NUM_CLASSES)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    ck = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ck["scheduler"]["total_steps"] == 4 * 2 and ck["scheduler"]["last_epoch"] == 4 * 2
    # the schedule after the resume is the 8-step OneCycle one from step 4 on: its last lr is its final lr
    fresh = torch.optim.lr_scheduler.OneCycleLR(torch.optim.AdamW([torch.zeros(1)], lr=3e-3), max_lr=3e-3,
                                                total_steps=8)
    for _ in range(8):
        fresh.optimizer.step()
        fresh.step()
    assert ck["scheduler"]["_last_lr"] == pytest.approx(fresh.get_last_lr())


def test_metrics_of_a_run_killed_after_its_last_checkpoint_are_written_on_resume(tmp_path):
    model, train, kw = _setup(epochs=2)
    fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
    metrics = tmp_path / "metrics.json"
    full = json.loads(metrics.read_text())
    metrics.write_text(json.dumps(full[:1]))  # killed between the last checkpoint and the metrics write
    history = fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
    assert len(history) == 2 and json.loads(metrics.read_text()) == history


def test_temporaries_of_a_killed_checkpoint_write_are_removed(tmp_path):
    stale = tmp_path / f".{CHECKPOINT_NAME}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / "notes.tmp"
    other.write_text("not ours")
    model, train, kw = _setup(epochs=1)
    fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
    assert not stale.exists() and other.exists()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("content", ["random", "truncated", "other_model", "checkpoint"])
def test_model_files_passed_by_the_user_fail_in_one_line(tmp_path, content):
    path = tmp_path / "model.pt"
    model = TinyDeepLab(NUM_CLASSES, width=8)
    save_model(model, path)
    if content == "random":
        path.write_bytes(os.urandom(1000))
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif content == "other_model":
        torch.save({"arch": "tiny_deeplab", "num_classes": NUM_CLASSES, "width": 8,
                    "state_dict": TinyDeepLab(NUM_CLASSES, width=16).state_dict()}, path)
    else:
        _, train, kw = _setup(epochs=1)
        fit(model, train, TrainConfig(checkpoint_dir=str(tmp_path), **kw), num_classes=NUM_CLASSES)
        path = tmp_path / CHECKPOINT_NAME
    with pytest.raises(ValueError) as e:
        load_model(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    if content == "checkpoint":
        assert "training checkpoint" in str(e.value)
    if content == "other_model":
        assert isinstance(e.value, UnreadableFile) and "another model" in str(e.value)


def test_weights_of_another_model_for_a_factory_fail_in_one_line(tmp_path):
    bad = tmp_path / "w.pt"
    torch.save(TinyDeepLab(NUM_CLASSES, width=16).state_dict(), bad)
    with pytest.raises(UnreadableFile, match="another model"):
        load_model("fastsegadv.models:TinyDeepLab", num_classes=NUM_CLASSES, weights=bad)
    with pytest.raises(ValueError, match="cannot import model factory"):
        load_model("fastsegadv.models:NoSuchModel", num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="failed: TypeError"):
        load_model("fastsegadv.models:load_model")  # a factory that raises (no spec)
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        load_model("fastsegadv.models:checkpoint_path")  # returns a path
