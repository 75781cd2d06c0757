"""The one backend choice (fastsegadv/backend.py): a table of kernels per op and device, an explicit request
that cannot be served is an error that says why, the environment variable forces a backend where it can
serve, and the automatic choice never picks the Triton interpreter on CPU."""
import pytest
import torch

from fastsegadv import backend
from fastsegadv._ops import CPP_AVAILABLE

needs_cpp = pytest.mark.skipif(not CPP_AVAILABLE, reason="the C++ extension is not built")


@needs_cpp
def test_automatic_choice_on_cpu_is_the_cpp_kernel_for_every_op(monkeypatch):
    monkeypatch.delenv(backend.ENV, raising=False)
    z = torch.randn(1, 3, 4, 4)
    for op in backend.IMPLEMENTED:
        assert backend.choose_backend(op, z) == "cpp"  # never the interpreter, even with TRITON_INTERPRET=1
    assert backend.choose_backend("weighted_ce", z.double()) == "reference"
    assert backend.choose_backend("weighted_ce", torch.randn(1, 1, 4, 4)) == "reference"  # C < 2


@needs_cpp
def test_an_explicit_request_that_cannot_serve_says_why(monkeypatch):
    monkeypatch.delenv(backend.ENV, raising=False)
    with pytest.raises(RuntimeError, match="float64"):
        backend.choose_backend("weighted_ce", torch.randn(1, 3, 4, 4, dtype=torch.float64), "cpp")
    with pytest.raises(RuntimeError, match="at least 2 classes"):
        backend.choose_backend("weighted_ce", torch.randn(1, 1, 4, 4), "cpp")
    with pytest.raises(ValueError, match="must be one of"):
        backend.choose_backend("weighted_ce", torch.randn(1, 3, 4, 4), "cuda")
    with pytest.raises(ValueError, match="unknown op"):
        backend.choose_backend("softmax", torch.randn(1, 3, 4, 4))
    assert backend.choose_backend("weighted_ce", torch.randn(1, 3, 4, 4, dtype=torch.float64), "reference") == \
        "reference"


def test_the_table_has_no_cuda_cpp_upsample_kernel():
    assert "cpp" not in backend.IMPLEMENTED["upsample_weighted_ce"]["cuda"]
    assert backend.IMPLEMENTED["weighted_ce"]["cuda"][0] == "triton"


@needs_cpp
def test_the_environment_forces_where_it_can_serve(monkeypatch):
    monkeypatch.setenv(backend.ENV, "reference")
    assert backend.choose_backend("weighted_ce", torch.randn(1, 3, 4, 4)) == "reference"
    monkeypatch.setenv(backend.ENV, "cpp")
    assert backend.choose_backend("weighted_ce", torch.randn(1, 3, 4, 4, dtype=torch.float64)) == "reference"
    monkeypatch.setenv(backend.ENV, "nonsense")
    with pytest.raises(ValueError, match=backend.ENV):
        backend.choose_backend("weighted_ce", torch.randn(1, 3, 4, 4))
