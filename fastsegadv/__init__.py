"""fastsegadv: adversarial attacks, fused losses and metrics for semantic segmentation.

    import fastsegadv as fsa
    adv = fsa.attacks.segpgd(model, images, labels, eps=8 / 255, alpha=0.01, steps=10)
"""
__version__ = "0.1.0"

from . import attacks, data, losses, metrics, models  # noqa: E402

__all__ = ["attacks", "data", "losses", "metrics", "models", "__version__"]
