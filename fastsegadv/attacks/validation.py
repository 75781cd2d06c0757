"""Checks that run before any attack work, each naming the argument at fault."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..reference.pixelwise import check_label_range, check_labels_like  # noqa: F401  (re-exported)


def check_attack_inputs(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float, alpha: float, steps: int,
    norm: str | None = "linf", amp: str | None = None,
) -> torch.Tensor:
    """``norm="linf"``: ``eps`` and ``alpha`` are on the [0, 1] image scale, so a value above 1 (8 for 8/255)
    is refused; ``"l2"``: an ℓ2 radius and step may exceed 1; None: no scale check (optimiser rates).
    Returns the labels as int64 (every integer dtype is accepted: uint8, int32, ...)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a [B, 3, H, W] tensor, got shape {tuple(getattr(images, 'shape', ()))}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point in [0, 1], got {images.dtype}")
    check_labels_like(labels, images, "images")
    p = next(iter(model.parameters()), None)
    if p is not None and p.device != images.device:
        raise ValueError(f"model is on {p.device} but images are on {images.device}")
    dtypes = {q.dtype for q in model.parameters() if q.is_floating_point()}
    if amp is None and len(dtypes) == 1 and images.dtype not in dtypes:
        (dtype,) = dtypes
        raise TypeError(f"the model's parameters are {dtype} but the images are {images.dtype}: convert one to the "
                        "other (model.float() with float32 images; for half precision keep an fp32 model and pass "
                        "amp='bf16' or amp='fp16')")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or inf")
    if bool((images < 0).any()) or bool((images > 1).any()):
        raise ValueError("images must lie in [0, 1] (the model owns normalisation; see normalization=)")
    for name, value in (("eps", eps), ("alpha", alpha)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if norm == "linf":
        check_unit_scale(eps=eps, alpha=alpha)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return labels.long()


def check_unit_scale(**values: float) -> None:
    """ℓ∞ budgets and step sizes live on the [0, 1] image scale: refuse the 0-255 scale (``eps=8``) with an
    error that names the argument, before any work (``segpgd(eps=8)`` would otherwise run unbounded)."""
    for name, value in values.items():
        if isinstance(value, (int, float)) and value > 1:
            raise ValueError(f"{name}={value!r} is above 1: images are in [0, 1], so an ℓ∞ {name} is on that scale "
                             f"too; did you mean {name}={value:g} / 255?")


def check_seed_length(seed, batch: int) -> None:
    """A per-image seed list must have one seed per image, even for an attack that draws nothing (a wrong
    length is a caller's bug that would otherwise pass silently)."""
    if seed is None or isinstance(seed, int):
        return
    n = seed.numel() if isinstance(seed, torch.Tensor) else len(seed)
    if n != batch:
        raise ValueError(f"seed: expected an int or {batch} per-image seeds, got {n}")


def input_gradient(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``d loss / d x``, or one clear error when the model's output does not depend on its input through
    autograd (detached, computed under ``no_grad``, or integer-valued)."""
    if not loss.requires_grad:
        raise ValueError("the model's logits do not depend on its input through autograd (a detach(), no_grad() "
                         "or a non-differentiable step inside the model): gradient attacks cannot run on it")
    (g,) = torch.autograd.grad(loss, x)
    return g


def reject_unknown_options(unused: dict, name: str) -> None:
    """For attacks with their own loop (CW, DeepFool, APGD), which take ``trace=`` and always return the best
    iterate: accept the options the harness passes every attack where they do not apply (eps and alpha of
    the minimal-perturbation attacks, ``seed`` of the deterministic ones, ``best_iterate``), reject the rest."""
    extra = set(unused) - {"eps", "alpha", "seed", "best_iterate"}
    if extra:
        raise TypeError(f"{name}() got unexpected keyword arguments {sorted(extra)}")
