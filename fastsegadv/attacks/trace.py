"""Per-iteration record of an attack, filled from the forward the attack already runs (no extra pass)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..metrics import per_image_confusion
from .best_iterate import mis_ratio_per_image


@dataclass
class AttackTrace:
    """Pass ``trace=AttackTrace()`` to an attack. Per iteration t (the iterate the gradient was taken
    at): ``loss`` (the objective), ``mis_ratio`` (MisRatio over the batch's valid pixels) and
    ``regions`` (valid pixels in True/Boundary/False, RP-PGD only). Values are kept as tensors during
    the attack (no host sync) and converted by :meth:`as_dicts`.

    With ``num_classes`` set, ``confusion`` also keeps each iteration's ``[C, C]`` confusion matrix of
    the prediction (for mIoU-vs-iteration curves, 001 Fig. 2).

    ``captured`` says per iteration whether it ran as a captured graph (``compile_step``); where capture
    failed and the attack went on eagerly, ``capture_error`` says why (never a silent fallback)."""

    loss: list = field(default_factory=list)
    mis_ratio: list = field(default_factory=list)
    regions: list = field(default_factory=list)
    restart: list = field(default_factory=list)
    num_classes: int | None = None
    ignore_index: int = 255
    confusion: list = field(default_factory=list)
    captured: list = field(default_factory=list)
    capture_error: str | None = None

    def record(self, restart: int, loss: torch.Tensor, mis_ratio: torch.Tensor, regions: torch.Tensor | None,
               prediction: torch.Tensor | None = None, labels: torch.Tensor | None = None,
               captured: bool = False) -> None:
        self.restart.append(restart)
        self.captured.append(captured)
        self.loss.append(loss.detach().float())
        self.mis_ratio.append(mis_ratio.detach().float())
        self.regions.append(None if regions is None else regions.detach())
        if self.num_classes is not None and prediction is not None:
            counts = per_image_confusion(prediction, labels, self.num_classes, ignore_index=self.ignore_index)
            self.confusion.append(counts.sum(0))  # [C, C]

    def record_step(self, restart: int, loss: torch.Tensor, prediction: torch.Tensor, labels: torch.Tensor,
                    ignore_index: int, regions: torch.Tensor | None = None, captured: bool = False) -> None:
        """One iteration from this forward's ``prediction [B, H, W]``: the loss, the batch's MisRatio over
        all its valid pixels and (with ``num_classes``) the confusion counts."""
        mis = mis_ratio_per_image(prediction, labels, ignore_index)
        valid = (labels != ignore_index).flatten(1).sum(1).float()
        self.record(restart, loss, (mis * valid).sum() / valid.sum().clamp_min(1), regions, prediction, labels,
                    captured)

    def as_dicts(self) -> list[dict]:
        rows = []
        step = 0
        for i, r in enumerate(self.restart):
            step = 1 if i == 0 or self.restart[i - 1] != r else step + 1
            row = {"restart": r, "step": step, "loss": float(self.loss[i]), "mis_ratio": float(self.mis_ratio[i]),
                   "captured": self.captured[i]}
            if self.regions[i] is not None:
                t, b, f = (int(v) for v in self.regions[i].tolist())
                row.update(true=t, boundary=b, false=f)
            rows.append(row)
        return rows
