"""Fused weighted CE, forward + backward, every mode x provider x shape, side by side in one run with a
``copy_`` of the logits into a preallocated buffer (the memory limit: read + write of the logits' bytes,
no page faults) and a ``clone()`` (which also pays fresh pages); and the public API (``segpgd_loss``,
defaults: label check, backend choice, autograd) beside the bare kernel op.

    python benchmarks/run_benchmarks.py          # runs this, writes JSON + Markdown + plot
    pytest benchmarks --benchmark-only -k fused  # the raw pytest-benchmark table

Providers: ``reference`` (eager), ``compiled`` (torch.compile of the reference, only at the largest CPU
shape: compiling every case would take longer than the rest), ``cpp``, ``triton`` (GPU only).
"""
import os

import pytest
import torch

from fastsegadv import backend
from fastsegadv import losses as L
from fastsegadv.ops.weighted_ce import encode
from fastsegadv.reference.weighted import weighted_cross_entropy_reference

from .peak_memory import peak_bytes

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
SHAPES = [(4, 21, 128, 128), (8, 21, 128, 256), (1, 19, 512, 1024)]  # the last two: issue 14's ratio shapes
if CUDA:
    SHAPES += [(8, 19, 512, 1024), (8, 150, 512, 512)]
MODES = {
    "ce": L.Weighting(),
    "segpgd": L.Weighting(segpgd="linear"),
    "regions": L.Weighting(regions=True),
    "cospgd": L.Weighting(cospgd="softmax"),
    "entropy": L.Weighting(uncertainty="entropy"),
    "zero_out": L.Weighting(zero_out=0.75),
}
PROVIDERS = ["reference", "compiled", "cpp", "triton"]
COMPILED_SHAPES = {(1, 19, 512, 1024), (8, 21, 128, 256)} if not CUDA else {(8, 19, 512, 1024), (8, 150, 512, 512)}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16} if CUDA else {"fp32": torch.float32}
# make gpu-check (FASTSEGADV_GPU_CHECK=1): the part that fits its stage, the two ratio shapes, ce and
# segpgd, fp32 and bf16 (whatever the device, so a stand-in run exercises the same selection)
QUICK = os.environ.get("FASTSEGADV_GPU_CHECK") == "1"
if QUICK:
    SHAPES = [(8, 19, 512, 1024), (8, 150, 512, 512)]
    COMPILED_SHAPES = set(SHAPES)
    MODES = {k: MODES[k] for k in ("ce", "segpgd")}
    DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
_compiled = {}


def sync():
    if CUDA:
        torch.cuda.synchronize()


def make(shape, dtype=torch.float32):
    b, c, h, w = shape
    g = torch.Generator().manual_seed(0)
    z = torch.randn(shape, generator=g).to(DEVICE, dtype)
    y = torch.randint(0, c, (b, h, w), generator=g)
    y[:, : h // 8] = 255
    state = torch.randint(0, 3, (b, h, w), generator=g).to(torch.uint8)
    return z, y.to(DEVICE), state.to(DEVICE)


def ident(shape):
    return "x".join(map(str, shape))


def label(shape, dtype: str = "fp32"):
    """The row key: the shape, and the dtype when it is not fp32 (a bf16 case is compared with the bf16
    copy_ and reference of the same shape)."""
    return ident(shape) + ("" if dtype == "fp32" else f" {dtype}")


def record(benchmark, shape, fn, dtype: str = "fp32", **info):
    """Shape, bytes moved (the roofline proxy) and the peak memory of one more call of ``fn``."""
    nbytes = 2 * torch.Size(shape).numel() * DTYPES[dtype].itemsize  # read logits + write gradient
    benchmark.extra_info.update(shape=label(shape, dtype), bytes=nbytes, **info)
    peak = peak_bytes(fn, DEVICE)
    if peak is not None:
        benchmark.extra_info["peak_bytes"] = peak


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=ident)
def test_clone(benchmark, shape, dtype):
    z, _, _ = make(shape, DTYPES[dtype])

    def run():
        out = z.clone()
        sync()
        return out

    benchmark(run)
    record(benchmark, shape, run, dtype, mode="-", provider="clone")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=ident)
