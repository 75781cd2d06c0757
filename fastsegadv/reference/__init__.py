"""The eager reference: the per-pixel weights, schedules and region rules of every paper, one file per
concept citing its equation (DESIGN.md §2-3), and the weighted cross-entropy computed from them in plain
PyTorch (:func:`~fastsegadv.reference.weighted.weighted_cross_entropy_reference`). The fused ops
(:mod:`fastsegadv.ops`) encode these formulas for the kernels and fall back to this reference; the
value tests check it; it imports nothing above it."""
