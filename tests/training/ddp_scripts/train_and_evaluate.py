"""Run under ``python`` (one process) or ``torchrun --nproc_per_node N``: a short SegPGD-AT run of a
GroupNorm TinyDeepLab and a sharded evaluation of the shipped model; rank 0 writes the metrics as JSON.

    python train_and_evaluate.py OUT.json [--attack none] [--fail-rank R --fail-step S]
"""
import argparse
import json

import torch

from fastsegadv.datasets import DigitScenes
from fastsegadv.distributed.context import shutdown
from fastsegadv.evaluation import EvalConfig, evaluate_model
from fastsegadv.models import TinyDeepLab, load_pretrained
from fastsegadv.training import TrainConfig, fit, init_distributed

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--fail-rank", type=int, default=-1)
ap.add_argument("--fail-step", type=int, default=-1)
ap.add_argument("--attack", default="segpgd@2", help="inner attack; 'none' trains on clean images")
args = ap.parse_args()
torch.set_num_threads(1)
ctx = init_distributed(timeout_s=60)


def fail(event, state):
    if ctx.rank == args.fail_rank and event == "step_end" and state["global_step"] == args.fail_step:
        raise RuntimeError(f"injected failure on rank {ctx.rank}")


torch.manual_seed(0)
train = DigitScenes("train", num_images=32, size=32, seed=0)
val = DigitScenes("test", num_images=12, size=32, seed=0)
model = TinyDeepLab(11, width=8, norm="group")
cfg = TrainConfig(attack=args.attack, epochs=2, batch_size=8, lr=3e-3, progress=False)
history = fit(model, train, cfg, num_classes=11, val_set=val, ctx=ctx, callbacks=[fail])
result = evaluate_model(load_pretrained("standard"), DigitScenes("test", num_images=10, seed=1),
                        EvalConfig(attacks=["pgd@2", "rp_pgd@2"], batch_size=4, progress=False), num_classes=11,
                        ctx=ctx)
if ctx.is_main:
    with open(args.out, "w") as f:
        json.dump(
            {
                "history": history,
                "params": {k: v.double().flatten().tolist() for k, v in model.state_dict().items()},
                "table": result.row(),
                "details": result.details(),
                "curves": result.curves(),
                "per_image": result.per_image,
                "world_size": ctx.world_size,
            },
            f,
        )
shutdown(ctx)
