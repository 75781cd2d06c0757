"""Compile every Triton kernel of fastsegadv for a real GPU target (sm_90) without a GPU.

Run as a script with ``TRITON_INTERPRET=0`` (tests/ops/test_triton_gpu_compile.py does, in a subprocess):
``python tests/ops/triton_gpu_compile.py [--arch 90] [--json out.json] [--resources report.md]``.
``--resources`` also runs each launch's PTX through the bundled ``ptxas -v`` with Triton's own options and
writes registers, stack frame and spills per kernel and specialisation (the table the kernels issue asks
for; slower: one more ptxas call per launch). ``--workers N`` splits the launches over N processes
(``--shard i/N`` is one of them); every launch's row is appended to a JSON-lines file as soon as it is
compiled and the report is rewritten every few seconds, so a run killed at its time limit still leaves
the launches it reached. ``--fail-on-spill`` makes a spilling specialisation an error.

The interpreter that runs the kernels in the rest of the suite never makes the checks of Triton's
compiler (an unreadable global, a type error in a branch that is not taken, an op the GPU backend does
not lower), so a kernel can pass every interpreter test and still fail at its first launch on a GPU.
This script installs a stand-in driver that reports a CUDA target, turns every ``kernel[grid](...)``
launch into ``kernel.warmup``-style compilation (Triton's own binder picks the specialisation from the
real arguments: dtypes, ``== 1`` integers, 16-byte alignment, constexpr values), and drives the
library's own launchers (``fastsegadv.kernels.*``) with CPU tensors over every weighting mode, dtype,
layout, reduction and upsampling geometry the library uses. Each launch is compiled by Triton's front
end, the NVIDIA backend and its bundled ``ptxas`` down to a cubin; nothing runs. A failure is reported
with the kernel, its specialisation and the compiler's message.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    raise SystemExit("run with TRITON_INTERPRET=0: the interpreter is what this script must not use")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver as triton_driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

try:  # where the NVIDIA backend keeps its ptxas (Triton >= 3.3)
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability  # noqa: E402
except ImportError:  # pragma: no cover
    get_ptxas = sm_arch_from_capability = None


class CompileOnlyDriver:
    """What ``JITFunction.run`` asks of the active driver, for a GPU that is not there."""

    def __init__(self, arch: int):
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def is_active(self):
        return True


RESULTS: list[dict] = []
RESOURCES = {"enabled": False, "arch": 90, "only": ""}
ROWS_FILE: dict = {"f": None}  # JSON lines, one per compiled launch (flushed: a killed run keeps them)
_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def ptxas_resources(ptx: str, arch: int) -> dict:
    """Registers per thread, stack frame and spill bytes of one kernel's PTX, from ``ptxas -v`` run with
    the options Triton's NVIDIA backend uses for its cubin."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        cmd = [get_ptxas(arch).path, "-lineinfo", "-v", "--regAllocOptLevel=2",
               f"--gpu-name={sm_arch_from_capability(arch)}", src, "-o", os.path.join(d, "kernel.o")]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    regs, frame = _PTXAS_REGS.search(log), _PTXAS_FRAME.search(log)
    if regs is None or frame is None:
        raise RuntimeError(f"no resource lines in ptxas output:\n{log}")
    regs = int(regs.group(1))
    stack, spill_st, spill_ld = map(int, frame.groups())
    return {"registers": regs, "stack_bytes": stack, "spill_store_bytes": spill_st, "spill_load_bytes": spill_ld}


def _describe(args, kwargs) -> str:
    parts = []
    for a in args:
        if isinstance(a, torch.Tensor):
            parts.append(f"*{str(a.dtype).removeprefix('torch.')}")
        else:
            parts.append(repr(a) if isinstance(a, bool) else type(a).__name__)
    return ", ".join(parts + [f"{k}={v}" for k, v in sorted(kwargs.items())])


