"""Interleaved measurement of the attack step against its floor on the shipped model (CPU), for
fastsegadv's attacks and the peers' implementations of the same attacks, in one run.

The machine this project runs on drifts by ±20 % within minutes, more than the effect measured here, so
the pytest-benchmark suite's side-by-side numbers (test_attack_e2e.py) cannot settle "≤ 1.15× the bare
forward+input-backward" on their own. This script pairs the measurements instead: each round times 10
bare forward+input-backward passes, then one 10-step attack, then 10 bare passes again, and takes the
ratio of the attack to the mean of the two bare blocks around it; it reports the median ratio over the
rounds (and its spread), per attack and provider, and writes JSON + Markdown. Providers: fastsegadv
(eager), fastsegadv with the step graph-captured (``compile_step=True``; compiled in the warm-up call),
fastsegadv with ``channels_last=True`` (ratio still to the NCHW bare pass: below 1 = a lower floor),
the ``cospgd`` package loop, torchattacks' PGD and SEA-style APGD-JS (peer_loops.py).

    python benchmarks/attack_overhead.py [--rounds 7] [--out benchmarks/results/attack_e2e]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from peer_loops import cospgd_package_loop, sea_apgd_js  # noqa: E402
from run_benchmarks import device_name  # this folder is on sys.path when the script runs

from fastsegadv import attacks as A
from fastsegadv.data import make_digit_scenes
from fastsegadv.models import load_pretrained

STEPS = 10
EPS, ALPHA = 8 / 255, 0.01


def _ours(fn, **extra):
    return lambda model, x, y, seed: fn(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS, seed=seed, **extra)


def _peers() -> list:
    rows = []
    try:
        import cospgd  # noqa: F401

        for name in ("segpgd", "cospgd"):
            rows.append((name, "cospgd package", lambda m, x, y, seed, n=name: cospgd_package_loop(
                m, x, y, scale=n, eps=EPS, alpha=ALPHA, steps=STEPS)))
    except ImportError:
        print("cospgd not installed: its loop is not timed")
    try:
        import torchattacks

        def ta_pgd(m, x, y, seed):
            return torchattacks.PGD(m, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)(
                x, torch.where(y == 255, -100, y)
            )

        rows.append(("pgd", "torchattacks", ta_pgd))
    except ImportError:
        print("torchattacks not installed: its PGD is not timed")
    rows.append(("apgd_js", "SEA-style (paper)", lambda m, x, y, seed: sea_apgd_js(m, x, y, eps=EPS, steps=STEPS)))
    return rows


ATTACKS = [
    ("pgd", "fastsegadv", _ours(A.pgd)),
    ("segpgd", "fastsegadv", _ours(A.segpgd)),
    ("cospgd", "fastsegadv", _ours(A.cospgd)),
    ("rp_pgd", "fastsegadv", _ours(A.rp_pgd)),
    ("rp_pgd", "fastsegadv, clean prediction given", None),  # as the evaluation harness runs it
    ("uncertainty_pgd", "fastsegadv", _ours(A.uncertainty_pgd, measure="entropy")),
    ("apgd_js", "fastsegadv", lambda m, x, y, seed: A.apgd(m, x, y, eps=EPS, steps=STEPS, loss="js", seed=seed)),
    ("pgd", "fastsegadv compile_step", _ours(A.pgd, compile_step=True)),
    ("segpgd", "fastsegadv compile_step", _ours(A.segpgd, compile_step=True)),
    # the floor itself lowered: the model's convolutions in channels_last (the bare pass stays NCHW)
    ("pgd", "fastsegadv channels_last", _ours(A.pgd, channels_last=True)),
    ("segpgd", "fastsegadv channels_last", _ours(A.segpgd, channels_last=True)),
    ("rp_pgd", "fastsegadv channels_last", _ours(A.rp_pgd, channels_last=True)),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "attack_e2e",
        help="results/attack_e2e; a folder named after the device is made inside",
    )
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

    with torch.no_grad():
        clean_prediction = model(x).max(1).indices
    rows = []
    for name, provider, fn in ATTACKS + _peers():
        if fn is None:  # RP-PGD's region state needs the clean prediction; the harness already has it
            fn = _ours(A.rp_pgd, clean_prediction=clean_prediction)
        fn(model, x, y, 0)  # warm-up (and the compilation of a captured step)
        model.zero_grad(set_to_none=True)
        ratios, per_iter = [], []
        for r in range(args.rounds):
            before = bare_block()
            t = time.perf_counter()
            fn(model, x, y, r)
            attack = time.perf_counter() - t
            after = bare_block()
            model.zero_grad(set_to_none=True)  # the cospgd loop leaves weight gradients
            ratios.append(attack / ((before + after) / 2))
            per_iter.append(attack / STEPS)
        rows.append(
            {
                "attack": name,
                "provider": provider,
                "median_ratio": statistics.median(ratios),
                "min_ratio": min(ratios),
                "max_ratio": max(ratios),
                "median_per_iter_ms": 1e3 * statistics.median(per_iter),
            }
        )
        print(rows[-1], flush=True)
    meta = {"device": dev, "torch": torch.__version__, "rounds": args.rounds, "shape": list(x.shape), "steps": STEPS}
    out.mkdir(parents=True, exist_ok=True)
    (out / "attack_overhead.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# Attack iteration / bare forward+input-backward, interleaved ({meta})",
        "",
        "| attack | provider | median ratio | min | max | median ms / iteration |",
        "|---|---|---|---|---|---|",
    ]
    rows.sort(key=lambda r: (r["attack"], r["provider"]))
    lines += [
        f"| {r['attack']} | {r['provider']} | {r['median_ratio']:.3f} | {r['min_ratio']:.3f} | {r['max_ratio']:.3f} | "
        f"{r['median_per_iter_ms']:.1f} |"
        for r in rows
    ]
    (out / "attack_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
