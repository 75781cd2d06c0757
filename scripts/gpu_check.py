"""``make gpu-check``: everything a machine with an NVIDIA GPU should check, in one command, in ~8 minutes.

    python scripts/gpu_check.py [OUT_DIR]      # default: benchmarks/results/<gpu name>/

Without an NVIDIA GPU it stops at once (exit 2) with a message. It uses the machine's own torch, triton
and torchvision as they are (never ``scripts/setup_env.sh``, whose CPU pin would replace them) and
installs nothing from the network. Stages, each in a subprocess with its own time limit, all of them run
even when one fails (the summary says which):

1. ``build``: the C++/CUDA extension for this GPU's architecture
   (``TORCH_CUDA_ARCH_LIST=<cc> MAX_JOBS=16 pip install --no-build-isolation --no-deps --no-index -e .``);
2. ``tests``: every op test on every kernel of the GPU (CUDA op, Triton compiled for the GPU) and the
   attack tests that use CUDA, with ``TRITON_INTERPRET=0``;
3. ``triton_resources``: registers, stack and spills of every Triton kernel specialisation (ptxas -v);
4. ``fused_loss``: the loss benchmark at 8x19x512x1024 and 8x150x512x512 (GB/s, x a device-to-device
   copy_, x eager reference, x ``torch.compile(reference)``);
5. ``fused_upsample``: the fused upsample + loss benchmark;
6. ``attack_e2e``: per-iteration time of PGD and SegPGD on torchvision DeepLabV3-ResNet50 (random weights)
   at 4x3x512x512, fp32 and bf16, eager and graph-captured, against the bare forward + input backward;
7. ``bf16_strength``: mIoU after SegPGD / PGD (20 steps) in fp32 and bf16 on the shipped models.

Writes at most 8 files to OUT_DIR (the device tool returns one folder of at most 8 files): summary.json
(GPU, driver, versions, each stage's status and seconds, the bf16 strength and the targets checked),
gpu_check.log (every stage's output), fused_loss.md / .json, fused_upsample.md, attack_e2e.md and
triton_resources.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 8 * 60


def stop(message: str) -> None:
    print(f"gpu-check: {message}", file=sys.stderr)
    sys.exit(2)


def gpu_or_exit() -> dict:
    """GPU facts, or exit 2 with a clear message when there is no usable NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        stop("no NVIDIA GPU here (nvidia-smi not found); run it on a machine with one")
    probe = subprocess.run([sys.executable, "-c", (
        "import json, torch, sys\n"
        "ok = torch.cuda.is_available() and torch.version.cuda is not None\n"
        "print(json.dumps({'ok': ok, 'torch': torch.__version__, 'cuda': torch.version.cuda,\n"
        "  'name': torch.cuda.get_device_name() if ok else None,\n"
        "  'cc': '%d.%d' % torch.cuda.get_device_capability() if ok else None}))")],
        capture_output=True, text=True)
    try:
        info = json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        stop(f"cannot import torch here:\n{probe.stderr[-2000:]}")
    if not info["ok"]:
        stop(f"torch {info['torch']} sees no CUDA GPU (a CPU build, or no driver); run it on a machine with an "
             "NVIDIA GPU and a CUDA build of torch")
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip().splitlines()
    info["nvidia_smi"] = smi[0] if smi else None
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")[:60]


class Stages:
    """Runs each stage as a subprocess with a time limit, appends its output to one log and keeps a
    summary of status and seconds."""

    def __init__(self, log: Path):
        self.log = log
        self.rows: dict[str, dict] = {}
        self.t0 = time.time()

    def run(self, name: str, cmd: list[str], *, limit_s: int, env: dict | None = None) -> bool:
        left = BUDGET_S + 120 - (time.time() - self.t0)  # 2 minutes of slack over the 8-minute plan
        limit = int(max(10, min(limit_s, left)))
        t = time.time()
        with open(self.log, "a") as f:
            f.write(f"\n===== {name}: {' '.join(cmd)} (limit {limit} s)\n")
            f.flush()
            try:
                rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=limit,
                                    env={**os.environ, **(env or {})}).returncode
                status = "passed" if rc == 0 else f"failed (exit {rc})"
            except subprocess.TimeoutExpired:
                status = f"timed out after {limit} s"
            f.write(f"===== {name}: {status}\n")
        self.rows[name] = {"status": status, "seconds": round(time.time() - t, 1)}
        print(f"[gpu-check] {name}: {status} ({self.rows[name]['seconds']} s)", flush=True)
        return status == "passed"


