"""The benchmarks' peak-memory probe measures what a call allocates (CPU: resident high-water mark); the
real-scale benchmark runs end to end at a small size."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

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


def test_real_scale_benchmark_runs_at_a_sixteenth_of_the_size(tmp_path):
    """benchmarks/real_scale.py end to end on shapes divided by 16 (64x128 Cityscapes, 32x32 ADE): every
    row present, x_bare of the bare pass 1, the report, JSON and plot written."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "real_scale.py"
    proc = subprocess.run([sys.executable, str(script), "--divisor", "16", "--steps", "1", "--rounds", "1",
                           "--shapes", "segformer_b0_slide", "upernet_convnext_t_512", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = json.loads((folder / "real_scale.json").read_text())
    runs = {(r["shape"], r["run"]) for r in data["rows"]}
    assert ("upernet_convnext_t_512", "rp_pgd fused upsample") in runs
    if importlib.util.find_spec("cospgd") is not None:
        assert ("segformer_b0_slide", "segpgd: cospgd package") in runs
    assert not any(r["run"].startswith("rp_pgd") for r in data["rows"] if r["shape"] == "segformer_b0_slide")
    assert all(r["s_per_iteration"] > 0 for r in data["rows"])
    assert [r["x_bare"] for r in data["rows"] if r["run"] == "bare"] == [1.0, 1.0]
    assert (folder / "real_scale.md").exists() and (folder / "real_scale.png").stat().st_size > 0
