"""``make gpu-check`` (scripts/gpu_check.py) stops at once, with a clear message and exit code 2, on a
machine without an NVIDIA GPU, and writes nothing."""
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available() and shutil.which("nvidia-smi") is not None, reason="a GPU is here")
def test_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    out = tmp_path / "results"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "gpu-check:" in proc.stderr and "GPU" in proc.stderr
    assert not out.exists()
    assert time.perf_counter() - t < 60
