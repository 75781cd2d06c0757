"""fastsegadv: adversarial attacks, fused losses and metrics for semantic segmentation.

    import fastsegadv as fsa
    adv = fsa.attacks.segpgd(model, images, labels, eps=8 / 255, alpha=0.01, steps=10)
"""
import importlib
import os
import sys

__version__ = "0.1.0"


def _prefer_hub_kernels() -> None:
    """Run from a checkout, the repository root is on ``sys.path`` (``python -m``, pytest), where this
    project's Triton folder ``kernels/`` (installed as ``fastsegadv.kernels``) would be found as a
    top-level ``kernels`` and shadow the Hugging Face package of that name, which ``transformers`` >= 5
    imports. Import the installed one first, the root left out of the search; nothing of ours imports a
    top-level ``kernels``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if "kernels" in sys.modules or not os.path.isfile(os.path.join(root, "kernels", "__init__.py")):
        return
    if not any(os.path.abspath(p or os.getcwd()) == root for p in sys.path):
        return
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != root]
    try:
        importlib.import_module("kernels")
    except ImportError:  # not installed: nothing to shadow
        pass
    finally:
        sys.path[:] = saved


_prefer_hub_kernels()

from . import attacks, data, losses, metrics, models  # noqa: E402

__all__ = ["attacks", "data", "losses", "metrics", "models", "__version__"]
