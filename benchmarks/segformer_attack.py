"""Attacks on a real third-party model class: Hugging Face ``SegformerForSemanticSegmentation`` (MiT-b0
layout, randomly initialised: no download), logits at 1/4 resolution upsampled inside the fused loss.

Per attack: strength (pixel accuracy and mIoU, clean vs attacked, on labels = the clean prediction so the
clean accuracy is 100 %) and time per iteration as a multiple of a bare forward + input-gradient backward
of the same model (CE on the upsampled logits), measured interleaved: each round times ``--bare`` bare
passes, one attack of ``--steps`` iterations, ``--bare`` bare passes again, and divides.

    python benchmarks/segformer_attack.py [--rounds 3] [--size 256] [--batch 2] [--out benchmarks/results/segformer]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from run_benchmarks import device_name  # this folder is on sys.path when the script runs
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from fastsegadv import attacks as A
from fastsegadv.metrics import ConfusionMatrix
from fastsegadv.outputs import class_prediction, logits_at

NUM_CLASSES = 19
EPS = 8 / 255


def segformer_b0(seed: int = 0) -> torch.nn.Module:
    """MiT-b0 widths and depths (3.7 M parameters), random weights with a wider init so the random model's
    prediction is not constant."""
    torch.manual_seed(seed)
    cfg = SegformerConfig(num_labels=NUM_CLASSES, hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2],
                          num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=256, initializer_range=0.2)
    return SegformerForSemanticSegmentation(cfg).eval()


def bare_pass(model, x, y):
    """Forward + input-gradient backward of plain CE on the upsampled logits: the floor of an attack step."""
    xr = x.detach().requires_grad_(True)
    z = logits_at(model(xr), y.shape[-2:])
    (g,) = torch.autograd.grad(F.cross_entropy(z, y, ignore_index=255), xr)
    return g


ATTACKS = {
    "pgd": lambda m, x, y, s: A.pgd(m, x, y, eps=EPS, steps=s, seed=0),
    "segpgd": lambda m, x, y, s: A.segpgd(m, x, y, eps=EPS, steps=s, seed=0),
    "cospgd": lambda m, x, y, s: A.cospgd(m, x, y, eps=EPS, steps=s, seed=0),
    "rp_pgd": lambda m, x, y, s: A.rp_pgd(m, x, y, eps=EPS, steps=s, seed=0),
    "uncertainty_pgd (L0)": lambda m, x, y, s: A.uncertainty_pgd(m, x, y, eps=EPS, steps=s, measure=None,
                                                                 zero_out=0.75, seed=0),
    "ifgsm (paper schedule)": lambda m, x, y, s: A.ifgsm(m, x, y, eps=EPS, steps=s),
}


def strength(model, x, adv, y) -> dict:
    with torch.no_grad():
        out = {}
        for name, inp in (("clean", x), ("adv", adv)):
            pred = class_prediction(logits_at(model(inp), y.shape[-2:]))
            cm = ConfusionMatrix(NUM_CLASSES).update(pred, y)
            out[f"{name}_acc"] = 100 * float((pred == y).float().mean())
            out[f"{name}_miou"] = 100 * cm.miou()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--bare", type=int, default=3, help="bare passes before and after each attack")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "segformer")
    args = ap.parse_args()
    model = segformer_b0()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    with torch.no_grad():
        y = class_prediction(logits_at(model(x), (args.size, args.size)))  # clean accuracy 100 %
    rows = []
    for name, attack in ATTACKS.items():
        attack(model, x, y, 2)  # warm-up
        ratios, per_iter = [], []
        adv = None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for _ in range(args.bare):
                bare_pass(model, x, y)
            t1 = time.perf_counter()
            adv = attack(model, x, y, args.steps)
            t2 = time.perf_counter()
            for _ in range(args.bare):
                bare_pass(model, x, y)
            t3 = time.perf_counter()
            bare = ((t1 - t0) + (t3 - t2)) / (2 * args.bare)
            per_iter.append((t2 - t1) / args.steps)
            ratios.append(per_iter[-1] / bare)
        row = {"attack": name, "steps": args.steps, "ms_per_iteration": 1e3 * statistics.median(per_iter),
               "x_bare": statistics.median(ratios), "x_bare_min": min(ratios), "x_bare_max": max(ratios),
               **strength(model, x, adv, y)}
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    meta = {"device": device_name(), "torch": torch.__version__, "model": "SegformerForSemanticSegmentation MiT-b0, "
            "random init", "input": [args.batch, 3, args.size, args.size], "rounds": args.rounds, "eps": "8/255"}
    out = args.out / "".join(ch if ch.isalnum() else "_" for ch in meta["device"]).strip("_")[:60]
    out.mkdir(parents=True, exist_ok=True)
    (out / "segformer_attack.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Attacks on SegFormer (MiT-b0, random init, logits at 1/4), {meta}", "",
             "| attack | steps | ms / iteration | x bare fwd+input-bwd (median, min-max) | pixel acc clean -> adv (%) "
             "| mIoU clean -> adv (%) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['attack']} | {r['steps']} | {r['ms_per_iteration']:.1f} | {r['x_bare']:.2f} "
                     f"({r['x_bare_min']:.2f}-{r['x_bare_max']:.2f}) | {r['clean_acc']:.1f} -> {r['adv_acc']:.1f} | "
                     f"{r['clean_miou']:.1f} -> {r['adv_miou']:.1f} |")
    (out / "segformer_attack.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
