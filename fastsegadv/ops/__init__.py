"""The library's fused ops, one file per op (torchvision's ``ops/`` layout): each holds the eager
reference beside the op, the ``torch.library`` custom op or autograd Function over the C++ / Triton kernels
(with its fake kernel), and the public function whose one visible line chooses the backend
(:func:`fastsegadv.backend.choose_backend`).

- :mod:`.weighted_ce`: the weighted per-pixel cross-entropy of every paper (DESIGN.md §2-3);
- :mod:`.upsample_weighted_ce`: the same on logits below the labels' resolution, interpolated on the fly;
- :mod:`.masked_class_sums`: per-class feature sums of the RP-PGD prototypes (003 Eq. 5);
- :mod:`.attack_step`: the ℓ∞ PGD update with its projection (001 Eq. 1).
"""
from .attack_step import linf_step, linf_step_reference
from .masked_class_sums import masked_class_sums
from .upsample_weighted_ce import upsample_weighted_cross_entropy, upsample_weighted_cross_entropy_reference
from .weighted_ce import Kernel, encode, weighted_cross_entropy

__all__ = [
    "weighted_cross_entropy", "upsample_weighted_cross_entropy", "upsample_weighted_cross_entropy_reference",
    "masked_class_sums", "linf_step", "linf_step_reference", "encode", "Kernel",
]
