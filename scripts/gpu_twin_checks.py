"""The checks of ``make gpu-twin`` (scripts/gpu_twin.sh) that are easier in Python than in bash.

    python scripts/gpu_twin_checks.py cuda-keys --count-file F
    python scripts/gpu_twin_checks.py count-launches TRITON.json --count-file F
    python scripts/gpu_twin_checks.py count-pytest OUTPUT.txt --count-file F
    python scripts/gpu_twin_checks.py check-stand-in OUT [--expect-killed STAGE] --count-file F
    python scripts/gpu_twin_checks.py summary STEPS.jsonl SUMMARY.json [--versions F] --seconds S

Each check prints what it found, writes the step's count (a number, or a JSON object) to ``--count-file``
and exits non-zero when the step fails.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from gpu_check import pytest_counts

ROOT = Path(__file__).resolve().parents[1]


def cuda_ops() -> list[str]:
    """Every op a ``csrc/cuda/*.cu`` file registers under ``TORCH_LIBRARY_IMPL(fastsegadv, CUDA, m)``."""
    names = []
    for cu in sorted((ROOT / "csrc" / "cuda").glob("*.cu")):
        text = cu.read_text()
        for block in re.findall(r"TORCH_LIBRARY_IMPL\(fastsegadv,\s*CUDA,\s*m\)\s*\{(.*?)\}", text, re.S):
            names += re.findall(r'm\.impl\("(\w+)"', block)
    return names


def cuda_keys(args) -> int:
    import torch

    import fastsegadv._C  # noqa: F401  (the extension built for this torch: registers the ops)

    names = cuda_ops()
    missing = [n for n in names if not torch._C._dispatch_has_kernel_for_dispatch_key(f"fastsegadv::{n}", "CUDA")]
    for n in names:
        print(f"fastsegadv::{n}: {'MISSING' if n in missing else 'registered'} for CUDA")
    write_count(args, len(names) - len(missing))
    return 1 if missing or not names else 0


def count_launches(args) -> int:
    summary = json.loads(Path(args.file).read_text())["summary"]
    print(json.dumps(summary))
    write_count(args, {k: summary[k] for k in ("launches", "failed", "spilling")})
    return 0 if summary["launches"] and not summary["failed"] and not summary["spilling"] else 1


def count_pytest(args) -> int:
    counts = pytest_counts(Path(args.file).read_text())
    print(counts)
    write_count(args, counts)
    return 0 if counts.get("passed") and not counts.get("failed") and not counts.get("error") else 1


def check_stand_in(args) -> int:
    """The stand-in run of gpu_check.py: every stage started and ended (passed, failed or killed) inside
    its limit, the expected one was killed, and the summary in OUT lists them all."""
    out = Path(args.out)
    summary = json.loads((out / "summary.json").read_text())
    problems = []
    for name, row in summary["stages"].items():
        print(f"{name}: {row['status']} in {row['seconds']} s (limit {row['limit_s']} s) {row.get('tests', '')}")
        if row["status"] in ("running", "not started (budget spent)"):
            problems.append(f"{name} did not end: {row['status']}")
        if row["status"].startswith("failed"):  # a stand-in stage may skip its GPU work, never crash
            problems.append(f"{name} {row['status']}: see {out / 'gpu_check.log'}")
        if row["seconds"] > row["limit_s"] + 10:  # the SIGTERM grace period and the copy of its files
            problems.append(f"{name} ran {row['seconds']} s against a limit of {row['limit_s']} s")
    if args.expect_killed and not summary["stages"].get(args.expect_killed, {}).get("status", "").startswith("killed"):
        problems.append(f"{args.expect_killed} was expected to be killed at its limit")
    if summary["seconds"] > summary["budget_s"] + 15:
        problems.append(f"the call took {summary['seconds']} s against a budget of {summary['budget_s']} s")
    if not Path(summary["out"]).is_absolute():
        problems.append("OUT is not absolute")
    for p in problems:
        print("PROBLEM:", p)
    write_count(args, {"stages": len(summary["stages"]),
                       "killed": sum(r["status"].startswith("killed") for r in summary["stages"].values()),
                       "files": sorted(p.name for p in out.iterdir())})
    return 1 if problems or not summary["stages"] else 0


def write_summary(args) -> int:
    steps = [json.loads(line) for line in Path(args.steps).read_text().splitlines() if line.strip()]
    versions = Path(args.versions).read_text().strip() if args.versions and Path(args.versions).exists() else None
    summary = {"passed": bool(steps) and all(s["status"] == "passed" for s in steps), "versions": versions,
               "seconds": args.seconds, "steps": steps}
    Path(args.out).write_text(json.dumps(summary, indent=1))
    for s in steps:
        print(f"{s['step']:>15}: {s['status']} ({s['seconds']} s) {s['count'] if s['count'] is not None else ''}")
    print(f"gpu-twin: {'passed' if summary['passed'] else 'FAILED'} in {args.seconds} s -> {args.out}")
    return 0 if summary["passed"] else 1


def write_count(args, count) -> None:
    if args.count_file:
        Path(args.count_file).write_text(json.dumps(count))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("cuda-keys")
    p.set_defaults(run=cuda_keys)
    p = sub.add_parser("count-launches")
    p.add_argument("file")
    p.set_defaults(run=count_launches)
    p = sub.add_parser("count-pytest")
    p.add_argument("file")
    p.set_defaults(run=count_pytest)
    p = sub.add_parser("check-stand-in")
    p.add_argument("out")
    p.add_argument("--expect-killed", default=None)
    p.set_defaults(run=check_stand_in)
    for p in sub.choices.values():
        p.add_argument("--count-file", default=None)
    p = sub.add_parser("summary")
    p.add_argument("steps")
    p.add_argument("out")
    p.add_argument("--versions", default=None)
    p.add_argument("--seconds", type=int, required=True)
    p.set_defaults(run=write_summary, count_file=None)
    args = ap.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
