"""The tutorials under examples/ run, as a user runs them, with small settings (issue 24)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "drop_in_at_loop.py": ["--steps", "2", "--batch-size", "4"],
    "evaluate_reliably.py": ["--images", "4", "--quick-steps", "2", "--passes", "9"],
    "benchmark_fused_loss.py": ["--shape", "2", "5", "33", "47", "--repeats", "2"],
    "attack_hf_segformer.py": ["--size", "64", "96", "--steps", "2"],
}
EXPECT = {
    "drop_in_at_loop.py": "after 2 steps: clean mIoU",
    "evaluate_reliably.py": "reliable tier's",
    "benchmark_fused_loss.py": "faster than eager",
    "attack_hf_segformer.py": "the model is unchanged",
}


def test_every_example_is_run_here():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script, tmp_path):
    args = CASES[script] + (["--output", str(tmp_path / "report")] if script == "evaluate_reliably.py" else [])
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert EXPECT[script] in out.stdout, out.stdout
    if script == "evaluate_reliably.py":
        for tier in ("quick", "reliable"):
            assert (tmp_path / "report" / tier / "robustness.md").is_file()
