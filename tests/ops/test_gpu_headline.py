"""What ``make gpu-check`` must know first on a lent GPU (its ``gpu_ops`` stage; skipped without CUDA): each
GPU kernel against the eager reference on the same device, for the headline modes, in fp32 and bf16.

- ``weighted_ce``: the CUDA op and Triton, modes CE, SegPGD, RP-PGD regions, CosPGD and entropy weighting
  at 19 classes and SegPGD at 150 (two class chunks), odd sizes, an ignore stripe, an all-ignored image and a random
  non-unit upstream gradient: loss, input gradient and the region-state update;
- ``upsample_weighted_ce`` (Triton; there is no CUDA C++ kernel): CE and SegPGD from x4 logits;
- ``masked_class_sums`` (CUDA op and Triton): the RP-PGD prototype sums, counts and gradient at 150 classes;
- ``linf_step`` (the CUDA op): bitwise equal to the eager update in fp32, fp16 and bf16, the inputs untouched,
  and an attack on CUDA that uses it stays inside the ε-ball.

Sized for the stage's limit: about 40 Triton specialisations (the compile, about 1-2 s each, is most of the
time), every tensor small. The full matrix (every mode, dtype, layout, reduction) is in the other files of
tests/ops, which ``gpu_check.py --part 2`` runs on the GPU.
"""
import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv import backend
from fastsegadv.losses import Weighting
from fastsegadv.ops.attack_step import linf_step, linf_step_reference
from fastsegadv.ops.masked_class_sums import masked_class_sums
from fastsegadv.ops.upsample_weighted_ce import (
    upsample_weighted_cross_entropy,
    upsample_weighted_cross_entropy_reference,
)

from ..kernel_cases import make_case, run
from .conftest import assert_close, assert_no_worse_than_reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
HEADLINE = {"ce": Weighting(), "segpgd": Weighting(segpgd="linear"), "regions": Weighting(regions=True),
            "cospgd": Weighting(cospgd="softmax"), "entropy": Weighting(uncertainty="entropy")}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# every headline mode at 19 classes; at 150 classes (two class chunks) SegPGD
CASES = [(m, (2, 19, 33, 47)) for m in HEADLINE] + [("segpgd", (1, 150, 16, 24))]


