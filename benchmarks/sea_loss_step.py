"""SEA's per-step loss work at the users' logit sizes: the followed loss, the tracked CE and the class
prediction of one APGD step, forward and input backward, on ``[B, 19, H, W]`` logits (no model: the loss work
alone, which issue 21's profile found to be SEA's step overhead).

- ``fused``: what SEA runs (:func:`fastsegadv.attacks.sea.sea_losses_and_prediction`): the per-pixel CE and the
  argmax from one fused pass, the class weights as the backward's per-pixel upstream gradient;
- ``two_pass``: the same losses with the prediction read from the logits again (``logits.max(1)``), as SEA
  ran before the fused op returned its prediction: once for the masked losses' mask and once for the step's
  accuracy bookkeeping (JS: the latter only).

Both are timed interleaved in one process (fastest of ``--rounds``); their results are checked equal first.

    python benchmarks/sea_loss_step.py [--rounds 5] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from run_benchmarks import commit_id, device_name  # this folder is on sys.path when run

from fastsegadv.attacks.margins import js_from_ce, per_image_mean, pixel_ce
from fastsegadv.attacks.sea import balanced_class_weights, iou_class_weights, sea_losses_and_prediction
from fastsegadv.outputs import class_prediction

HERE = Path(__file__).resolve().parent
SHAPES = {"2x19x512x1024": (2, 19, 512, 1024), "1x19x1024x2048": (1, 19, 1024, 2048)}
LOSSES = ("mask_ce_bal", "mask_ce_iou", "js_avg")


def two_pass(logits, labels, loss, ignore_index=255):
    """The same (followed, tracked, prediction) with the argmax read from the logits a second time."""
    valid = labels != ignore_index
    ce = pixel_ce(logits, labels, ignore_index)
    if loss == "js_avg":
        pix = js_from_ce(ce)
    else:
        prediction = class_prediction(logits.detach())
        correct = (prediction == labels) & valid
        w = (iou_class_weights(prediction, labels, logits.shape[1], ignore_index) if loss == "mask_ce_iou"
             else balanced_class_weights(labels, logits.shape[1], ignore_index)).to(ce.dtype)
        safe = torch.where(valid, labels, torch.zeros_like(labels))
        pix = ce * correct * w.gather(1, safe.flatten(1)).view_as(ce)
    # the step's bookkeeping read the prediction from the logits once more (apgd_stage's evaluate)
    return per_image_mean(pix, valid), per_image_mean(ce.detach(), valid), class_prediction(logits.detach())


def fused(logits, labels, loss):
    return sea_losses_and_prediction(logits, labels, loss)


def step(fn, z, y, loss):
    """Forward and backward of one step's loss work; returns (gradient, prediction)."""
    z = z.detach().requires_grad_(True)
    follow, _, prediction = fn(z, y, loss)
    (g,) = torch.autograd.grad(follow.sum(), z)
    return g, prediction


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    rows = []
    for shape_name, shape in SHAPES.items():
        g = torch.Generator().manual_seed(0)
        z = torch.randn(*shape, generator=g) * 3
        y = torch.randint(0, shape[1], (shape[0], shape[2], shape[3]), generator=g)
        y = torch.where(torch.rand(y.shape, generator=g) < 0.6, z.argmax(1), y)  # 60 % correct
        y[:, :8] = 255
        for loss in LOSSES:
            ga, pa = step(fused, z, y, loss)
            gb, pb = step(two_pass, z, y, loss)
            assert torch.equal(pa, pb), "prediction differs"
            torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-9)
            best = {"fused": float("inf"), "two_pass": float("inf")}
            for _ in range(a.rounds):
                for name, fn in (("fused", fused), ("two_pass", two_pass)):
                    t = time.perf_counter()
                    step(fn, z, y, loss)
                    best[name] = min(best[name], time.perf_counter() - t)
            rows.append({"shape": shape_name, "loss": loss, "fused_s": best["fused"], "two_pass_s": best["two_pass"],
                         "speedup": best["two_pass"] / best["fused"]})
            print(rows[-1], flush=True)
    meta = {"device": device_name(), "torch": torch.__version__, "commit": commit_id(), "rounds": a.rounds,
            "threads": torch.get_num_threads()}
    folder = "".join(ch if ch.isalnum() else "_" for ch in meta["device"]).strip("_")[:60]  # as real_scale.py
    out = (a.out or HERE / "results" / "sea_loss_step") / folder
    out.mkdir(parents=True, exist_ok=True)
    (out / "sea_loss_step.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# SEA's per-step loss work: fused prediction vs a second argmax pass ({meta['device']}, torch "
             f"{meta['torch']}, commit {meta['commit']})", "",
             f"Forward + input backward of the loss work of one APGD step on random logits, fastest of {a.rounds} "
             "interleaved rounds; nothing here is a GPU number.", "",
             "| logits | loss | fused s | two-pass s | two-pass / fused |", "|---|---|---|---|---|"]
    lines += [f"| {r['shape']} | {r['loss']} | {r['fused_s']:.3f} | {r['two_pass_s']:.3f} | {r['speedup']:.2f} |"
              for r in rows]
    (out / "sea_loss_step.md").write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
