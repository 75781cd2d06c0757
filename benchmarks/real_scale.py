"""Attacks at the users' scale (issue 21): per-iteration time and peak memory of fastsegadv's attacks and of
the peers' loops, against the bare forward + input backward of the same model, in one run.

Shapes and models (random weights: timing and memory only, nothing downloads):

- ``segformer_b0_1024x2048``: Hugging Face SegFormer, MiT-b0 widths (3.7 M parameters), 19 classes,
  one Cityscapes-shaped image 1x3x1024x2048, logits at 1/4;
- ``segformer_b0_slide``: the same model behind ``SlidingWindow(crop=512x1024, stride=341x683)`` (mmseg's
  Cityscapes test setting: 9 windows);
- ``upernet_convnext_t_512``: Hugging Face UperNet over ConvNeXt-T (depths 3-3-9-3, widths 96-768,
  decoder 512), 150 classes, an ADE20K-shaped 2x3x512x512 batch, logits at full resolution.

Rows per shape: ``bare`` (forward + input gradient of the mean CE on the label-resolution logits: the floor
of an attack step); fastsegadv's PGD, SegPGD, RP-PGD (not behind the sliding window: no layer holds the
whole image's features) and SEA's APGD (mask-CE-bal), each with the fused upsample + loss (the model's
low-resolution logits go to the loss as they are) and without it (``upsampled``: the model wrapped to
return label-resolution logits, the fused loss on those); the ``cospgd`` package's SegPGD loop,
torchattacks' PGD and the SEA-style APGD-JS loop (benchmarks/peer_loops.py) on the same model and input.

Time: each attack runs ``--steps`` iterations, ``--rounds`` times after a first call that measures the peak
memory (the resident high-water mark, benchmarks/peak_memory.py) and warms up; the row is the fastest round
divided by the steps (on this shared machine the minimum is the stable statistic), ``x_bare`` that over the
fastest bare pass. Fixed costs of an attack (RP-PGD's clean forward, SEA's scoring of each radius stage's
start) are spread over its iterations, so few steps overstate them.

    python benchmarks/real_scale.py [--shapes NAME ...] [--steps 2] [--rounds 2] [--out DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from peak_memory import peak_bytes  # this folder is on sys.path when the script runs
from peer_loops import cospgd_package_loop, sea_apgd_js
from run_benchmarks import commit_id, device_name

from fastsegadv import attacks as A
from fastsegadv.models import SlidingWindow
from fastsegadv.outputs import logits_at

EPS, ALPHA = 8 / 255, 0.01
HERE = Path(__file__).resolve().parent


def segformer_b0(classes: int = 19) -> nn.Module:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    cfg = SegformerConfig(num_labels=classes, hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2],
                          num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=256, initializer_range=0.2)
    return SegformerForSemanticSegmentation(cfg).eval()


def upernet_convnext_t(classes: int = 150) -> nn.Module:
    from transformers import ConvNextConfig, UperNetConfig, UperNetForSemanticSegmentation

    torch.manual_seed(0)
    backbone = ConvNextConfig(hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = UperNetConfig(backbone_config=backbone, hidden_size=512, num_labels=classes, use_auxiliary_head=False,
                        initializer_range=0.2)
    return UperNetForSemanticSegmentation(cfg).eval()


class Upsampled(nn.Module):
    """The model, its logits resized to the labels' resolution (the path without the fused upsample)."""

    def __init__(self, model: nn.Module, size):
        super().__init__()
        self.model, self.size = model, tuple(size)

    def forward(self, x):
        return logits_at(self.model(x), self.size)


