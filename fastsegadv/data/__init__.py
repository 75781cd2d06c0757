"""Built-in data for demos and tests (no downloads)."""
from .digits import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, digit_scenes_dataset, make_digit_scenes

__all__ = ["make_digit_scenes", "digit_scenes_dataset", "NUM_CLASSES", "IGNORE_INDEX", "CLASS_NAMES"]
