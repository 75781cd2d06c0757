"""Graph-captured attack steps (``compile_step``, fastsegadv/attacks/capture.py) give the eager attack's
adversarial images, capture every step as one graph with t as an input (no recompilation per t), and fall
back to the eager step with a warning when capture fails."""
import functools
import warnings

import pytest
import torch

from fastsegadv import attacks as A
from fastsegadv import backend
from fastsegadv._ops import CPP_AVAILABLE

pytestmark = pytest.mark.skipif(not CPP_AVAILABLE, reason="the captured step runs the compiled kernels")

ATTACKS = {
    "pgd": A.pgd,
    "segpgd": A.segpgd,
    "cospgd": A.cospgd,
    "rp_pgd": A.rp_pgd,  # regions state updated in the graph + the prototype term through the feature hook
    "uncertainty_pgd": functools.partial(A.uncertainty_pgd, measure="entropy"),
    "bim_l2": functools.partial(A.bim_l2, eps=0.5, alpha=0.1),
    "dag": A.dag,
}


class _CountingBackend:
    """A torch.compile backend that counts compilations and graph executions (runs the graph eagerly)."""

    def __init__(self):
        self.compiled = 0
        self.runs = 0

    def __call__(self, gm, example_inputs):
        self.compiled += 1

        def run(*args):
            self.runs += 1
            return gm.forward(*args)

        return run


