"""Per image, the most damaging iterate an attack has seen, one tracker for the driver, CW, DeepFool and
APGD. The criterion is MisRatio (the fraction of valid pixels misclassified, the evaluation's own) or any
per-image score the caller gives (the driver's ``best_iterate="loss"``: the attack's loss per image, what
Croce et al.'s APGD keeps)."""
from __future__ import annotations

import torch


def mis_ratio_per_image(prediction: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``[B]`` fraction of valid pixels misclassified (MisRatio / APSR); 0 for images with none."""
    valid = labels != ignore_index
    wrong = (prediction != labels) & valid
    return wrong.flatten(1).sum(1).float() / valid.flatten(1).sum(1).clamp_min(1).float()


class BestIterate:
    """``x`` ``[B, ...]`` (the best iterate so far, in the layout of the tensor it starts from) and ``score``
    ``[B]`` (its MisRatio or the caller's score; -inf before the first update). ``ties``: on an equal score
    keep the earlier iterate (``"keep"``), take the later one (``"replace"``: the driver, whose later iterates
    are further along the ascent) or take the smaller perturbation (``"smaller_norm"``: CW, given ``norm``)."""

    TIES = ("keep", "replace", "smaller_norm")

    def __init__(self, x: torch.Tensor, *, ties: str = "keep"):
        if ties not in self.TIES:
            raise ValueError(f"ties must be one of {self.TIES}, got {ties!r}")
        self.x = x.detach().clone()
        self.score = torch.full((x.shape[0],), float("-inf"), device=x.device)
        self.norm = torch.full((x.shape[0],), float("inf"), device=x.device)
        self.ties = ties

    @torch.no_grad()
    def update(self, x_cur: torch.Tensor, prediction: torch.Tensor, labels: torch.Tensor, ignore_index: int,
               norm: torch.Tensor | None = None, *, index: torch.Tensor | None = None) -> None:
        """Score ``x_cur`` by its ``prediction [B, H, W]`` and keep it, per image, where it is better. With
        ``index`` (``[n]`` image indices) the arguments hold only those images (attacks that stop early)."""
        self.update_scores(x_cur, mis_ratio_per_image(prediction, labels, ignore_index), norm, index=index)

    @torch.no_grad()
    def update_scores(self, x_cur: torch.Tensor, score: torch.Tensor, norm: torch.Tensor | None = None, *,
                      index: torch.Tensor | None = None) -> None:
        """Keep ``x_cur`` per image where its ``score [B]`` (higher is more damaging) beats the kept one."""
        score = score.float()
        rows = slice(None) if index is None else index
        old_score = self.score[rows]
        if self.ties == "replace":
            better = score >= old_score
        elif self.ties == "smaller_norm":
            old_norm = self.norm[rows]
            better = (score > old_score) | ((score == old_score) & (norm < old_norm))
            self.norm[rows] = torch.where(better, norm, old_norm)
        else:
            better = score > old_score
        self.score[rows] = torch.where(better, score, old_score)
        self.x[rows] = torch.where(better.view(-1, *([1] * (x_cur.dim() - 1))), x_cur.detach(), self.x[rows])
