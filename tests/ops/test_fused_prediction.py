"""The class prediction that the fused weighted CE's forward writes from the same pass over the logits
(``return_prediction=True``; the op's optional ``prediction`` output): on every kernel that runs here (C++ CPU,
Triton under the interpreter; CUDA / Triton on a GPU machine), against numpy's ``argmax`` (first index on
ties), for fp32/fp16/bf16, NCHW and channels_last, ignored and all-ignored images, class counts over one
class chunk, and with the loss, statistics and gradient left exactly as without it."""
import numpy as np
import pytest
import torch

from fastsegadv import _ops
from fastsegadv import losses as L
from fastsegadv.ops.weighted_ce import encode, fused_weighted_ce

from ..kernel_cases import MODES, make_case

OP = "weighted_ce"
SHAPES = {
    "compiled": [(2, 19, 13, 17), (1, 150, 5, 9), (3, 2, 7, 5)],
    "interpreted": [(2, 19, 5, 7), (1, 150, 3, 5)],
}


def numpy_argmax(z: torch.Tensor) -> torch.Tensor:
    """Each pixel's class, computed outside torch (numpy returns the first maximum on ties)."""
    return torch.from_numpy(np.argmax(z.detach().float().cpu().numpy(), axis=1)).long()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_prediction_is_the_argmax(kernel, shape, dtype):
    z, y, _ = make_case(*shape, seed=sum(shape), device=kernel.device)
    z = z.to(dtype)
    _, prediction = L.weighted_cross_entropy(z, y, reduction="none", backend=kernel.backend, return_prediction=True)
    assert prediction.dtype == torch.int64 and prediction.shape == y.shape and prediction.device == z.device
    # ignored pixels (the stripe, the all-ignored last image) get their argmax too
    assert torch.equal(prediction.cpu(), numpy_argmax(z))


def test_ties_take_the_first_class(kernel):
    z = torch.zeros(1, 5, 3, 4, device=kernel.device)
    z[0, 2, 0] = 1.0
    z[0, 4, 0] = 1.0  # a tie between classes 2 and 4 in row 0; rows 1 and 2: all five tied
    z = z.contiguous(memory_format=torch.channels_last)
    y = torch.zeros(1, 3, 4, dtype=torch.long, device=kernel.device)
    _, prediction = L.weighted_cross_entropy(z, y, backend=kernel.backend, return_prediction=True)
    expected = numpy_argmax(z)
    assert expected[0, 0].tolist() == [2, 2, 2, 2] and expected[0, 1:].eq(0).all()
    assert torch.equal(prediction.cpu(), expected)


@pytest.mark.parametrize("mode", ["ce", "only_correct", "regions", "entropy"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_loss_stats_and_gradient_unchanged(kernel, mode, reduction):
    """Asking for the prediction changes nothing else: loss, statistics, region state, gradient (bitwise)."""
    shape = SHAPES["interpreted" if kernel.interpreted else "compiled"][0]
    z0, y, state = make_case(*shape, seed=7, device=kernel.device)
    upstream = torch.rand(y.shape, device=kernel.device) + 0.5 if reduction == "none" else torch.tensor(1.7)
    outs = []
    for with_prediction in (False, True):
        z = z0.clone().requires_grad_(True)
        st = state.clone()
        kw = dict(weighting=MODES[mode], step=2, steps=5, region_state=st if MODES[mode].regions else None,
                  reduction=reduction, backend=kernel.backend, return_stats=True,
                  return_prediction=with_prediction)
        loss, stats, *pred = L.weighted_cross_entropy(z, y, **kw)
        (loss * upstream.to(loss.device)).sum().backward()
        outs.append((loss.detach(), stats, st, z.grad))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_reference_backend_returns_the_argmax_too():
    z, y, _ = make_case(2, 7, 4, 5, seed=1)
    loss, stats, prediction = L.weighted_cross_entropy(z, y, backend="reference", return_stats=True,
                                                       return_prediction=True)
    assert torch.equal(prediction, numpy_argmax(z)) and stats.shape == (2, 6) and loss.dim() == 0


@pytest.mark.skipif(not _ops.CPP_AVAILABLE, reason="C++ ops not built")
def test_op_declares_the_prediction_it_writes():
    """opcheck: the schema's ``Tensor(b!)? prediction`` is the only tensor the forward writes besides the region
    state, and the fake kernel agrees."""
    z, y, state = make_case(2, 19, 6, 7, seed=12)
    for w in (MODES["ce"], MODES["regions"]):
        flags, params = encode(w, 2, 5, True)
        st = state.clone() if w.regions else torch.empty(0, dtype=torch.uint8)
        args = (z, y, st, torch.tensor(params), flags, 255, True, True, 0.5)
        torch.library.opcheck(torch.ops.fastsegadv.weighted_ce_forward, args,
                              {"prediction": torch.full(y.shape, -1, dtype=torch.long)})
        prediction = torch.full(y.shape, -1, dtype=torch.long)  # opcheck runs on copies: write this one here
        torch.ops.fastsegadv.weighted_ce_forward(*args, prediction=prediction)
        assert torch.equal(prediction, numpy_argmax(z))


@pytest.mark.skipif(not _ops.CPP_AVAILABLE, reason="C++ ops not built")
def test_a_wrong_prediction_buffer_is_refused():
    z, y, _ = make_case(1, 5, 3, 4, seed=2)
    for bad in (torch.empty(y.shape, dtype=torch.int32), torch.empty(1, 3, 5, dtype=torch.long),
                torch.empty(1, 4, 3, dtype=torch.long).transpose(1, 2)):
        with pytest.raises(RuntimeError, match="prediction must be"):
            torch.ops.fastsegadv.weighted_ce_forward(z, y, torch.empty(0, dtype=torch.uint8), torch.ones(6), 0, 255,
                                                     False, False, 1.0, prediction=bad)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_python_op_with_prediction_passes_opcheck(kernel, reduction):
    """The functional custom op (autograd and fake registration included) with its prediction output."""
    z, y, _ = make_case(*SHAPES["interpreted"][0], seed=4, device=kernel.device)
    flags, params = encode(MODES["ce"], 1, 1, False)
    args = (z.requires_grad_(True), y, torch.empty(0, dtype=torch.uint8, device=z.device), torch.tensor(params),
            flags, 255, reduction, kernel.backend, True, True)
    torch.library.opcheck(fused_weighted_ce, args)
    assert torch.equal(fused_weighted_ce(*args)[5].cpu(), numpy_argmax(z))


def test_upsampling_kernels_refuse_the_prediction():
    z, y, _ = make_case(1, 5, 3, 4, seed=2)
    with pytest.raises(ValueError, match="labels' resolution"):
        fused_weighted_ce(z, y, torch.empty(0, dtype=torch.uint8), torch.ones(6), 0, 255, "none", "upsample",
                          False, True)
