"""The adversarial-training batch of 001 Algorithm 2 (also 003): a drop-in for anyone's training loop.

    x_at, y_at, n_clean = adversarial_batch(model, x, y, attack="pgd@3")   # [B, 3, H, W], [B, H, W]
    out = model(x_at)
    loss = adversarial_training_loss(out, y_at, n_clean=n_clean, aux_weights={"aux": 0.4})

The first ``n_clean`` images stay clean, the rest are replaced by adversarial examples (``order=
"adversarial_first"`` puts them first, as the public AT codebases do) found with the model in eval mode and
its parameters not requiring (or accumulating) gradient; the model's modes, flags and BatchNorm statistics
are exactly as before afterwards. The loss is CE(clean part) + CE(adversarial part), each a mean over its
valid pixels (001 Algorithm 2), plus weighted auxiliary heads.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks.registry import AttackSpec
from ..outputs import extract_logits, logits_at

ORDERS = ("clean_first", "adversarial_first")


def as_attack_spec(attack: str | AttackSpec) -> AttackSpec:
    return attack if isinstance(attack, AttackSpec) else AttackSpec.parse(attack)


def check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")


def part_slices(batch: int, n_clean: int, order: str) -> tuple[slice, slice]:
    """``(clean rows, adversarial rows)`` of a batch of ``batch`` images laid out in ``order``."""
    if order == "clean_first":
        return slice(0, n_clean), slice(n_clean, batch)
    return slice(batch - n_clean, batch), slice(0, batch - n_clean)


def adversarial_batch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    attack: str | AttackSpec = "pgd@3",
    eps: float = 8 / 255,
    alpha: float | None = None,
    clean_fraction: float = 0.5,
    n_clean: int | None = None,
    seed: int | Sequence[int] | None = None,
    ignore_index: int = 255,
    order: str = "clean_first",
    **attack_options,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Return ``(images_at [B, 3, H, W], labels [B, H, W], n_clean)``. With ``order="clean_first"``
    (default) images ``[:n_clean]`` stay clean and ``[n_clean:]`` are replaced by their adversarial
    examples; with ``"adversarial_first"`` (the CosPGD authors' and Croce et al.'s layout) images
    ``[:B - n_clean]`` are attacked and ``[B - n_clean:]`` stay clean. Pass the same ``order`` to
    :func:`adversarial_training_loss`. ``attack``: ``"name@steps"`` or an :class:`AttackSpec`. ``seed``: an
    int or one per image (per-image seeds make the batch independent of how it is sharded).
    ``n_clean = round(B * clean_fraction)`` (001 uses one half) unless given (a rank's share of a
    distributed batch)."""
    check_order(order)
    if not 0.0 <= clean_fraction <= 1.0:
        raise ValueError(f"clean_fraction must lie in [0, 1], got {clean_fraction}")
    spec = as_attack_spec(attack)
    if n_clean is None:
        n_clean = int(round(images.shape[0] * clean_fraction))
    if not 0 <= n_clean <= images.shape[0]:
        raise ValueError(f"n_clean must lie in [0, {images.shape[0]}], got {n_clean}")
    if n_clean == images.shape[0]:
        return images, labels, n_clean
    clean_rows, adv_rows = part_slices(images.shape[0], n_clean, order)
    if seed is not None and not isinstance(seed, int):
        seed = list(seed)[adv_rows]
    adv = spec.run(model, images[adv_rows], labels[adv_rows], eps=eps, alpha=alpha, seed=seed,
                   ignore_index=ignore_index, **attack_options).to(images.dtype)
    parts = [images[clean_rows], adv] if order == "clean_first" else [adv, images[clean_rows]]
    return torch.cat(parts), labels, n_clean


def _ce_sum(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="sum")


def adversarial_training_loss(
    output,
    labels: torch.Tensor,
    *,
    n_clean: int,
    aux_weights: Mapping[str, float] | None = None,
    ignore_index: int = 255,
    normalizers: tuple[torch.Tensor, torch.Tensor] | None = None,
    reduction: str = "per_part",
    order: str = "clean_first",
) -> torch.Tensor:
    """``CE(clean) + CE(adv)`` (001 Algorithm 2) of the main output plus ``w * (CE_clean + CE_adv)`` of
    each auxiliary head named in ``aux_weights`` (dict outputs, e.g. torchvision's ``"aux"``). Logits at
    a lower resolution are upsampled bilinearly to the labels. ``order`` says where the ``n_clean`` clean
    images are, as for :func:`adversarial_batch`: ``"clean_first"`` (default) ``[:n_clean]``,
    ``"adversarial_first"`` ``[B - n_clean:]``.

    ``reduction="per_part"`` (default, the papers' Algorithm 2): each part's CE is a mean over its own
    valid pixels, and the two are added, about twice a mean CE. ``"joint"``: one mean over the valid
    pixels of the whole batch (the public AT codebases' convention, CosPGD's and Croce et al.'s: about
    half the per-part loss and gradient, as with half the learning rate).

    ``normalizers = (n_valid_clean, n_valid_adv)`` divides each part's CE sum by those counts instead of
    the local ones: distributed training passes the counts summed over ranks (scaled by the world size),
    so the averaged gradient equals one process's on the whole batch."""
    if reduction not in ("per_part", "joint"):
        raise ValueError(f"reduction must be 'per_part' or 'joint', got {reduction!r}")
    check_order(order)
    if not 0 <= n_clean <= labels.shape[0]:
        raise ValueError(f"n_clean must lie in [0, {labels.shape[0]}], got {n_clean}")
    size = labels.shape[-2:]
    clean_rows, adv_rows = part_slices(labels.shape[0], n_clean, order)
    valid = labels != ignore_index  # [B, H, W]
    if normalizers is None:
        normalizers = (valid[clean_rows].sum().clamp_min(1), valid[adv_rows].sum().clamp_min(1))
    if reduction == "joint":  # one count for both parts: sum(CE) / (N_clean + N_adv)
        both = normalizers[0] + normalizers[1]
        normalizers = (both, both)
    heads = [(1.0, logits_at(output, size))]
    for key, weight in (aux_weights or {}).items():
        if not isinstance(output, Mapping) or key not in output:
            raise KeyError(f"aux_weights names head {key!r} but the model output has "
                           f"{sorted(output) if isinstance(output, Mapping) else type(output).__name__}")
        heads.append((float(weight), logits_at(extract_logits(output[key]), size)))
    total = labels.new_zeros((), dtype=torch.float32)
    for weight, logits in heads:  # [B, C, H, W]
        part = _ce_sum(logits[clean_rows], labels[clean_rows], ignore_index) / normalizers[0]
        if n_clean < labels.shape[0]:
            part = part + _ce_sum(logits[adv_rows], labels[adv_rows], ignore_index) / normalizers[1]
        total = total + weight * part
    return total
