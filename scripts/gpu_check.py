"""``make gpu-check``: what a lent GPU machine should check, in one command of at most 540 s.

    python scripts/gpu_check.py [OUT] [--part 1|2] [--limit STAGE=SECONDS ...] [--stand-in]

A GPU machine is lent for about 15 minutes in all, one command at most 600 s. So the stages run in
order of value, each with a limit, inside a global budget of 540 s (``--budget``); a stage that reaches
its limit is killed with its whole process group (compilers, pytest, benchmark workers), the next one
starts, and ``summary.json`` in OUT is rewritten after every stage, so a call cut short still returns
what it reached. No stage stops at the first failure (no ``-x``); each stage's pass/fail/skip counts are
read from its pytest output.

Part 1 (the default):
  build            the extension for this GPU's compute capability; a prebuilt in-tree
                   ``fastsegadv/_C.*.so`` (built by ``make gpu-twin``, sent along with the tree) is
                   reused when it imports and has CUDA kernels registered
  gpu_ops          CUDA and Triton kernels against the eager reference, headline modes, fp32 and bf16,
                   and the CUDA ``linf_step`` (tests/ops/test_gpu_headline.py)
  fused_loss       the loss benchmark at 8x19x512x1024 and 8x150x512x512, ce and segpgd, fp32 and bf16
  attack_e2e       PGD and SegPGD per iteration on DeepLabV3-ResNet50, 4x3x512x512, eager and captured
                   (a capture that fell back to eager is labelled so in the rows)
  triton_resources registers, stack and spills of every Triton launch (ptxas -v), one worker per core
Part 2 (``--part 2``, a second call):
  cuda_tests       the rest of tests/ops on the CUDA kernel targets, graph capture and the fused
                   end-to-end attack tests on CUDA
  fused_upsample   the fused upsample + loss benchmark
  bf16_strength    mIoU after PGD / SegPGD in fp32 and bf16 on the shipped models

OUT (default ``benchmarks/results/<gpu>/``) is made absolute; it gets at most 8 files: summary.json,
gpu_check.log and the stages' tables. No git and no network are needed. Without an NVIDIA GPU it stops
at once (exit 2). ``--stand-in`` runs every stage's real command against a stand-in that reports a GPU
(``make gpu-twin`` uses it to check commands, selections, limits, kills and result writing without one).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 540
KILL_GRACE_S = 5
STAND_IN = {"ok": True, "name": "stand-in", "cc": "9.0", "nvidia_smi": "stand-in (no GPU)", "stand_in": True}
# the extension is usable on the GPU when it imports and registers a CUDA kernel
PROBE_EXTENSION = ("import torch, fastsegadv._C; "
                   "assert torch._C._dispatch_has_kernel_for_dispatch_key('fastsegadv::weighted_ce_forward', 'CUDA')")


def stop(message: str) -> None:
    print(f"gpu-check: {message}", file=sys.stderr)
    sys.exit(2)


def versions() -> dict:
    probe = subprocess.run([sys.executable, "-c", (
        "import json, torch\n"
        "try:\n    import triton; tv = triton.__version__\nexcept ImportError:\n    tv = None\n"
        "ok = torch.cuda.is_available() and torch.version.cuda is not None\n"
        "print(json.dumps({'ok': ok, 'torch': torch.__version__, 'cuda': torch.version.cuda, 'triton': tv,\n"
        "  'name': torch.cuda.get_device_name() if ok else None,\n"
        "  'cc': '%d.%d' % torch.cuda.get_device_capability() if ok else None}))")],
        capture_output=True, text=True)
    try:
        return json.loads(probe.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        stop(f"cannot import torch here:\n{probe.stderr[-2000:]}")


def gpu_or_exit(stand_in: bool) -> dict:
    """GPU facts, or exit 2 with a clear message when there is no usable NVIDIA GPU."""
    if stand_in:
        info = versions()
        return {**info, **STAND_IN}
    if shutil.which("nvidia-smi") is None:
        stop("no NVIDIA GPU here (nvidia-smi not found); run it on a machine with one")
    info = versions()
    if not info["ok"]:
        stop(f"torch {info['torch']} sees no CUDA GPU (a CPU build, or no driver); run it on a machine with an "
             "NVIDIA GPU and a CUDA build of torch")
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip().splitlines()
    info["nvidia_smi"] = smi[0] if smi else None
    return info


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")[:60]


def pytest_counts(text: str) -> dict:
    """``{"passed": 12, "skipped": 3, ...}`` from pytest's last summary line in ``text`` (empty if none)."""
    lines = [ln for ln in text.splitlines() if re.search(r"\b(passed|failed|skipped|error|errors|deselected|"
                                                         r"no tests ran)\b", ln) and " in " in ln]
    if not lines:
        return {}
    counts = {}
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?)",
                              lines[-1]):
        counts[what.rstrip("s") if what.startswith(("error", "warning")) else what] = int(n)
    return counts


