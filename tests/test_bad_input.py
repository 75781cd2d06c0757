"""Issue 22, items 10, 13 and 14: a user error gets one line naming the argument, before any work, from
the API and from the commands (never a traceback)."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from fastsegadv import attacks as A
from fastsegadv.models import TinyDeepLab

ALL_ATTACKS = ["fgsm", "pgd", "segpgd", "dag", "apgd", "padam", "sea_apgd", "cw_l2", "deepfool"]


class Returns(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.model = TinyDeepLab(5, width=8).eval()
        self.fn = fn

    def forward(self, x):
        return self.fn(self.model(x))


@pytest.fixture
def data():
    torch.manual_seed(0)
    return torch.rand(2, 3, 16, 16), torch.randint(0, 5, (2, 16, 16))


def _run(name, model, x, y, **kw):
    fn = A.ATTACKS[name] if hasattr(A, "ATTACKS") and name in A.ATTACKS else getattr(A, name)
    steps = {"fgsm": {}, "sea_apgd": {"steps": 3}, "cw_l2": {"steps": 2}, "deepfool": {"steps": 2}}
    return fn(model, x, y, **({"eps": 4 / 255} if name not in ("cw_l2", "deepfool") else {}),
              **steps.get(name, {"steps": 2}), **kw)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_model_in_another_dtype_than_the_images(data, dtype):
    x, y = data
    model = TinyDeepLab(5, width=8).to(dtype).eval()
    with pytest.raises(TypeError, match=f"parameters are {dtype} but the images are torch.float32"):
        A.pgd(model, x, y, steps=1)


@pytest.mark.parametrize("output, error, match", [
    (lambda z: z.argmax(1, keepdim=True).expand_as(z), TypeError, "torch.int64 logits"),
    (lambda z: z[0], ValueError, "drops the batch dimension"),
    (lambda z: {"seg": z}, KeyError, "none of \\['out', 'logits'\\]: return the logits, or wrap"),
])
def test_model_outputs_that_are_not_logits(data, output, error, match):
    x, y = data
    with pytest.raises(error, match=match):
        A.pgd(Returns(output), x, y, steps=1)


@pytest.mark.parametrize("name", ALL_ATTACKS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int16])
def test_every_attack_takes_every_integer_label_dtype(data, name, dtype):
    x, y = data
    model = TinyDeepLab(5, width=8).eval()
    ref = _run(name, model, x, y, seed=0) if name not in ("cw_l2", "deepfool") else _run(name, model, x, y)
    got = _run(name, model, x, y.to(dtype), seed=0) if name not in ("cw_l2", "deepfool") else \
        _run(name, model, x, y.to(dtype))
    assert torch.equal(got, ref)


def test_apgd_checks_the_label_range_before_its_first_loss(data):
    x, y = data
    y = y.clone()
    y[0, 0, 0] = 7  # 5 classes
    with pytest.raises(ValueError, match="label"):
        A.apgd(TinyDeepLab(5, width=8).eval(), x, y, eps=4 / 255, steps=2)


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastsegadv", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "--models", "standard", "--num-images", "0"], "--num-images: must be an integer >= 1, got '0'"),
    (["evaluate", "--models", "standard", "--num-images", "-3"], "--num-images: must be an integer >= 1"),
    (["train", "--width", "0"], "--width: must be an integer >= 1"),
    (["train", "--num-workers", "-1"], "--num-workers: must be an integer >= 0"),
    (["train-reference", "--epochs", "0"], "--epochs: must be an integer >= 1"),
    (["evaluate", "--models", "nosuchpkg:factory"], "cannot import model factory 'nosuchpkg:factory'"),
    (["evaluate", "--models", "fastsegadv.models:checkpoint_path"], "failed: TypeError"),
])
def test_cli_errors_are_one_line(tmp_path, args, needle):
    proc = _cli(*args, "--output", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_train_reference_with_fewer_images_than_a_batch_is_one_line(tmp_path):
    out = tmp_path / "ref.pt"
    proc = _cli("train-reference", "--num-images", "3", "--epochs", "1", "--output", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "fewer than one batch" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("text, suffix, needle", [("a: [1, 2\nb: 3\n", ".yaml", "is not valid YAML (line"),
                                                  ("{\"a\": }", ".json", "is not valid JSON (line 1")])
def test_an_invalid_config_file_is_one_line(tmp_path, text, suffix, needle):
    cfg = tmp_path / f"c{suffix}"
    cfg.write_text(text)
    proc = _cli("evaluate", "--config", str(cfg), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_an_eps_on_the_unit_scale_is_warned_naming_both_readings(tmp_path):
    proc = _cli("evaluate", "--models", "standard", "--attacks", "fgsm@1", "--num-images", "2", "--eps", "0.031",
                "--no-progress", "--no-curves", "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "--eps 0.031 is read as 0.031/255" in proc.stderr and "give --eps 7.9" in proc.stderr


@pytest.mark.parametrize("name", ["cw_l2", "deepfool"])
def test_deterministic_attacks_check_a_seed_list_too(data, name):
    x, y = data
    with pytest.raises(ValueError, match="seed: expected an int or 2 per-image seeds, got 3"):
        getattr(A, name)(TinyDeepLab(5, width=8).eval(), x, y, steps=1, seed=[0, 1, 2])


def test_cw_on_a_model_without_input_gradient_says_so(data):
    x, y = data
    with pytest.warns(UserWarning, match="no input gradient at the clean images"):
        A.cw_l2(Returns(lambda z: torch.round(z * 4) / 4), x, y, steps=2)
    with pytest.raises(ValueError, match="do not depend on its input through autograd"):
        A.deepfool(Returns(lambda z: z.detach()), x, y, steps=2)