def _both(fn, model, x, y, compile_step, **kw):
    eager = fn(model, x, y, seed=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a capture failure would warn: make it fail the test
        # Dynamo's own notice on Python 3.13.0 (not a capture failure)
        warnings.filterwarnings("ignore", message="Guards may run slower", category=RuntimeWarning)
        captured = fn(model, x, y, seed=0, compile_step=compile_step, **kw)
    return eager, captured


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_captured_step_equals_eager(attack, tiny_model, batch):
    x, y = batch
    counter = _CountingBackend()
    eager, captured = _both(ATTACKS[attack], tiny_model, x, y, counter, steps=6)
    assert counter.compiled == 1  # one graph for t = 2..6: t enters through the kernel parameters
    assert counter.runs == 5  # step 1 runs eagerly (label checks, low-resolution decision)
    assert torch.equal(captured, eager)


def test_aot_autograd_capture_equals_eager(tiny_model, batch):
    """The joint forward/backward graph of AOTAutograd (functionalised custom ops, fake kernels) runs the
    same kernels: same images up to sign ties of an input gradient at ~0."""
    x, y = batch
    for fn in (A.segpgd, A.rp_pgd):
        eager, captured = _both(fn, tiny_model, x, y, "aot_eager", steps=5)
        assert (captured != eager).float().mean() < 1e-3


def test_inductor_capture_equals_eager(tiny_model, batch):
    x, y = batch
    eager, captured = _both(A.segpgd, tiny_model, x, y, True, steps=4)
    assert (captured != eager).float().mean() < 1e-3
    assert ((captured - x).abs() <= 8 / 255 + 1e-6).all()


@pytest.mark.parametrize("criterion", [True, "loss"])
def test_capture_keeps_trace_and_best_iterate(tiny_model, batch, criterion):
    x, y = batch
    traces = [A.AttackTrace(num_classes=5), A.AttackTrace(num_classes=5)]
    counter = _CountingBackend()
    eager = A.segpgd(tiny_model, x, y, steps=4, seed=0, trace=traces[0], best_iterate=criterion)
    captured = A.segpgd(tiny_model, x, y, steps=4, seed=0, trace=traces[1], best_iterate=criterion,
                        compile_step=counter)
    assert counter.runs == 3 and torch.equal(captured, eager)
    rows = [[{k: v for k, v in r.items() if k != "captured"} for r in t.as_dicts()] for t in traces]
    assert rows[0] == rows[1]
    assert [r["captured"] for r in traces[1].as_dicts()] == [False, True, True, True]  # step 1 runs eagerly
    assert not any(r["captured"] for r in traces[0].as_dicts()) and traces[1].capture_error is None


class _DataDependent(torch.nn.Module):
    """A model with a data-dependent Python branch: dynamo cannot capture it in one graph."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        return out * 2 if float(out.detach().mean()) > 1e9 else out


def test_capture_failure_falls_back_to_eager(tiny_model, batch):
    x, y = batch
    model = _DataDependent(tiny_model)
    eager = A.pgd(model, x, y, steps=3, seed=0)
    trace = A.AttackTrace()
    with pytest.warns(RuntimeWarning, match="graph capture failed"):
        captured = A.pgd(model, x, y, steps=3, seed=0, compile_step="aot_eager", trace=trace)
    assert torch.equal(captured, eager)
    # recorded, not silent: no step ran captured, and the trace says why
    assert [r["captured"] for r in trace.as_dicts()] == [False, False, False]
    assert trace.capture_error is not None and trace.capture_error.split(":")[0] in (
        "Unsupported", "UserError", "BackendCompilerFailed", "InternalTorchDynamoError")


def test_compile_step_validation(tiny_model, batch):
    x, y = batch
    with pytest.raises(ValueError, match="compile_step"):
        A.pgd(tiny_model, x, y, steps=2, compile_step=3)


def test_model_untouched_by_captured_attack(tiny_model, batch):
    x, y = batch
    tiny_model.train()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    A.segpgd(tiny_model, x, y, steps=3, seed=0, compile_step="aot_eager")
    assert tiny_model.training and all(p.requires_grad and p.grad is None for p in tiny_model.parameters())
    assert all(torch.equal(v, tiny_model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("kernel", ["cpp", "upsample"])
def test_fused_loss_custom_op_opcheck(kernel):
    """The functional custom op behind every fused loss (t as a tensor input) passes torch.library's
    schema, fake-tensor, autograd-registration and AOT-dispatch checks."""
    from fastsegadv.contract import Flag
    from fastsegadv.ops.weighted_ce import fused_weighted_ce

    g = torch.Generator().manual_seed(0)
    size = (6, 7) if kernel == "upsample" else (12, 14)
    z = torch.randn(2, 5, *size, generator=g, requires_grad=True)
    y = torch.randint(0, 5, (2, 12, 14), generator=g)
    y[:, :2] = 255
    state = torch.randint(0, 3, (2, 12, 14), generator=g).to(torch.uint8)
    params = torch.tensor([0.8, 0.2, 0.7, 0.2, 0.1, 1.0])
    flags = int(Flag.SEGPGD | Flag.REGIONS | Flag.UPDATE_STATE)
    for reduction in ("mean", "none"):
        torch.library.opcheck(fused_weighted_ce, (z, y, state, params, flags, 255, reduction, kernel, True))


def test_captured_step_with_low_resolution_logits():
    """Logits at 1/4 of the labels: the fused upsample + loss runs inside the captured graph."""

    class QuarterRes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)
            self.head = torch.nn.Conv2d(8, 5, 1)

        def forward(self, x):
            return self.head(torch.relu(self.body(x)))

    torch.manual_seed(0)
    model = QuarterRes().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 48, generator=g)
    y = torch.randint(0, 5, (2, 32, 48), generator=g)
    y[:, :4] = 255
    counter = _CountingBackend()
    eager, captured = _both(A.segpgd, model, x, y, counter, steps=4)
    assert counter.compiled == 1 and counter.runs == 3
    assert torch.equal(captured, eager)


def test_channels_last_attack_matches_and_restores_the_weights(tiny_model, batch):
    """channels_last=True: the same adversarial images (up to sign ties of ~0 gradients under the other
    convolution algorithm), and the very same weight tensors afterwards."""
    x, y = batch
    before = [(p, p.data_ptr(), p.stride(), p.detach().clone()) for p in tiny_model.parameters()]
    eager = A.segpgd(tiny_model, x, y, steps=5, seed=0)
    cl = A.segpgd(tiny_model, x, y, steps=5, seed=0, channels_last=True)
    assert cl.is_contiguous() and (cl != eager).float().mean() < 1e-3
    for p, ptr, stride, values in before:  # the original storage, not a copy
        assert p.data_ptr() == ptr and p.stride() == stride and torch.equal(p.detach(), values)
    cl_captured = A.segpgd(tiny_model, x, y, steps=5, seed=0, channels_last=True, compile_step="aot_eager")
    assert (cl_captured != cl).float().mean() < 1e-3


class _HostReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every host read (``.item()``, ``.tolist()``, ``float(t)``) of a given tensor's storage."""

    def __init__(self, watched: torch.Tensor):
        super().__init__()
        self.ptr = watched.untyped_storage().data_ptr()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].untyped_storage().data_ptr() == self.ptr:
            self.reads += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("kernel", ["cpp", "triton", "upsample", "triton_upsample"])
