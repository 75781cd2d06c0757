"""fastsegadv: adversarial attacks, metrics and (soon) fused kernels for semantic segmentation.

    import fastsegadv as fsa
    adv = fsa.attacks.segpgd(model, images, labels, eps=8 / 255, alpha=0.01, steps=10)
"""
__version__ = "0.1.0"

from . import attacks, losses, metrics  # noqa: E402

__all__ = ["attacks", "losses", "metrics", "__version__"]
