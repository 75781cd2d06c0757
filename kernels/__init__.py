"""Triton kernels of fastsegadv, installed as ``fastsegadv.kernels`` (never as a top-level ``kernels``).

The bottom layer below :mod:`fastsegadv.ops`: it imports torch, triton and the kernel contract
(:mod:`fastsegadv.contract`) only. ``weighted_ce`` (the fused weighted cross-entropy), ``upsample_weighted_ce``
(the same on logits interpolated on the fly), ``masked_class_sums`` (RP-PGD prototypes) and ``device`` (the
launch guard); each wrapper has the contract of the C++ op of the same name (csrc/ops.cpp).
"""
from . import interpreter_compat

interpreter_compat.apply()  # Triton 3.6's interpreter under numpy >= 2.4 (see that module)