def test_copy(benchmark, shape, dtype):
    z, _, _ = make(shape, DTYPES[dtype])
    buf = torch.empty_like(z)

    def run():
        buf.copy_(z)
        sync()
        return buf

    benchmark(run)
    record(benchmark, shape, run, dtype, mode="-", provider="copy_")


API_SHAPE = (1, 19, 512, 1024)


@pytest.mark.parametrize("provider", ["op", "api"])
def test_public_api_vs_bare_op(benchmark, provider):
    """SegPGD loss forward + input gradient: ``segpgd_loss`` + ``torch.autograd.grad`` with every default
    (label check, backend choice) vs the kernel op alone (on CPU its forward writes the gradient in the
    same pass; elsewhere forward then backward op). Issue 11's 2.5x regression lived in the gap."""
    if QUICK:
        pytest.skip("gpu-check measures the two ratio shapes only")
    if not backend.available("cpp", DEVICE) and provider == "op":
        pytest.skip("the compiled op is not available")
    z, y, _ = make(API_SHAPE)
    flags, params = encode(L.Weighting(segpgd="linear"), 3, 10, True)
    params = torch.tensor(params, device=DEVICE)
    no_state = torch.empty(0, dtype=torch.uint8, device=DEVICE)
    inv_n = 1.0 / int((y != 255).sum())
    x = z.clone().requires_grad_(True)

    def run():
        if provider == "api":
            (g,) = torch.autograd.grad(L.segpgd_loss(x, y, step=3, steps=10), x)
        else:
            _, _, g = torch.ops.fastsegadv.weighted_ce_forward(z, y, no_state, params, flags, 255, False, True, inv_n)
            if not g.numel():  # GPU: the gradient comes from the backward op
                g = torch.ops.fastsegadv.weighted_ce_backward(torch.tensor(inv_n, device=DEVICE), z, y, no_state,
                                                              params, flags, 255)
        sync()
        return g

    for _ in range(2):
        run()
    benchmark(run)
    record(benchmark, API_SHAPE, run, mode="segpgd_api_vs_op", provider=provider)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape", SHAPES, ids=ident)
def test_fused_forward_backward(benchmark, shape, mode, dtype, provider):
    headline = mode in ("segpgd", "regions", "cospgd", "entropy")
    if provider == "compiled" and (shape not in COMPILED_SHAPES or not headline):
        pytest.skip("torch.compile(reference) is measured at the ratio shapes for the four headline modes")
    if provider == "compiled" and QUICK and dtype != "fp32":
        pytest.skip("gpu-check compiles the reference in fp32 only (each compile costs ~20 s of its stage)")
    if provider in ("cpp", "triton") and not backend.available(provider, DEVICE):
        pytest.skip(f"{provider} not available on {DEVICE.type}")
    if provider == "triton" and DEVICE.type == "cpu":
        pytest.skip("the Triton interpreter is not a performance path")
    z, y, state = make(shape, DTYPES[dtype])
    z.requires_grad_(True)
    w = MODES[mode]
    if provider == "compiled":
        key = (shape, mode, dtype)
        if key not in _compiled:
            def ref(t, s):
                return weighted_cross_entropy_reference(t, y, weighting=w, step=2, steps=10, region_state=s,
                                                        update_region_state=False, validate=False)
            _compiled[key] = torch.compile(ref, dynamic=False)
        def loss_fn():
            return _compiled[key](z, state)
    else:
        def loss_fn():
            return L.weighted_cross_entropy(z, y, weighting=w, step=2, steps=10, region_state=state,
                                            update_region_state=False, validate=False, backend=provider)
    def step():
        (g,) = torch.autograd.grad(loss_fn(), z)
        sync()
        return g

    for _ in range(2):  # warm-up: compilation, autotuning, first-touch allocations
        step()
    g = benchmark(step)
    assert torch.isfinite(g).all()
    record(benchmark, shape, step, dtype, mode=mode, provider=provider)
