"""The kernel contract of the fused weighted cross-entropy, in one Python source: the mode flags, the
layout of the parameter vector and the columns of the per-image statistics. ``csrc/weighting.h`` (C++ CPU
and CUDA kernels) and ``kernels/weighted_ce.py`` (Triton) mirror it; ``tests/ops/test_contract.py`` parses
the header and reads the Triton module to check that they agree with this file.

    flags = Flag.SEGPGD | Flag.ZERO_OUT
    params[Param.TAU] = 0.75
    n_valid = stats[:, Stat.VALID]
"""
from __future__ import annotations

import enum


class Flag(enum.IntFlag):
    """Weight terms a kernel applies (csrc/weighting.h ``FLAG_*``)."""

    SEGPGD = 1 << 0  # w *= correct ? params[W_CORRECT] : params[W_WRONG]
    REGIONS = 1 << 1  # w *= params[LAMBDA_T + region state]
    UPDATE_STATE = 1 << 2  # T -> B where wrong, in the same pass
    COS_SOFTMAX = 1 << 3  # w *= p_y / ||p||_2
    COS_SIGMOID = 1 << 4  # w *= s_y / ||s||_2, s = sigmoid(z)
    COS_TARGETED = 1 << 5  # 1 - cos instead of cos
    UNC_MARGIN = 1 << 6  # w *= exp(1 - (p1 - p2))
    UNC_MAXMIN = 1 << 7  # w *= exp(1 - (p1 - pmin))
    UNC_MEANMARGIN = 1 << 8  # w *= exp(1 - (C p1 - 1) / (C - 1))
    UNC_ENTROPY = 1 << 9  # w *= exp(H / log C)
    UNC_DETACH = 1 << 10  # no gradient through exp(U)
    ZERO_OUT = 1 << 11  # w = 0 where wrong and p1 >= params[TAU]


class Param(enum.IntEnum):
    """Index of each entry of the fp32 parameter vector (csrc/weighting.h ``P_*``)."""

    W_CORRECT = 0
    W_WRONG = 1
    LAMBDA_T = 2  # region weights: LAMBDA_T + state (0 True, 1 Boundary, 2 False)
    LAMBDA_B = 3
    LAMBDA_F = 4
    TAU = 5


class Stat(enum.IntEnum):
    """Columns of the ``[B, NUM_STATS]`` float64 per-image statistics (csrc/weighting.h ``STAT_*``)."""

    LOSS = 0  # sum of w * CE over the image's pixels
    VALID = 1
    CORRECT = 2
    TRUE = 3  # region counts over valid pixels after this pass's update
    BOUNDARY = 4
    FALSE = 5


NUM_PARAMS = len(Param)
NUM_STATS = len(Stat)
UNCERTAINTY_FLAGS = {"margin": Flag.UNC_MARGIN, "max_min": Flag.UNC_MAXMIN, "mean_margin": Flag.UNC_MEANMARGIN,
                     "entropy": Flag.UNC_ENTROPY}