def commit_id() -> str:
    """The commit, without requiring git: git if it is there, else FASTSEGADV_COMMIT, else "unknown"."""
    if shutil.which("git"):
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return os.environ.get("FASTSEGADV_COMMIT", "unknown")


@dataclass
class Stage:
    name: str
    limit_s: int
    cmd: list[str]
    env: dict = field(default_factory=dict)
    collect: tuple = ()  # (file made by the stage, name in OUT) copied after it, even when it was killed


def run_group(cmd: list[str], log, limit: float, env: dict) -> str:
    """Runs ``cmd`` in its own process group for at most ``limit`` seconds. At the limit the whole group
    gets SIGTERM, then SIGKILL after a grace period; processes the stage left behind (compiler or
    benchmark workers) are killed in either case, so nothing holds the GPU during the next stage."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout=limit)
        status = "passed" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        status = f"killed at its limit ({limit:.0f} s)"
        signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    return status


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):  # the group is already gone
        pass


class Runner:
    """Runs the stages in order inside the budget and rewrites OUT/summary.json after each one."""

    def __init__(self, out: Path, info: dict, part: int, budget: float):
        self.out, self.info, self.part, self.budget = out, info, part, budget
        self.log_path = out / "gpu_check.log"
        self.rows: dict[str, dict] = {}
        self.extra: dict = {}
        self.commit = commit_id()
        self.t0 = time.time()

    def left(self) -> float:
        return self.budget - (time.time() - self.t0)

    def write_summary(self) -> None:
        summary = {
            "gpu": self.info, "part": self.part, "out": str(self.out), "commit": self.commit, "budget_s": self.budget,
            "seconds": round(time.time() - self.t0, 1), "stages": self.rows, **self.extra,
            "targets": {"fused loss": ">= 70 % of copy_ bandwidth, >= 5x eager, faster than torch.compile(ref)",
                        "attack step": "<= 1.05x a bare forward + input-gradient backward",
                        "bf16": ">= 1.7x fp32 per iteration at equal strength (within 1 mIoU)"}}
        tmp = self.out / ".summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, self.out / "summary.json")

    def run(self, stage: Stage, limit_s: int) -> None:
        left = self.left()
        row = {"limit_s": limit_s, "command": " ".join(stage.cmd)}
        if left < 5:
            row.update(status="not started (budget spent)", seconds=0.0)
            self.rows[stage.name] = row
            self.write_summary()
            return
        limit = min(limit_s, left)
        row.update(status="running", limit_s=round(limit, 1), started_at_s=round(time.time() - self.t0, 1))
        self.rows[stage.name] = row
        self.write_summary()
        print(f"[gpu-check] {stage.name} (limit {limit:.0f} s) ...", flush=True)
        t = time.time()
        with open(self.log_path, "a") as log:
            log.write(f"\n===== {stage.name}: {' '.join(stage.cmd)} (limit {limit:.0f} s)\n")
            log.flush()
            start = log.tell()
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **stage.env}
            status = run_group(stage.cmd, log, limit, env)
            log.write(f"===== {stage.name}: {status}\n")
        with open(self.log_path) as log:
            log.seek(start)
            counts = pytest_counts(log.read())
        for src, name in stage.collect:
            if Path(src).exists():
                shutil.copy(src, self.out / name)
        row.update(status=status, seconds=round(time.time() - t, 1))
        if counts:
            row["tests"] = counts
        print(f"[gpu-check] {stage.name}: {status} ({row['seconds']} s){' ' + str(counts) if counts else ''}",
              flush=True)
        self.write_summary()


def build_stage(info: dict, py: str) -> Stage:
    """Reuse a prebuilt extension that works on this GPU, else build it for this GPU only."""
    reuse = subprocess.run([py, "-c", PROBE_EXTENSION], cwd=ROOT, capture_output=True).returncode == 0
    if reuse:
        return Stage("build", 0, [py, "-c", PROBE_EXTENSION + "; print('reused the prebuilt extension:', "
                                  "fastsegadv._C.__file__)"])
    cmd = [py, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "-e", "."]
    return Stage("build", 0, cmd, env={"TORCH_CUDA_ARCH_LIST": info["cc"], "MAX_JOBS": str(os.cpu_count() or 1),
                                        "FASTSEGADV_PORTABLE": "1"})


def stages(part: int, info: dict, out: Path, tmp: Path, only: set) -> list[tuple[Stage, int]]:
    """(stage, limit in seconds) in order of value; the limits of a part add up to at most 540 s."""
    py = sys.executable
    gpu = {"TRITON_INTERPRET": "0", "FASTSEGADV_GPU_CHECK": "1"}
    pytest = [py, "-m", "pytest", "-q", "--no-header", "-p", "no:cacheprovider", "-rfE"]
    dev = slug(info["name"])

    def bench(suite: str) -> list[str]:
        return [py, "benchmarks/run_benchmarks.py", "--out", str(tmp), "--suite", suite]

    def table(suite: str, stem: str, with_json: bool = False) -> tuple:
        files = [(tmp / suite / dev / "summary.md", f"{stem}.md")]
        return tuple(files + ([(tmp / suite / dev / "summary.json", f"{stem}.json")] if with_json else []))

    if part == 1:
        return [
            (build_stage(info, py) if "build" in only else Stage("build", 0, []), 150),
            (Stage("gpu_ops", 0, pytest + ["tests/ops/test_gpu_headline.py"], gpu), 80),
            (Stage("fused_loss", 0, bench("fused_loss"), gpu, table("fused_loss", "fused_loss", True)), 110),
            (Stage("attack_e2e", 0, bench("attack_e2e_gpu"), gpu, table("attack_e2e_gpu", "attack_e2e")), 100),
            (Stage("triton_resources", 0, [py, "tests/ops/triton_gpu_compile.py", "--arch",
                                           info["cc"].replace(".", ""), "--workers", str(os.cpu_count() or 1),
                                           "--resources", str(out / "triton_resources.md")], gpu), 100),
        ]
    return [
        (Stage("cuda_tests", 0, pytest + ["tests/ops", "tests/attacks/test_graph_capture.py",
                                          "tests/attacks/test_fused_end_to_end.py", "-k", "cuda or triton",
                                          "--ignore", "tests/ops/test_gpu_headline.py",
                                          "--ignore", "tests/ops/test_triton_gpu_compile.py",
                                          "--ignore", "tests/ops/test_speed_guard.py"], gpu), 240),
        (Stage("fused_upsample", 0, bench("fused_upsample"), gpu, table("fused_upsample", "fused_upsample")), 90),
        (Stage("bf16_strength", 0, [py, "benchmarks/bf16_strength.py", "--json", str(out / "bf16_strength.json")],
               gpu), 150),
    ]


def parse_limits(items: list[str]) -> dict[str, int]:
    limits = {}
    for item in items:
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise SystemExit(f"gpu-check: --limit takes STAGE=SECONDS, got {item!r}")
        limits[name] = int(value)
    return limits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=None, help="result folder (default: benchmarks/results/<gpu>)")
    ap.add_argument("--part", type=int, choices=(1, 2), default=1, help="1: the stages of most value; 2: the rest")
    ap.add_argument("--limit", action="append", default=[], metavar="STAGE=SECONDS", help="override a stage's limit")
    ap.add_argument("--budget", type=int, default=BUDGET_S, help="seconds for the whole call (default 540)")
    ap.add_argument("--only", default="", metavar="STAGE,...", help="run only these stages of the part")
    ap.add_argument("--stand-in", action="store_true", help="run every stage against a stand-in GPU (gpu-twin)")
    args = ap.parse_args(argv)
    limits = parse_limits(args.limit)
    info = gpu_or_exit(args.stand_in)
    out = (args.out or ROOT / "benchmarks" / "results" / slug(info["name"])).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.log").write_text(f"gpu-check part {args.part} on {info['nvidia_smi']}: torch {info['torch']} "
                                       f"(CUDA {info['cuda']}), triton {info['triton']}\n")
    runner = Runner(out, info, args.part, args.budget)
    with tempfile.TemporaryDirectory() as tmp:
        only = set(filter(None, args.only.split(",")))
        plan = stages(args.part, info, out, Path(tmp), only or {"build"})
        unknown = (set(limits) | only) - {s.name for s, _ in plan}
        if unknown:
            raise SystemExit(f"gpu-check: --limit/--only name no stage of part {args.part}: "
                             f"{', '.join(sorted(unknown))} (stages: {', '.join(s.name for s, _ in plan)})")
        for stage, limit in plan:
            if only and stage.name not in only:
                continue
            runner.run(stage, limits.get(stage.name, limit))
    strength = out / "bf16_strength.json"
    if strength.exists():
        runner.extra["bf16_strength"] = json.loads(strength.read_text())
        strength.unlink()
    runner.write_summary()
    print(f"[gpu-check] wrote {out} ({round(time.time() - runner.t0, 1)} s)")
    return 0 if all(r["status"] == "passed" for r in runner.rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
