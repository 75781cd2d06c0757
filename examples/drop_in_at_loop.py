"""Swap the attack of an existing adversarial-training loop for fastsegadv's, in three lines.

The loop below is shaped like the public AT codebases (CosPGD's, Croce et al.'s): a model, an optimiser,
a data loader and a hand-written PGD. The three lines marked ``fastsegadv`` replace the attack and the
loss; the model, optimiser and data stay. fastsegadv computes only the input gradient during the attack
(parameters frozen), so nothing of the attack leaks into the optimiser step, and the model's modes and
BatchNorm statistics are as before the attack.

    python examples/drop_in_at_loop.py [--steps 20] [--batch-size 8]
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

import fastsegadv as fsa
from fastsegadv.training import adversarial_batch, adversarial_training_loss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="optimiser steps")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--eps", type=float, default=8.0, help="on the 0-255 scale")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    model = fsa.models.load_pretrained("standard")  # your model
    data = DataLoader(fsa.data.digit_scenes_dataset("train", num_images=args.steps * args.batch_size),
                      batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    eps, alpha = args.eps / 255, 2.5 * args.eps / 255 / 3

    model.train()
    for step, (images, labels) in enumerate(data):
        # --- fastsegadv: the attack (PGD, 3 steps, on half of the batch) and the loss -------------------
        x_at, y_at, n_clean = adversarial_batch(model, images, labels, attack="pgd@3", eps=eps, alpha=alpha,
                                                seed=step, order="adversarial_first")
        out = model(x_at)
        loss = adversarial_training_loss(out, y_at, n_clean=n_clean, reduction="joint", order="adversarial_first")
        # ---------------------------------------------------------------------------------------------------
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step + 1}/{len(data)}: loss {loss.item():.4f}")

    model.eval()
    images, labels = fsa.data.make_digit_scenes("test", num_images=8)
    adv = fsa.attacks.pgd(model, images, labels, eps=eps, steps=5, seed=0)
    with torch.no_grad():
        clean = fsa.metrics.confusion_matrix(model(images).argmax(1), labels, fsa.data.NUM_CLASSES).miou()
        robust = fsa.metrics.confusion_matrix(model(adv).argmax(1), labels, fsa.data.NUM_CLASSES).miou()
    print(f"after {len(data)} steps: clean mIoU {100 * clean:.1f}, PGD5 mIoU {100 * robust:.1f} (8 test images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