def _gpu_backends(op: str) -> list[str]:
    return [b for b in backend.IMPLEMENTED[op]["cuda"] if backend.available(b, CUDA)] if torch.cuda.is_available() \
        else []


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(("mode", "shape"), CASES, ids=[f"{m}-{'x'.join(map(str, s))}" for m, s in CASES])
@pytest.mark.parametrize("impl", ["cpp", "triton"])
def test_weighted_ce_matches_the_eager_reference(impl, mode, shape, dtype):
    if impl not in _gpu_backends("weighted_ce"):
        pytest.fail(f"no {impl} kernel of weighted_ce on CUDA here: the build or triton is missing")
    z, y, state = make_case(*shape, seed=sum(shape), device=CUDA)
    w = HEADLINE[mode]
    if dtype == "fp32":
        ref = run("reference", z, y, w, state=state)
        got = run(impl, z, y, w, state=state)
        assert_close(got[0], ref[0], "weighted_ce", "loss")
        assert_close(got[1], ref[1], "weighted_ce", "grad")
    else:
        zl = z.to(DTYPES[dtype])
        exact, ref_low = run("reference", zl.double(), y, w, state=state), run("reference", zl, y, w, state=state)
        got = run(impl, zl, y, w, state=state)
        srt = zl.float().sort(1).values  # away from ties of the max (the kernels take the first)
        no_tie = ((srt[:, -1] != srt[:, -2]) & (srt[:, -2] != srt[:, -3])).unsqueeze(1)
        assert_no_worse_than_reference(got[0], ref_low[0], exact[0], DTYPES[dtype])
        assert_no_worse_than_reference(got[1], ref_low[1], exact[1], DTYPES[dtype], mask=no_tie.cpu())
        assert got[1].dtype == DTYPES[dtype] and got[1].is_cuda
        ref = exact
    assert torch.equal(got[2].cpu(), ref[2].cpu())  # the region state T -> B where wrong


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("mode", ["ce", "segpgd"])
def test_upsample_weighted_ce_matches_interpolate_then_eager(mode, dtype):
    if "triton" not in _gpu_backends("upsample_weighted_ce"):
        pytest.fail("no Triton kernel of upsample_weighted_ce on CUDA here")
    g = torch.Generator().manual_seed(1)
    z = (3 * torch.randn(2, 19, 16, 24, generator=g)).to(CUDA, DTYPES[dtype])
    y = torch.randint(0, 19, (2, 64, 96), generator=g)
    y[:, :5] = 255
    y = y.to(CUDA)
    upstream = torch.randn(2, 64, 96, generator=g).to(CUDA)

    def loss_and_grad(fn, logits):
        zz = logits.detach().clone().requires_grad_(True)
        out = fn(zz, y, weighting=HEADLINE[mode], step=2, steps=5, reduction="none")
        return out, torch.autograd.grad(out, zz, upstream.to(out.dtype))[0]

    got = loss_and_grad(lambda *a, **k: upsample_weighted_cross_entropy(*a, backend="triton", **k), z)
    if dtype == "fp32":
        ref = loss_and_grad(upsample_weighted_cross_entropy_reference, z)
        assert_close(got[0], ref[0], "upsample_weighted_ce", "loss")
        assert_close(got[1], ref[1], "upsample_weighted_ce", "grad")
    else:
        exact = loss_and_grad(upsample_weighted_cross_entropy_reference, z.double())
        ref_low = loss_and_grad(upsample_weighted_cross_entropy_reference, z)
        assert_no_worse_than_reference(got[0], ref_low[0], exact[0], DTYPES[dtype])
        # the bf16 reference rounds the upsampled logits to bf16, the kernel interpolates in fp32: compare the
        # gradient with fp32 tolerance scaled to bf16's epsilon
        scale = float(exact[1].abs().max())
        assert float((got[1].double() - exact[1]).abs().max()) <= 4 * torch.finfo(torch.bfloat16).eps * scale + 1e-6


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("impl", ["cpp", "triton"])
def test_masked_class_sums_match_the_one_hot_reference(impl, dtype):
    if impl not in _gpu_backends("masked_class_sums"):
        pytest.fail(f"no {impl} kernel of masked_class_sums on CUDA here")
    g = torch.Generator().manual_seed(2)
    f = torch.randn(2, 64, 17, 23, generator=g).to(CUDA, DTYPES[dtype])
    y = torch.randint(0, 150, (2, 17, 23), generator=g).to(CUDA)
    m = (torch.rand(2, 17, 23, generator=g) < 0.6).to(CUDA)
    up = torch.randn(2, 150, 64, generator=g).to(CUDA)

    def sums_and_grad(bk):
        ff = f.detach().clone().requires_grad_(True)
        s, c = masked_class_sums(ff, y, m, 150, backend=bk)
        return s.float(), c.float(), torch.autograd.grad((s * up.to(s.dtype)).sum(), ff)[0]

    got, ref = sums_and_grad(impl), sums_and_grad("reference")
    if dtype == "fp32":
        assert_close(got[0], ref[0], "masked_class_sums", "sums")
        assert_close(got[2], ref[2], "masked_class_sums", "grad")
    else:  # the kernels sum in fp32; the bf16 reference rounds its partial sums
        exact = masked_class_sums(f.double(), y, m, 150, backend="reference")[0]
        assert_no_worse_than_reference(got[0], ref[0], exact, DTYPES[dtype])
    assert torch.equal(got[1].cpu(), ref[1].cpu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("alpha", [0.01, -2 / 255])
def test_linf_step_cuda_op_is_bitwise_the_eager_update(dtype, alpha):
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fastsegadv::linf_step", "CUDA"), \
        "the extension was built without the CUDA linf_step kernel"
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 67, 129, generator=g).to(CUDA, dtype)
    x_adv = (x + 0.05 * torch.randn(x.shape, generator=g).to(CUDA, dtype)).clamp(0, 1)
    grad = torch.randn(x.shape, generator=g).to(CUDA, dtype)
    grad[0, 0, 0] = 0  # sign(0) = 0: no move
    before = (x_adv.clone(), grad.clone(), x.clone())
    out = torch.ops.fastsegadv.linf_step(x_adv, grad, x, alpha, 8 / 255)
    assert out.is_cuda and out.dtype == dtype
    assert torch.equal(out, linf_step_reference(x_adv, grad, x, alpha, 8 / 255))
    assert torch.equal(linf_step(x_adv, grad, x, alpha, 8 / 255), out)  # the dispatching wrapper takes the op
    for t, b in zip((x_adv, grad, x), before):
        assert torch.equal(t, b)
    cl = torch.ops.fastsegadv.linf_step(x_adv.contiguous(memory_format=torch.channels_last), grad, x, alpha, 8 / 255)
    assert torch.equal(cl, out)


def test_pgd_on_cuda_stays_in_the_ball_and_leaves_the_model(tiny_model):
    """An attack whose every update is the CUDA linf_step: the iterate is in [0, 1] and within eps of the
    image, the loss rises, and the model's parameters are the same tensors with the same values."""
    model = tiny_model.to(CUDA)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 56, generator=g).to(CUDA)
    y = torch.randint(0, 5, (2, 40, 56), generator=g).to(CUDA)
    trace = A.AttackTrace()
    adv = A.pgd(model, x, y, eps=8 / 255, alpha=2 / 255, steps=5, seed=0, trace=trace)
    assert adv.is_cuda and adv.min() >= 0 and adv.max() <= 1
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6
    losses = [r["loss"] for r in trace.as_dicts()]
    assert losses[-1] > losses[0]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
