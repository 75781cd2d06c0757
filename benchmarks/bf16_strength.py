"""Strength of the attacks under bf16 autocast against fp32, on the GPU: mIoU (%) of both shipped models
after PGD and SegPGD (20 steps, eps 8/255, seed 0) on 48 built-in test images, in fp32 and with
``amp="bf16"``; the gap must stay within 1 mIoU (issue 14's "equal strength"). ``make gpu-check`` runs it;
the speed side of the bf16 target comes from the attack benchmark (test_attack_e2e_gpu.py).

    python benchmarks/bf16_strength.py [--device cuda] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from fastsegadv import attacks as A
from fastsegadv.data import IGNORE_INDEX, NUM_CLASSES, make_digit_scenes
from fastsegadv.metrics import dataset_miou
from fastsegadv.models import SHIPPED, load_pretrained


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    x, y = make_digit_scenes("test", num_images=args.images, seed=0)
    x, y = x.to(device), y.to(device)
    rows = []
    for name in SHIPPED:
        model = load_pretrained(name).to(device)
        for attack in ("pgd", "segpgd"):
            row = {"model": name, "attack": f"{attack}@20"}
            for precision, amp in (("fp32", None), ("bf16", "bf16")):
                t = time.perf_counter()
                adv = getattr(A, attack)(model, x, y, eps=8 / 255, steps=20, seed=0, amp=amp)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                row[f"seconds_{precision}"] = round(time.perf_counter() - t, 3)
                row[f"miou_{precision}"] = round(100 * dataset_miou(model, adv, y, num_classes=NUM_CLASSES,
                                                                    ignore_index=IGNORE_INDEX), 2)
            row["gap"] = round(abs(row["miou_bf16"] - row["miou_fp32"]), 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "rows": rows,
              "within_1_miou": all(r["gap"] <= 1.0 for r in rows)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if result["within_1_miou"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
