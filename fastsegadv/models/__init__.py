"""Reference models, adapters for users' models, and loading by name."""
from .adapters import SegmentationAdapter, feature_layer_name, select_output
from .loading import load_model, load_named_models, save_model
from .pretrained import ARCHITECTURES, SHIPPED, checkpoint_path, load_pretrained
from .sliding_window import SlidingWindow, window_grid
from .tiny_deeplab import TinyDeepLab
from .tiny_upernet import TinyUPerNet

__all__ = ["TinyDeepLab", "TinyUPerNet", "ARCHITECTURES", "load_pretrained", "checkpoint_path", "SHIPPED",
           "SegmentationAdapter", "select_output",
           "feature_layer_name", "load_model", "load_named_models", "save_model",
           "SlidingWindow", "window_grid"]
