#!/usr/bin/env bash
# Issue 4's study on the built-in data: PGD3-AT and SegPGD3-AT fine-tuned from the shipped standard model
# with `fastsegadv train`, then `fastsegadv evaluate` of the three models (Clean, PGD10/20, SegPGD10/20,
# RP-PGD10/20, worst case) into reports/at_digits/. About 25 min on 2 CPU cores.
set -euo pipefail
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
OUT=${OUT:-reports/at_digits}
for a in pgd segpgd; do
  "$PY" -m fastsegadv train --attack "${a}@3" --init standard --epochs 6 --num-images 2000 --lr 1e-3 \
    --output "$RUNS/at_${a}" --no-progress
done
"$PY" -m fastsegadv evaluate --models standard "PGD3-AT=$RUNS/at_pgd/model.pt" "SegPGD3-AT=$RUNS/at_segpgd/model.pt" \
  --num-images 128 --output "$OUT" --title "Adversarial training on the built-in digit scenes" --no-progress
for a in pgd segpgd; do cp "$RUNS/at_${a}/metrics.json" "$OUT/train_${a}_at_metrics.json"; done
