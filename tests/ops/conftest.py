"""What the op tests share: every kernel that can run on this machine (the ``kernel`` parameter) and one
tolerance table.

A test that takes a ``kernel`` argument runs once for each :class:`KernelTarget` of its module's ``OP``
(default ``weighted_ce``) that is built here: the C++ CPU op, Triton under ``TRITON_INTERPRET=1`` and, on
a GPU machine, the CUDA op and Triton on the GPU. If it also takes ``shape``, the module's ``SHAPES``
gives the shapes: ``SHAPES["compiled"]`` for compiled kernels, ``SHAPES["interpreted"]`` for the Triton
interpreter (slow: small shapes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastsegadv import backend


@dataclass(frozen=True)
class KernelTarget:
    backend: str  # "cpp" or "triton"
    device: str  # "cpu" or "cuda"

    @property
    def interpreted(self) -> bool:
        return self.backend == "triton" and self.device == "cpu"

    def __str__(self) -> str:
        return f"{self.backend}-{self.device}"


def kernel_targets(op: str) -> list[KernelTarget]:
    """The kernels of ``op`` (a key of :data:`fastsegadv.backend.IMPLEMENTED`) that can run here."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [KernelTarget(name, dev) for dev in devices for name in backend.IMPLEMENTED[op].get(dev, ())
            if backend.available(name, torch.device(dev))]


@dataclass(frozen=True)
class Tolerance:
    """``|got - ref| <= atol * max|ref| + rtol * |ref|`` against the eager reference in the same dtype."""

    rtol: float
    atol: float  # relative to the largest magnitude of the reference (cancellation near 0)


# (op, what) -> tolerance in fp32. fp16/bf16 are judged by :func:`assert_no_worse_than_reference`
# instead: the kernels accumulate in fp32, so their error against the fp64 truth may not exceed the eager
# reference's error in that dtype by more than one unit of the last place.
TOLERANCE = {
    ("weighted_ce", "loss"): Tolerance(rtol=1e-5, atol=1e-6),
    ("weighted_ce", "grad"): Tolerance(rtol=1e-5, atol=1e-6),
    ("weighted_ce", "stats"): Tolerance(rtol=1e-5, atol=1e-5),
    ("weighted_ce", "translated"): Tolerance(rtol=1e-3, atol=1e-5),  # z + 100: fp32 rounding of the shift
    ("upsample_weighted_ce", "loss"): Tolerance(rtol=1e-5, atol=1e-5),
    ("upsample_weighted_ce", "grad"): Tolerance(rtol=1e-4, atol=1e-6),  # sums of up to 4 x 4^2 taps
    ("masked_class_sums", "sums"): Tolerance(rtol=1e-5, atol=1e-5),
    ("masked_class_sums", "grad"): Tolerance(rtol=1e-6, atol=1e-6),  # a gather: exact up to the upstream's cast
    ("masked_class_sums", "prototype_loss"): Tolerance(rtol=1e-5, atol=1e-6),
    ("masked_class_sums", "prototype_grad"): Tolerance(rtol=1e-4, atol=1e-6),
    ("kernels_agree", "loss"): Tolerance(rtol=1e-6, atol=1e-6),  # two kernels, same fp32 arithmetic
    ("kernels_agree", "grad"): Tolerance(rtol=1e-5, atol=1e-7),
}


def assert_close(got: torch.Tensor, ref: torch.Tensor, op: str, what: str) -> None:
    tol = TOLERANCE[(op, what)]
    scale = max(1.0, float(ref.detach().abs().max())) if ref.numel() else 1.0
    torch.testing.assert_close(got.detach().cpu(), ref.detach().cpu(), rtol=tol.rtol, atol=tol.atol * scale)


def assert_no_worse_than_reference(got: torch.Tensor, ref_low: torch.Tensor, exact: torch.Tensor,
                                   dtype: torch.dtype, mask=True) -> None:
    """Low precision: ``|got - exact| <= |ref_low - exact| + eps(dtype) * max|exact|`` (+1e-6), where
    ``ref_low`` is the eager reference run in ``dtype`` and ``exact`` the reference in fp64."""
    got, ref_low, exact = (t.detach().cpu().double() for t in (got, ref_low, exact))
    err_got = ((got - exact) * mask).abs().max()
    err_ref = ((ref_low - exact) * mask).abs().max()
    slack = torch.finfo(dtype).eps * exact.abs().max() + 1e-6
    assert err_got <= err_ref + slack, (float(err_got), float(err_ref))


def pytest_generate_tests(metafunc):
    if "kernel" not in metafunc.fixturenames:
        return
    op = getattr(metafunc.module, "OP", "weighted_ce")
    targets = kernel_targets(op)
    if "shape" in metafunc.fixturenames:
        shapes = metafunc.module.SHAPES
        cases = [(k, s) for k in targets for s in shapes["interpreted" if k.interpreted else "compiled"]]
        metafunc.parametrize(("kernel", "shape"), cases,
                             ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in cases])
    else:
        metafunc.parametrize("kernel", targets, ids=str)
