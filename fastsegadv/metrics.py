"""Segmentation metrics (001 §4, 002, 004 §4.1): streaming confusion matrix with ignore, mIoU, pixel
accuracy, MisRatio / APSR, ΔmIoU and IoU Ratio."""
from __future__ import annotations

import torch

from .outputs import class_prediction, logits_at

__all__ = ["ConfusionMatrix", "confusion_matrix", "per_image_confusion", "prediction_confusion", "dataset_miou",
           "mis_ratio", "delta_miou", "iou_ratio"]


class ConfusionMatrix:
    """Streaming ``[C, C]`` confusion matrix, rows = label, columns = prediction; ignored pixels skipped.

    >>> cm = ConfusionMatrix(21); cm.update(logits.argmax(1), labels); cm.miou()
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255, device=None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, labels: torch.Tensor) -> "ConfusionMatrix":
        """prediction, labels ``[B, H, W]`` (or any equal shapes) of class indices."""
        if prediction.shape != labels.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and labels {tuple(labels.shape)} differ in shape")
        c = self.num_classes
        valid = labels != self.ignore_index
        lab = labels[valid].long()
        pred = prediction[valid].long()
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= c):
            raise ValueError(f"labels outside [0, {c - 1}] that are not the ignore_index {self.ignore_index}")
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= c):
            raise ValueError(f"predictions outside [0, {c - 1}]")
        counts = torch.bincount(lab * c + pred, minlength=c * c).view(c, c)
        self.matrix = self.matrix.to(counts.device) + counts
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        self.matrix = self.matrix + other.matrix.to(self.matrix.device)
        return self

    def iou(self) -> torch.Tensor:
        """Per-class IoU ``[C]`` (float64), NaN for classes absent from both labels and predictions."""
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))

    def miou(self) -> float:
        """Mean IoU over classes present in labels or predictions (001 §4; absent classes excluded)."""
        iou = self.iou()
        present = ~torch.isnan(iou)
        return float(iou[present].mean()) if bool(present.any()) else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(self.matrix.diag().sum().double() / total) if int(total) else float("nan")

    def mis_ratio(self) -> float:
        """MisRatio = APSR (004 Eq. 11): fraction of valid pixels misclassified."""
        return 1.0 - self.pixel_accuracy()


@torch.no_grad()
def prediction_confusion(predict, batches, *, num_classes: int, ignore_index: int = 255,
                         device=None) -> ConfusionMatrix:
    """Confusion matrix of the argmax predictions of ``predict(images)`` over ``batches`` of ``(images
    [b, 3, H, W], labels [b, H, W])``: the one loop behind every clean mIoU of the library (a set of tensors
    here, a sharded dataset in training and evaluation). Any model output the attacks accept (dicts,
    Hugging Face objects, tuples, logits below the labels' resolution: upsampled bilinearly) is read
    through :func:`fastsegadv.outputs.logits_at`."""
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    for x, y in batches:
        cm.update(class_prediction(logits_at(predict(x), y.shape[-2:])), y)
    return cm


def dataset_miou(model, images: torch.Tensor, labels: torch.Tensor, *, num_classes: int, ignore_index: int = 255,
                 batch_size: int = 64) -> float:
    """mIoU of ``model``'s argmax predictions over ``images [N, 3, H, W]`` / ``labels [N, H, W]``, in batches
    (see :func:`prediction_confusion`)."""
    batches = ((images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(images), batch_size))
    return prediction_confusion(model, batches, num_classes=num_classes, ignore_index=ignore_index).miou()


def per_image_confusion(prediction: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                        ignore_index: int = 255) -> torch.Tensor:
    """``[B, C, C]`` int64 confusion counts of each image (rows label, columns prediction) over its valid
    pixels, in one bincount; labels and predictions assumed in range (no check, no host sync)."""
    b, c = labels.shape[0], num_classes
    valid = labels != ignore_index
    offset = (torch.arange(b, device=labels.device) * c * c).view(b, *([1] * (labels.dim() - 1)))
    idx = torch.where(valid, labels.long() * c + prediction.long() + offset, b * c * c)  # ignored -> spare bin
    return torch.bincount(idx.flatten(), minlength=b * c * c + 1)[: b * c * c].view(b, c, c)


def confusion_matrix(prediction, labels, num_classes: int, *, ignore_index: int = 255) -> ConfusionMatrix:
    """A :class:`ConfusionMatrix` of ``prediction [B, H, W]`` against ``labels [B, H, W]`` (one update)."""
    return ConfusionMatrix(num_classes, ignore_index=ignore_index, device=labels.device).update(prediction, labels)


def mis_ratio(prediction: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255) -> float:
    """Fraction of valid pixels whose prediction differs from the label (MisRatio / APSR)."""
    valid = labels != ignore_index
    n = int(valid.sum())
    return float(((prediction != labels) & valid).sum()) / n if n else float("nan")


def delta_miou(clean_miou: float, adversarial_miou: float) -> float:
    """ΔmIoU = clean − adversarial (004 §4.1)."""
    return clean_miou - adversarial_miou


def iou_ratio(clean_miou: float, adversarial_miou: float) -> float:
    """IoU Ratio = adversarial / clean (002 §4)."""
    return adversarial_miou / clean_miou if clean_miou > 0 else float("nan")