def test_captured_step_kernels_take_t_from_a_tensor(kernel, monkeypatch):
    """lambda(t) must reach the kernels as memory they read (a CUDA-graph replay re-runs kernels, not the
    Python around them): the op never reads the params on the host, the kernels' signatures take a
    pointer, and writing new values into the same params tensor changes the result as a replay would."""
    from fastsegadv.kernels import upsample_weighted_ce as up
    from fastsegadv.kernels import weighted_ce as wce
    from fastsegadv.losses import Weighting
    from fastsegadv.ops.weighted_ce import encode, fused_weighted_ce

    for jit in (wce._fwd_kernel, wce._bwd_kernel, up._fwd_kernel, up._rows_kernel):
        names = jit.arg_names if hasattr(jit, "arg_names") else list(jit.fn.__code__.co_varnames)
        assert "params_ptr" in names and "w_wrong" not in names
    schema = str(torch.ops.fastsegadv.weighted_ce_forward.default._schema)
    assert "Tensor params" in schema and "float[] params" not in schema

    # Triton runs on CUDA tensors on a GPU machine (TRITON_INTERPRET=0 there) and on CPU tensors only
    # under the interpreter; the C++ kernels on whichever device they are built for
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend_name = "triton" if "triton" in kernel else "cpp"
    if not backend.available(backend_name, device):
        pytest.skip(f"{backend_name} kernels are not available on {device.type} here")
    weighting = Weighting(segpgd="linear")
    g = torch.Generator().manual_seed(3)
    small = "upsample" in kernel
    z = torch.randn(2, 5, 4 if small else 8, 5 if small else 10, generator=g).to(device).requires_grad_(True)
    y = torch.randint(0, 5, (2, 8, 10), generator=g).to(device)
    empty = torch.empty(0, dtype=torch.uint8, device=device)
    flags, p2 = encode(weighting, 2, 10, True)
    _, p9 = encode(weighting, 9, 10, True)
    params = torch.tensor(p2, device=device)

    def loss_and_grad(prm):
        out = fused_weighted_ce(z, y, empty, prm, flags, 255, "mean", kernel, True)[0]
        return out.detach(), torch.autograd.grad(out, z)[0]

    tolist_reads = []
    real_tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: tolist_reads.append(t) or real_tolist(t))  # no dispatch
    with _HostReads(params) as mode:
        loss2, grad2 = loss_and_grad(params)
        params.copy_(torch.tensor(p9, device=device))  # "replay" at t = 9 with the same tensor
        loss9, grad9 = loss_and_grad(params)
    assert mode.reads == 0
    assert not [t for t in tolist_reads if t.untyped_storage().data_ptr() == params.untyped_storage().data_ptr()]
    fresh9 = loss_and_grad(torch.tensor(p9, device=device))
    torch.testing.assert_close(loss9, fresh9[0])
    torch.testing.assert_close(grad9, fresh9[1])
    assert not torch.allclose(loss2, loss9)
