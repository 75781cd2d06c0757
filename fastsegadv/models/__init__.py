"""Reference networks for demos and tests."""
from .pretrained import SHIPPED, checkpoint_path, load_pretrained
from .tiny_deeplab import TinyDeepLab

__all__ = ["TinyDeepLab", "load_pretrained", "checkpoint_path", "SHIPPED"]