def _compiling_getitem(self: JITFunction, grid):
    def launch(*args, **kwargs):
        name = self.fn.__module__.rsplit(".", 1)[-1] + "." + self.fn.__name__
        if RESOURCES["only"] not in name:
            return None
        spec = _describe(args, kwargs)
        t0 = time.perf_counter()
        try:
            kernel = self.run(*args, grid=grid, warmup=True, **kwargs)
            ok, error = kernel is not None and bool(kernel.asm.get("cubin")), None
            if not ok:
                error = "no cubin produced"
        except Exception as e:  # noqa: BLE001  (reported, the script goes on to the next kernel)
            ok, error = False, f"{type(e).__name__}: {str(e)[-1500:]}"
        row = {"kernel": name, "spec": spec, "ok": ok, "error": error, "seconds": round(time.perf_counter() - t0, 3)}
        if ok and RESOURCES["enabled"]:
            row.update(ptxas_resources(kernel.asm["ptx"], RESOURCES["arch"]))
            row["num_warps"] = kernel.metadata.num_warps
        RESULTS.append(row)
        if ROWS_FILE["f"] is not None:
            ROWS_FILE["f"].write(json.dumps(row) + "\n")
            ROWS_FILE["f"].flush()
        return None

    return launch


def _cases():
    """Every launch the library makes, on small CPU tensors (values do not matter: nothing runs)."""
    from fastsegadv.kernels import masked_class_sums as mcs
    from fastsegadv.kernels import upsample_weighted_ce as up
    from fastsegadv.kernels import weighted_ce as wce
    from fastsegadv.losses import Weighting
    from fastsegadv.ops.weighted_ce import encode

    modes = {
        "ce": Weighting(), "segpgd": Weighting(segpgd="linear"), "regions": Weighting(regions=True),
        "cospgd": Weighting(cospgd="softmax"), "cospgd_targeted": Weighting(cospgd="softmax", cospgd_targeted=True),
        "cospgd_sigmoid": Weighting(cospgd="sigmoid"), "margin": Weighting(uncertainty="margin"),
        "max_min": Weighting(uncertainty="max_min"), "mean_margin": Weighting(uncertainty="mean_margin"),
        "entropy": Weighting(uncertainty="entropy"),
        "entropy_detached": Weighting(uncertainty="entropy", detach_uncertainty=True),
        "zero_out": Weighting(zero_out=0.75), "entropy_x_zero_out": Weighting(uncertainty="entropy", zero_out=0.75),
        "segpgd_x_zero_out": Weighting(segpgd="linear", zero_out=0.75),
        "regions_x_cospgd": Weighting(regions=True, cospgd="softmax"),
    }
    b, c, h, w = 2, 19, 12, 16
    labels = torch.zeros(b, h, w, dtype=torch.long)
    state = torch.zeros(b, h, w, dtype=torch.uint8)
    for name, weighting in modes.items():
        flags, params = encode(weighting, 2, 5, True)
        st = state if weighting.regions else torch.empty(0, dtype=torch.uint8)
        dtypes = (torch.float32, torch.float16, torch.bfloat16) if name in ("ce", "segpgd", "regions") else (
            torch.float32,)
        for dtype in dtypes:
            for channels_last in (False, True) if name in ("ce", "segpgd") else (False,):
                z = torch.zeros(b, c, h, w, dtype=dtype)
                if channels_last:
                    z = z.contiguous(memory_format=torch.channels_last)
                for per_pixel in (False, True):
                    yield lambda: wce.weighted_ce_forward(z, labels, st, params, flags, 255, per_pixel)
                    scale = torch.ones(b, h, w) if per_pixel else torch.tensor(0.5)
                    yield lambda: wce.weighted_ce_backward(scale, z, labels, st, params, flags, 255)
                if name == "ce":  # SEA's per-pixel CE with the class prediction from the same pass
                    prediction = torch.zeros(b, h, w, dtype=torch.long)
                    yield lambda: wce.weighted_ce_forward(z, labels, st, params, flags, 255, True,
                                                          prediction=prediction)
        # low-resolution logits upsampled inside the loss (x4, odd sizes), both align_corners conventions
        for align_corners in (False, True):
            if name not in ("ce", "segpgd", "regions", "entropy", "cospgd") and align_corners:
                continue
            for dtype in (torch.float32, torch.bfloat16) if name == "ce" else (torch.float32,):
                z = torch.zeros(b, c, 5, 7, dtype=dtype)
                ylab = torch.zeros(b, 20, 27, dtype=torch.long)
                yst = torch.zeros(b, 20, 27, dtype=torch.uint8) if weighting.regions else st
                for per_pixel in (False, True):
                    yield lambda: up.upsample_weighted_ce_forward(z, ylab, yst, params, flags, 255, align_corners,
                                                                  per_pixel)
                    scale = torch.ones(b, 20, 27) if per_pixel else torch.tensor(0.5)
                    yield lambda: up.upsample_weighted_ce_backward(scale, z, ylab, yst, params, flags, 255,
                                                                   align_corners)
    # RP-PGD prototypes: masked per-class feature sums and their gather backward
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        feats = torch.zeros(2, 32, 9, 11, dtype=dtype)
        lab = torch.zeros(2, 9, 11, dtype=torch.long)
        mask = torch.ones(2, 9, 11, dtype=torch.bool)
        for k in (19, 150):  # VOC-like and ADE20K's class counts
            yield lambda k=k: mcs.masked_class_sums(feats, lab, mask, k)
            yield lambda k=k: mcs.masked_class_sums_backward(torch.zeros(2, k, 32), feats, lab, mask)


