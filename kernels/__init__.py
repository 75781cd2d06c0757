"""Triton kernels of fastsegadv, installed as ``fastsegadv.kernels`` (never as a top-level ``kernels``).

A leaf package: it may import torch and triton only. The fused weighted cross-entropy and prototype
kernels are not written yet; until then every loss runs on the eager reference in
``fastsegadv.losses``.
"""
