"""SegPGD weights (Gu et al., ECCV 2022, 001 Eq. 4-5).

``L = (1/N_v) sum_i w_i CE_i`` with ``w_i = 1 - lambda(t)`` on correctly classified pixels and
``lambda(t)`` on the others. Schedules of Eq. 5 (t = 1..T):

- ``linear``: ``lambda = (t-1) / (2T)``
- ``log``:    ``lambda = 1/2 * log2(1 + (t-1)/T)``
- ``exp``:    ``lambda = 1/2 * (2^((t-1)/T) - 1)``

``constant`` uses a fixed ``lam`` (001 Fig. 4 ablation); ``only_correct`` is ``lambda = 0`` (the
DAG-like weighting of 001 §4.2 and SegFGSM, i.e. SegPGD with T = 1). The correct mask comes from the
argmax and carries no gradient.
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("linear", "log", "exp", "constant", "only_correct")


def segpgd_lambda(step: int, steps: int, schedule: str = "linear", *, lam: float | None = None) -> float:
    """lambda(t) of 001 Eq. 5 for attack iteration ``step`` = t in 1..T (``steps`` = T)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "constant":
        if lam is None or not 0.0 <= lam <= 1.0:
            raise ValueError(f"schedule='constant' needs lam in [0, 1], got {lam!r}")
        return float(lam)
    if schedule == "only_correct":
        return 0.0
    if steps < 1 or not 1 <= step <= steps:
        raise ValueError(f"need 1 <= step <= steps, got step={step}, steps={steps}")
    frac = (step - 1) / steps
    if schedule == "linear":
        return frac / 2.0
    if schedule == "log":
        return 0.5 * math.log2(1.0 + frac)
    return 0.5 * (2.0 ** frac - 1.0)


def segpgd_weight(correct: torch.Tensor, lam: float) -> torch.Tensor:
    """``[B,H,W]`` weights: ``1 - lam`` where ``correct`` else ``lam`` (001 Eq. 4)."""
    one = torch.ones((), dtype=torch.float32, device=correct.device)
    return torch.where(correct, one - lam, one * lam)
