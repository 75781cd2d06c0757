"""``make gpu-check`` (scripts/gpu_check.py): it stops at once, with a clear message and exit code 2, on a
machine without an NVIDIA GPU, and writes nothing; against a stand-in GPU its stages end inside their
limits, killed whole at them, with the summary written."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up there
_spec.loader.exec_module(gpu_check)


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


def test_stand_in_stages_end_inside_their_limits_and_leave_a_summary(tmp_path):
    """``--stand-in`` (what ``make gpu-twin`` runs): a relative OUT is made absolute; each stage ends inside
    its limit; a stage at its limit is killed with its whole process group (the compile workers of
    triton_resources included) and the summary names it; pytest's counts are read into the summary."""
    out = "results"  # relative on purpose
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), out, "--stand-in",
                           "--only", "gpu_ops,triton_resources", "--limit", "triton_resources=4"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    summary = json.loads((tmp_path / out / "summary.json").read_text())
    assert summary["out"] == str((tmp_path / out).resolve()) and summary["gpu"]["stand_in"]
    stages = summary["stages"]
    assert list(stages) == ["gpu_ops", "triton_resources"], proc.stdout + proc.stderr
    assert stages["gpu_ops"]["status"] == "passed" and stages["gpu_ops"]["tests"]["skipped"] > 0  # no CUDA here
    assert stages["triton_resources"]["status"].startswith("killed at its limit")
    assert stages["triton_resources"]["seconds"] <= 4 + 6
    assert proc.returncode == 1  # a killed stage is not a pass
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", "triton_gpu_compile.py --arch 90"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "processes of a killed stage survived it"
    assert (tmp_path / out / "gpu_check.log").read_text().count("=====") == 4


def test_pytest_counts_and_group_kill(tmp_path):
    counts = gpu_check.pytest_counts("....\nFAILED x\n3 failed, 1200 passed, 40 skipped, 2 errors in 71.2s\n")
    assert counts == {"failed": 3, "passed": 1200, "skipped": 40, "error": 2}
    assert gpu_check.pytest_counts("no summary here") == {}
    marker = tmp_path / "grandchild_alive"
    script = f"sleep 30 & sleep 3; touch {marker}; wait"  # a child, then a grandchild outliving a kill
    t = time.perf_counter()
    with open(tmp_path / "log", "w") as log:
        status = gpu_check.run_group(["bash", "-c", script], log, 1, dict(os.environ))
    assert status.startswith("killed") and time.perf_counter() - t < 1 + gpu_check.KILL_GRACE_S + 2
    time.sleep(3)
    assert not marker.exists()
    with open(tmp_path / "log", "w") as log:
        assert gpu_check.run_group([sys.executable, "-c", "raise SystemExit(3)"], log, 30, dict(os.environ)) \
            == "failed (exit 3)"
