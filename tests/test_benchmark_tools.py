"""The benchmarks' peak-memory probe measures what a call allocates (CPU: resident high-water mark)."""
import pytest
import torch

from benchmarks.peak_memory import peak_bytes

CPU = torch.device("cpu")


def test_peak_bytes_sees_a_temporary_allocation():
    n = 16 << 20  # 16 MiB of float32, touched then freed inside the call

    def fn():
        t = torch.ones(n // 4)
        return float(t[-1])

    peak = peak_bytes(fn, CPU)
    if peak is None:
        pytest.skip("no resident-memory high-water mark on this platform")
    assert 0.9 * n <= peak <= 1.5 * n


def test_peak_bytes_of_a_cheap_call_is_small():
    peak = peak_bytes(lambda: torch.zeros(4).sum(), CPU)
    if peak is None:
        pytest.skip("no resident-memory high-water mark on this platform")
    assert peak < 4 << 20
