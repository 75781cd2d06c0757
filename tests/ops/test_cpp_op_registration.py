"""The C++ ops as registered operators (csrc/ops.cpp): ``torch.library.opcheck`` of the schemas, fake and
autograd registrations, and ``torch.compile`` tracing through them. Their values are tested with every
other kernel in test_weighted_ce.py."""
import pytest
import torch

from fastsegadv import _ops
from fastsegadv import losses as L
from fastsegadv.ops.weighted_ce import encode

from ..kernel_cases import MODES, make_case

pytestmark = pytest.mark.skipif(not _ops.CPP_AVAILABLE, reason=f"C++ ops not built: {_ops.CPP_IMPORT_ERROR}")


def test_opcheck():
    z, y, state = make_case(2, 19, 6, 7, seed=12)
    for w in (MODES["regions"], MODES["entropy"], MODES["margin"]):
        flags, params = encode(w, 2, 5, True)
        params = torch.tensor(params)  # fp32 [6]: the kernels read it from memory
        st = state.clone() if w.regions else torch.empty(0, dtype=torch.uint8)
        for with_grad in (False, True):
            torch.library.opcheck(torch.ops.fastsegadv.weighted_ce_forward,
                                  (z, y, st.clone(), params, flags, 255, True, with_grad, 0.5))
        torch.library.opcheck(torch.ops.fastsegadv.weighted_ce_backward,
                              (torch.tensor(0.5), z, y, st, params, flags & ~4, 255))
        torch.library.opcheck(torch.ops.fastsegadv.weighted_ce_backward,
                              (torch.rand(2, 6, 7), z, y, st, params, flags & ~4, 255))


def test_torch_compile_traces_the_op():
    z, y, state = make_case(2, 19, 6, 7, seed=13)
    def f(t):
        return L.weighted_cross_entropy(t, y, weighting=MODES["segpgd_linear"], step=2, steps=5, backend="cpp",
                                        validate=False)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(z), f(z))