def copy_benchmark(tmp: Path, suite: str, device_slug: str, out: Path, stem: str, with_json: bool) -> None:
    src = tmp / suite / device_slug
    if (src / "summary.md").exists():
        shutil.copy(src / "summary.md", out / f"{stem}.md")
    if with_json and (src / "summary.json").exists():
        shutil.copy(src / "summary.json", out / f"{stem}.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=None, help="result folder (default: benchmarks/results/<gpu>)")
    args = ap.parse_args(argv)
    info = gpu_or_exit()
    out = args.out or ROOT / "benchmarks" / "results" / slug(info["name"])
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_check.log"
    log.write_text(f"gpu-check on {info['nvidia_smi']}: torch {info['torch']} (CUDA {info['cuda']}), "
                   f"triton {info['triton']}\n")
    stages = Stages(log)
    py = sys.executable
    gpu_env = {"TRITON_INTERPRET": "0", "PYTHONUNBUFFERED": "1"}
    stages.run("build", [py, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "-e", "."],
               limit_s=240, env={"TORCH_CUDA_ARCH_LIST": info["cc"], "MAX_JOBS": "16"})
    stages.run("tests", [py, "-m", "pytest", "-q", "-x", "--no-header", "-p", "no:cacheprovider",
                         "tests/ops", "tests/attacks/test_graph_capture.py", "tests/attacks/test_fused_end_to_end.py"],
               limit_s=150, env=gpu_env)
    cc = info["cc"].replace(".", "")
    stages.run("triton_resources", [py, "tests/ops/triton_gpu_compile.py", "--arch", cc,
                                    "--resources", str(out / "triton_resources.md")], limit_s=120, env=gpu_env)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench = [py, "benchmarks/run_benchmarks.py", "--out", str(tmp)]
        stages.run("fused_loss", bench + ["--suite", "fused_loss", "-k", "8x19x512x1024 or 8x150x512x512"],
                   limit_s=150, env=gpu_env)
        copy_benchmark(tmp, "fused_loss", slug(info["name"]), out, "fused_loss", with_json=True)
        stages.run("fused_upsample", bench + ["--suite", "fused_upsample"], limit_s=60, env=gpu_env)
        copy_benchmark(tmp, "fused_upsample", slug(info["name"]), out, "fused_upsample", with_json=False)
        stages.run("attack_e2e", bench + ["--suite", "attack_e2e_gpu"], limit_s=150,
                   env={**gpu_env, "FASTSEGADV_GPU_CHECK": "1"})  # DeepLabV3-ResNet50, 4x3x512x512, PGD, SegPGD
        copy_benchmark(tmp, "attack_e2e_gpu", slug(info["name"]), out, "attack_e2e", with_json=False)
    strength = out / ".bf16_strength.json"
    stages.run("bf16_strength", [py, "benchmarks/bf16_strength.py", "--json", str(strength)], limit_s=90, env=gpu_env)
    summary = {"gpu": info, "stages": stages.rows, "seconds": round(time.time() - stages.t0, 1),
               "targets": {"fused loss": ">= 70 % of copy_ bandwidth, >= 5x eager, faster than torch.compile(ref)",
                           "attack step": "<= 1.05x a bare forward + input-gradient backward",
                           "bf16": ">= 1.7x fp32 per iteration at equal strength (within 1 mIoU)"}}
    if strength.exists():
        summary["bf16_strength"] = json.loads(strength.read_text())
        strength.unlink()
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"[gpu-check] wrote {out} ({summary['seconds']} s)")
    return 0 if all(r["status"] == "passed" for r in stages.rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
