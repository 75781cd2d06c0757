"""End-to-end attack speed on GPU (issue 6): per-iteration time of PGD, SegPGD, CosPGD, RP-PGD and
entropy-weighted PGD on torchvision DeepLabv3-ResNet50 and FCN-ResNet50 (random weights: timing only)
at 4×3×512×512 and 8×3×512×1024, against the bare forward + input backward of the same model in the same
precision (fp32 and bf16 autocast), eager and with the step graph-captured (``compile_step=True``: CUDA
graphs), next to the peers' loops (peer_loops.py: the ``cospgd`` package's SegPGD/CosPGD, SEA-style
APGD-JS; torchattacks' PGD) on the same model and inputs, in the same run.

Skipped without CUDA or torchvision. Written on a machine without a GPU: it has not been run yet.
``FASTSEGADV_GPU_CHECK=1`` (set by ``make gpu-check``) keeps the part that fits its time budget:
DeepLabV3-ResNet50 at 4x3x512x512, PGD and SegPGD, no peers.
"""
import os

import pytest
import torch

from fastsegadv import attacks as A

from .peer_loops import LogitsOnly, cospgd_package_loop, sea_apgd_js

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

STEPS = 10
EPS, ALPHA = 8 / 255, 0.01
MODELS = ("deeplabv3_resnet50", "fcn_resnet50")
SHAPES = ((4, 3, 512, 512), (8, 3, 512, 1024))
AMP = {"fp32": None, "bf16": "bf16"}
OURS = {"pgd": A.pgd, "segpgd": A.segpgd, "cospgd": A.cospgd, "rp_pgd": A.rp_pgd,
        "uncertainty_pgd": lambda *a, **k: A.uncertainty_pgd(*a, measure="entropy", **k)}
QUICK = os.environ.get("FASTSEGADV_GPU_CHECK") == "1"
if QUICK:
    MODELS, SHAPES = MODELS[:1], SHAPES[:1]
    OURS = {k: OURS[k] for k in ("pgd", "segpgd")}


@pytest.fixture(scope="module", params=[(m, s) for m in MODELS for s in SHAPES],
                ids=lambda p: f"{p[0]}-{'x'.join(map(str, p[1]))}")
def setup(request):
    models = pytest.importorskip("torchvision.models.segmentation")
    name, shape = request.param
    torch.manual_seed(0)
    model = getattr(models, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    model = model.cuda().eval()
    x = torch.rand(shape, device="cuda")
    y = torch.randint(0, 21, (shape[0], *shape[2:]), device="cuda")
    y[:, :16] = 255
    return name, model, x, y


def _timed(benchmark, fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


def _record(benchmark, name, x, attack, provider, precision, steps):
    benchmark.extra_info.update(suite="attack_e2e", model=name, shape=f"{tuple(x.shape)}", mode=attack,
                                provider=f"{provider} {precision}", precision=precision, steps=steps,
                                device=torch.cuda.get_device_name())


@pytest.mark.parametrize("precision", list(AMP))
def test_bare_forward_input_backward(benchmark, setup, precision):
    name, model, x, _ = setup
    dtype = torch.bfloat16 if precision == "bf16" else None
    for p in model.parameters():
        p.requires_grad_(False)

    def one():
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            out = model(xi)["out"]
        (g,) = torch.autograd.grad(out, xi, grad_outputs=torch.ones_like(out))
        return g

    try:
        benchmark.pedantic(lambda: (one(), torch.cuda.synchronize()), rounds=STEPS * 5, warmup_rounds=3)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    _record(benchmark, name, x, "-", "bare", precision, 1)


@pytest.mark.parametrize("captured", [False, True], ids=["eager", "compile_step"])
@pytest.mark.parametrize("precision", list(AMP))
@pytest.mark.parametrize("attack", list(OURS))
def test_fastsegadv_attack(benchmark, setup, attack, precision, captured):
    name, model, x, y = setup
    fn = OURS[attack]
    traces = []

    def run():
        traces.append(A.AttackTrace())
        return fn(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, seed=0, amp=AMP[precision],
                  compile_step=captured, trace=traces[-1])

    _timed(benchmark, run)
    # a capture that failed and ran eagerly is labelled so: its row never claims the captured speed
    fell_back = captured and (any(t.capture_error for t in traces) or not all(all(t.captured) for t in traces))
    provider = "fastsegadv" + (" compile_step" if captured else "") + (" (fell back to eager)" if fell_back else "")
    _record(benchmark, name, x, attack, provider, precision, STEPS)
    if fell_back:
        benchmark.extra_info["capture_error"] = next((t.capture_error for t in traces if t.capture_error), None)


@pytest.mark.parametrize("attack", ["segpgd", "cospgd"])
def test_cospgd_package(benchmark, setup, attack):
    if QUICK:
        pytest.skip("gpu-check keeps to the library's own attacks")
    pytest.importorskip("cospgd")
    name, model, x, y = setup
    _timed(benchmark, lambda: cospgd_package_loop(LogitsOnly(model), x, y, scale=attack, eps=EPS, alpha=ALPHA,
                                                  steps=STEPS))
    model.zero_grad(set_to_none=True)
    _record(benchmark, name, x, attack, "cospgd package", "fp32", STEPS)


def test_torchattacks_pgd(benchmark, setup):
    if QUICK:
        pytest.skip("gpu-check keeps to the library's own attacks")
    torchattacks = pytest.importorskip("torchattacks")
    name, model, x, y = setup
    atk = torchattacks.PGD(LogitsOnly(model), eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
    _timed(benchmark, lambda: atk(x, torch.where(y == 255, -100, y)))
    _record(benchmark, name, x, "pgd", "torchattacks", "fp32", STEPS)


def test_sea_apgd_js(benchmark, setup):
    if QUICK:
        pytest.skip("gpu-check keeps to the library's own attacks")
    name, model, x, y = setup
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        _timed(benchmark, lambda: sea_apgd_js(LogitsOnly(model), x, y, eps=EPS, steps=STEPS))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    _record(benchmark, name, x, "apgd_js", "SEA-style (paper)", "fp32", STEPS)