def resource_report(results: list[dict], summary: dict) -> str:
    """Markdown: per kernel the most registers, stack and spills over its specialisations, then the
    specialisations that spill."""
    lines = [f"# Triton kernels compiled for {summary['arch']} (Triton {summary['triton']}): registers and spills",
             "", f"{summary['launches']} launches, {summary['failed']} failed; per thread, from `ptxas -v` with "
             "Triton's options (255 registers is the hardware maximum; spills go to local memory).", "",
             "| kernel | specialisations | registers (min-max) | max stack B | max spill stores B | "
             "max spill loads B | spilling specialisations |", "|---|---|---|---|---|---|---|"]
    ok = [r for r in results if r.get("registers") is not None]
    for name in sorted({r["kernel"] for r in ok}):
        rs = [r for r in ok if r["kernel"] == name]
        regs = [r["registers"] for r in rs]
        spilling = sum(1 for r in rs if r["spill_store_bytes"] or r["spill_load_bytes"])
        lines.append(f"| {name} | {len(rs)} | {min(regs)}-{max(regs)} | {max(r['stack_bytes'] for r in rs)} | "
                     f"{max(r['spill_store_bytes'] for r in rs)} | {max(r['spill_load_bytes'] for r in rs)} | "
                     f"{spilling} |")
    spills = sorted((r for r in ok if r["spill_store_bytes"] or r["spill_load_bytes"]),
                    key=lambda r: -r["spill_store_bytes"])
    if spills:
        lines += ["", "Specialisations that spill (largest first):", "",
                  "| kernel | registers | spill stores B | spill loads B | specialisation |", "|---|---|---|---|---|"]
        lines += [f"| {r['kernel']} | {r['registers']} | {r['spill_store_bytes']} | {r['spill_load_bytes']} | "
                  f"`{r['spec']}` |" for r in spills[:40]]
    return "\n".join(lines) + "\n"


def spilling(results: list[dict]) -> list[dict]:
    return [r for r in results if r.get("spill_store_bytes") or r.get("spill_load_bytes")]


