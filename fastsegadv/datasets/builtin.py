"""The built-in digit scenes (``fastsegadv.data``) as a dataset with the same attributes as the file
readers (``num_classes``, ``ignore_index``, ``class_names``)."""
from __future__ import annotations

from torch.utils.data import Dataset

from ..data import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, make_digit_scenes


class DigitScenes(Dataset):
    """The built-in digit scenes (:func:`fastsegadv.data.make_digit_scenes`) as a map-style dataset of
    ``(image [3, size, size] in [0, 1], label [size, size])``, with ``num_classes``, ``ignore_index`` and
    ``class_names`` like the other readers."""
    def __init__(self, split: str = "train", *, num_images: int = 256, size: int = 64, seed: int = 0):
        self.images, self.labels = make_digit_scenes(split, num_images=num_images, size=size, seed=seed)
        self.num_classes, self.ignore_index, self.class_names = NUM_CLASSES, IGNORE_INDEX, CLASS_NAMES
        self.name = f"built-in digit scenes ({split}, {num_images} images, seed {seed})"

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]

    def verify(self, progress=None) -> None:
        """Nothing to check: generated in memory."""
