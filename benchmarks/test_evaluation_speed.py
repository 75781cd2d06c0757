"""Time per image of the evaluation attacks at equal passes (issue 13): ``ensemble@N`` (the members the harness
expands it to: up to 300 passes, SEA's class-balanced masked-CE APGD with radius reduction), PAdam-Cos (the
ensemble's second member), one SEA member of ours (``sea_apgd`` JS, N passes) and the SEA-style APGD-JS loop
as its paper writes it (peer_loops.py, N passes),
next to the bare forward + input backward of the same model, in the same run. Shipped PGD-AT model on 16
built-in 64x64 images on CPU; on CUDA (when there is one) DeepLabV3-ResNet50 (random weights) at 2x3x512x512.

The per-pass time is the fastest call / passes; x_bare divides it by the bare pass (run_benchmarks.py).
"""
import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv.attacks.registry import AttackSpec
from fastsegadv.data import make_digit_scenes
from fastsegadv.evaluation.harness import expand_preset
from fastsegadv.models import load_pretrained
from fastsegadv.outputs import extract_logits

from .peer_loops import sea_apgd_js

PASSES = 30
EPS = 8 / 255
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")


class Logits(torch.nn.Module):
    """The model's logits tensor, whatever its output type (the peer loop expects a tensor)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return extract_logits(self.model(x))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    if CUDA:
        models = pytest.importorskip("torchvision.models.segmentation")
        model = models.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
        model = model.to(DEVICE).eval()
        x = torch.rand(2, 3, 512, 512, device=DEVICE)
        y = torch.randint(0, 21, (2, 512, 512), device=DEVICE)
        return model, x, y
    model = load_pretrained("pgd_at")
    x, y = make_digit_scenes("test", num_images=16, seed=0)
    return model, x, y


def _sync():
    if CUDA:
        torch.cuda.synchronize()


def _record(benchmark, x, provider, passes):
    benchmark.extra_info.update(suite="attack_e2e", shape=f"{tuple(x.shape)}", mode=f"{PASSES} passes",
                                provider=provider, steps=passes)


def test_bare_forward_input_backward(benchmark, setup):
    model, x, _ = setup
    net = Logits(model)
    for p in model.parameters():
        p.requires_grad_(False)

    def one():
        xi = x.clone().requires_grad_(True)
        out = net(xi)
        (g,) = torch.autograd.grad(out, xi, grad_outputs=torch.ones_like(out))
        _sync()
        return g

    try:
        benchmark.pedantic(one, rounds=20, warmup_rounds=2)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    _record(benchmark, x, "bare", 1)


def _timed(benchmark, fn):
    def run():
        out = fn()
        _sync()
        return out

    return benchmark.pedantic(run, rounds=3, warmup_rounds=1)


def test_ensemble(benchmark, setup):
    model, x, y = setup
    members = [AttackSpec.parse(m) for m in expand_preset(f"ensemble@{PASSES}")]
    assert sum(m.steps for m in members) == PASSES

    def run():
        return [m.run(model, x, y, eps=EPS, seed=0) for m in members]

    _timed(benchmark, run)
    _record(benchmark, x, f"ensemble@{PASSES}", PASSES)


def test_padam_cos(benchmark, setup):
    model, x, y = setup
    _timed(benchmark, lambda: A.padam(model, x, y, eps=EPS, steps=PASSES, loss="cos", seed=0))
    _record(benchmark, x, "padam cos (ours)", PASSES)


def test_sea_member_of_ours(benchmark, setup):
    model, x, y = setup
    _timed(benchmark, lambda: A.sea_apgd(model, x, y, eps=EPS, steps=PASSES, loss="js_avg", seed=0))
    _record(benchmark, x, "sea_apgd js_avg (ours)", PASSES)


def test_sea_style_peer_loop(benchmark, setup):
    model, x, y = setup
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        _timed(benchmark, lambda: sea_apgd_js(Logits(model), x, y, eps=EPS, steps=PASSES))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    _record(benchmark, x, "SEA-style APGD-JS loop (peer)", PASSES)