def summarise(results: list[dict], arch: int, seconds: float) -> dict:
    return {"arch": f"sm_{arch}", "triton": triton.__version__, "launches": len(results),
            "failed": sum(1 for r in results if not r["ok"]), "spilling": len(spilling(results)),
            "kernels": sorted({r["kernel"] for r in results}), "seconds": round(seconds, 1)}


def write_outputs(args, results: list[dict], seconds: float) -> dict:
    summary = summarise(results, args.arch, seconds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "results": results}, f, indent=1)
    if args.resources:
        tmp = args.resources + ".tmp"
        with open(tmp, "w") as f:
            f.write(resource_report(results, summary))
        os.replace(tmp, args.resources)
    return summary


def read_rows(path: str) -> list[dict]:
    rows = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):  # a line cut by a kill is not a row
                    rows.append(json.loads(line))
    except FileNotFoundError:
        pass
    return rows


def run_workers(args) -> tuple[list[dict], list[int]]:
    """``--workers N``: N processes, each compiling every N-th launch; their rows merged every 3 s."""
    with tempfile.TemporaryDirectory() as d:
        paths = [os.path.join(d, f"shard{i}.jsonl") for i in range(args.workers)]
        common = ["--arch", str(args.arch), "--only", args.only] + (["--with-resources"] if args.resources else [])
        procs = [subprocess.Popen([sys.executable, __file__, *common, "--shard", f"{i}/{args.workers}",
                                   "--rows", paths[i]]) for i in range(args.workers)]
        t0 = time.perf_counter()
        while any(p.poll() is None for p in procs):
            time.sleep(3)
            write_outputs(args, [r for p in paths for r in read_rows(p)], time.perf_counter() - t0)
        return [r for p in paths for r in read_rows(p)], [p.returncode for p in procs]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability x 10 (90: H100/H200)")
    ap.add_argument("--json", help="write every launch's result here")
    ap.add_argument("--resources", help="also write registers / stack / spills per kernel (Markdown) here")
    ap.add_argument("--with-resources", action="store_true", help=argparse.SUPPRESS)  # a worker of --resources
    ap.add_argument("--workers", type=int, default=1, help="compile in this many processes")
    ap.add_argument("--shard", default="0/1", help="I/N: compile only launches I, I+N, I+2N, ...")
    ap.add_argument("--rows", help="append each launch's row to this JSON-lines file as it is compiled")
    ap.add_argument("--only", default="", help="compile only the kernels whose name contains this")
    ap.add_argument("--fail-on-spill", action="store_true", help="exit 1 when a specialisation spills")
    args = ap.parse_args(argv)
    if (args.resources or args.with_resources) and get_ptxas is None:
        raise SystemExit("--resources needs Triton's NVIDIA backend (triton.backends.nvidia)")
    t0 = time.perf_counter()
    if args.workers > 1:
        results, codes = run_workers(args)
        crashed = any(c != 0 for c in codes) and not any(not r["ok"] for r in results)
    else:
        shard, n_shards = (int(v) for v in args.shard.split("/"))
        RESOURCES.update(enabled=bool(args.resources or args.with_resources), arch=args.arch, only=args.only)
        triton_driver.set_active(CompileOnlyDriver(args.arch))
        JITFunction.__getitem__ = _compiling_getitem
        if args.rows:
            ROWS_FILE["f"] = open(args.rows, "a")
        for k, case in enumerate(_cases()):
            if k % n_shards == shard:
                case()
        results, crashed = RESULTS, False
    summary = write_outputs(args, results, time.perf_counter() - t0)
    failed = [r for r in results if not r["ok"]]
    for r in failed:
        print(f"FAILED {r['kernel']}({r['spec']}):\n  {r['error']}", file=sys.stderr)
    spills = spilling(results) if args.fail_on_spill else []
    for r in spills:
        print(f"SPILLS {r['kernel']} ({r['registers']} registers, {r['spill_store_bytes']} B stored): "
              f"{r['spec']}", file=sys.stderr)
    print(json.dumps(summary))
    return 1 if failed or spills or crashed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