def shapes(divisor: int = 1) -> dict:
    """name -> (model factory, input shape, classes); ``divisor`` shrinks every side (a smoke test)."""
    d = divisor
    return {
        "segformer_b0_1024x2048": (lambda: segformer_b0(), (1, 3, 1024 // d, 2048 // d), 19),
        "segformer_b0_slide": (lambda: SlidingWindow(segformer_b0(), crop=(512 // d, 1024 // d),
                                                     stride=(341 // d, 683 // d), chunk=3),
                               (1, 3, 1024 // d, 2048 // d), 19),
        "upernet_convnext_t_512": (lambda: upernet_convnext_t(), (2, 3, 512 // d, 512 // d), 150),
    }


def bare_pass(model, x, y):
    xr = x.detach().requires_grad_(True)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        z = logits_at(model(xr), y.shape[-2:])
        (g,) = torch.autograd.grad(F.cross_entropy(z, y, ignore_index=255), xr)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return g


def case_inputs(name: str, divisor: int = 1) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """``(model, images, labels)`` of a shape (seeded; the top 16 label rows ignored)."""
    build, shape, classes = shapes(divisor)[name]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(shape, generator=g)
    y = torch.randint(0, classes, (shape[0], *shape[2:]), generator=g)
    y[:, :16] = 255
    return build(), x, y


def fastest(fn, rounds: int) -> float:
    """The fastest of ``rounds`` timed calls of ``fn`` (seconds): the stable statistic on a shared machine."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def rows_for(name: str, steps: int, rounds: int, peers: bool, divisor: int = 1) -> list[dict]:
    _, shape, classes = shapes(divisor)[name]
    model, x, y = case_inputs(name, divisor)
    up = Upsampled(model, shape[2:])
    sliding = isinstance(model, SlidingWindow)
    runs = {"bare": (lambda: bare_pass(model, x, y), 1)}
    ours = {"pgd": A.pgd, "segpgd": A.segpgd, "sea_apgd": A.sea_apgd}
    if not sliding:
        ours["rp_pgd"] = A.rp_pgd
    for attack, fn in ours.items():
        kw = {"steps": max(steps, 3)} if attack == "sea_apgd" else {"steps": steps, "alpha": ALPHA}
        n = kw["steps"]
        runs[f"{attack} fused upsample"] = (lambda fn=fn, kw=kw: fn(model, x, y, eps=EPS, seed=0, **kw), n)
        runs[f"{attack} upsampled"] = (lambda fn=fn, kw=kw: fn(up, x, y, eps=EPS, seed=0, **kw), n)
    if peers:
        plain = up  # the peers take a model returning label-resolution logits
        if importlib.util.find_spec("cospgd") is not None:  # the peers install from the package index
            runs["segpgd: cospgd package"] = (lambda: cospgd_package_loop(plain, x, y, scale="segpgd", eps=EPS,
                                                                          alpha=ALPHA, steps=steps), steps)
        if importlib.util.find_spec("torchattacks") is not None:
            import torchattacks

            atk = torchattacks.PGD(plain, eps=EPS, alpha=ALPHA, steps=steps, random_start=True)
            runs["pgd: torchattacks"] = (lambda: atk(x, torch.where(y == 255, -100, y)), steps)
        runs["apgd_js: SEA-style loop"] = (lambda: sea_apgd_js(plain, x, y, eps=EPS, steps=steps), steps)
    rows = []
    for label, (fn, n) in runs.items():
        peak = peak_bytes(fn, x.device)  # also the warm-up (first-touch allocations)
        best = fastest(fn, rounds)
        model.zero_grad(set_to_none=True)
        rows.append({"shape": name, "input": list(shape), "classes": classes, "run": label, "steps": n,
                     "s_per_iteration": best / n, "peak_MiB": None if peak is None else peak / 2**20})
        print(rows[-1], flush=True)
    # the bare pass again at the end: the floor is the faster of the two (a disturbance of the machine at
    # either end then cannot inflate or deflate every ratio)
    fn = runs["bare"][0]
    t = time.perf_counter()
    fn()
    rows[0]["s_per_iteration"] = min(rows[0]["s_per_iteration"], time.perf_counter() - t)
    bare = rows[0]["s_per_iteration"]
    for r in rows:
        r["x_bare"] = r["s_per_iteration"] / bare
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Attacks at the users' scale: {meta['device']}, torch {meta['torch']}, commit {meta['commit']}", "",
             f"{meta['steps']} iterations per run, fastest of {meta['rounds']} rounds (SEA's APGD: 3 iterations, "
             "one per radius stage); random weights. x bare = per iteration / the bare forward + input backward.",
             ""]
    for name in dict.fromkeys(r["shape"] for r in rows):
        part = [r for r in rows if r["shape"] == name]
        lines += [f"## {name}: input {part[0]['input']}, {part[0]['classes']} classes", "",
                  "| run | s / iteration | x bare | peak MiB |", "|---|---|---|---|"]
        for r in part:
            peak = "-" if r["peak_MiB"] is None else f"{r['peak_MiB']:.0f}"
            lines.append(f"| {r['run']} | {r['s_per_iteration']:.2f} | {r['x_bare']:.2f} | {peak} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=list(shapes()), choices=list(shapes()))
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--divisor", type=int, default=1, help="divide every side by this (a smoke test)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "real_scale")
    args = ap.parse_args()
    rows = []
    for name in args.shapes:
        rows += rows_for(name, args.steps, args.rounds, not args.no_peers, args.divisor)
    meta = {"device": device_name(), "torch": torch.__version__, "commit": commit_id(), "steps": args.steps,
            "rounds": args.rounds, "divisor": args.divisor}
    out = args.out / "".join(ch if ch.isalnum() else "_" for ch in meta["device"]).strip("_")[:60]
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_scale.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "real_scale.md").write_text(markdown(rows, meta))
    plot(rows, out / "real_scale.png")
    print(markdown(rows, meta))
    print(f"wrote {out}")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["shape"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 5), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = [r for r in rows if r["shape"] == name]
        ax.barh([r["run"] for r in part], [r["x_bare"] for r in part],
                color=["grey" if r["run"] == "bare" else "tab:blue" if "fused" in r["run"] or "upsampled" in r["run"]
                       else "tab:orange" for r in part])
        ax.axvline(1.10, color="red", ls="--", lw=1, label="1.10x bare")
        ax.set_title(name)
        ax.set_xlabel("time per iteration / bare forward + input backward")
        ax.invert_yaxis()
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
