"""Interleaved measurement of the attack step against its floor on the shipped model (CPU).

The machine this project runs on drifts by ±20 % within minutes, more than the effect measured here, so
the pytest-benchmark suite's side-by-side numbers (test_attack_e2e.py) cannot settle "≤ 1.15× the bare
forward+input-backward" on their own. This script pairs the measurements instead: each round times 10
bare forward+input-backward passes, then one 10-step attack, then 10 bare passes again, and takes the
ratio of the attack to the mean of the two bare blocks around it; it reports the median ratio over the
rounds (and its spread), per attack, and writes JSON + Markdown.

    python benchmarks/attack_overhead.py [--rounds 7] [--out benchmarks/results/attack_e2e]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained
from run_benchmarks import device_name  # this folder is on sys.path when the script runs

ATTACKS = {"pgd": A.pgd, "segpgd": A.segpgd, "cospgd": A.cospgd, "rp_pgd": A.rp_pgd,
           "uncertainty_pgd": lambda *a, **k: A.uncertainty_pgd(*a, measure="entropy", **k)}
STEPS = 10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attack_e2e",
                    help="results/attack_e2e; a folder named after the device is made inside")
    args = ap.parse_args()
    dev = device_name()
    out = args.out / "".join(ch if ch.isalnum() else "_" for ch in dev).strip("_")[:60]
    model = load_pretrained("standard")
    x, y = make_digit_scenes("test", num_images=16, seed=0)
    with torch.no_grad():
        upstream = torch.randn_like(model(x))

    def bare_block() -> float:
        flags = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        t = time.perf_counter()
        for _ in range(STEPS):
            xi = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xi), xi, grad_outputs=upstream)
        dt = time.perf_counter() - t
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        return dt

    rows = []
    for name, fn in ATTACKS.items():
        fn(model, x, y, steps=2, seed=0)  # warm-up
        ratios, per_iter = [], []
        for r in range(args.rounds):
            before = bare_block()
            t = time.perf_counter()
            fn(model, x, y, steps=STEPS, seed=r)
            attack = time.perf_counter() - t
            after = bare_block()
            ratios.append(attack / ((before + after) / 2))
            per_iter.append(attack / STEPS)
        rows.append({"attack": name, "median_ratio": statistics.median(ratios), "min_ratio": min(ratios),
                     "max_ratio": max(ratios), "median_per_iter_ms": 1e3 * statistics.median(per_iter)})
        print(rows[-1], flush=True)
    meta = {"device": dev, "torch": torch.__version__, "rounds": args.rounds,
            "shape": list(x.shape), "steps": STEPS}
    out.mkdir(parents=True, exist_ok=True)
    (out / "attack_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Attack iteration / bare forward+input-backward, interleaved ({meta})", "",
             "| attack | median ratio | min | max | median ms / iteration |", "|---|---|---|---|---|"]
    lines += [f"| {r['attack']} | {r['median_ratio']:.3f} | {r['min_ratio']:.3f} | {r['max_ratio']:.3f} | "
              f"{r['median_per_iter_ms']:.1f} |" for r in rows]
    (out / "attack_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
