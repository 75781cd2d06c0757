"""The one iterative driver behind every gradient attack (PGD of Madry et al. 2018, 001 Eq. 1):

    x_0 = clip_[0,1](x + U(-eps, eps))          (random start; x_0 = x without)
    x_t = Proj_{B_eps(x)} clip_[0,1](x_{t-1} + alpha * step(grad_x L(f(x_{t-1}), y)))

with ``step`` = sign (ℓ∞), g/||g||_2 (ℓ2, BIM-ℓ2) or g/||g||_∞ (DAG), negated for targeted attacks.
The parts: :class:`~fastsegadv.attacks.execution.Execution` and ``prepared_model`` (how the model runs),
:class:`~fastsegadv.attacks.iteration.AttackIteration` (one step), ``CapturedStep`` (graph capture),
:class:`~fastsegadv.attacks.best_iterate.BestIterate` (best iterate per image) and the trace.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..outputs import class_prediction, logits_at
from .best_iterate import BestIterate
from .capture import CapturedStep
from .execution import Execution, prepared_model
from .iteration import STEP_RULES, AttackIteration, input_leaf
from .model_io import FeatureHook
from .objectives import Objective
from .perturbation import per_image_generators
from .perturbation import random_start as random_start_point
from .trace import AttackTrace
from .validation import check_attack_inputs, check_label_range


def _layout_of(t: torch.Tensor) -> torch.memory_format:
    dense_cl = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if dense_cl else torch.contiguous_format


BEST_ITERATE = ("misratio", "loss")


def best_iterate_criterion(best_iterate: bool | str, restarts: int) -> str | None:
    """``"misratio"``, ``"loss"`` or None (keep the last iterate) from ``best_iterate`` and ``restarts``."""
    if isinstance(best_iterate, str):
        if best_iterate not in BEST_ITERATE:
            raise ValueError(f"best_iterate must be True, False or one of {BEST_ITERATE}, got {best_iterate!r}")
        return best_iterate
    return "misratio" if best_iterate or restarts > 1 else None


def keep_best(best: BestIterate, criterion: str, x_adv: torch.Tensor, prediction: torch.Tensor,
              image_loss: torch.Tensor | None, labels: torch.Tensor, ignore_index: int) -> None:
    if criterion == "loss":
        best.update_scores(x_adv, image_loss)
    else:
        best.update(x_adv, prediction, labels, ignore_index)


def run_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    objective: Objective,
    eps: float,
    alpha: float,
    steps: int,
    step_rule: str = "linf",
    random_start: bool = False,
    restarts: int = 1,
    targeted_labels: torch.Tensor | None = None,
    best_iterate: bool | str = False,
    trace: AttackTrace | None = None,
    seed: int | Sequence[int] | torch.Tensor | None = None,
    ignore_index: int = 255,
    normalization: tuple | None = None,
    pixel_mask: torch.Tensor | None = None,
    feature_layer: str | None = None,
    clean_prediction: torch.Tensor | None = None,
    eval_mode: bool = True,
    amp: str | None = None,
    compile_step: bool | str = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """Run ``steps`` iterations of ``objective`` ascent and return adversarial images ``[B, 3, H, W]``.

    images ``[B, 3, H, W]`` in [0, 1], labels ``[B, H, W]`` int with ``ignore_index``. ``eps`` and
    ``alpha`` are on the [0, 1] scale (8/255, not 8). ``targeted_labels`` turns it into descent on the
    objective w.r.t. those labels. ``best_iterate`` keeps, per image, the most damaging iterate
    (one extra no-grad forward at the end of each restart): ``True`` or ``"misratio"`` the one with the highest
    MisRatio (the evaluation's criterion; also what ``restarts > 1`` keep), ``"loss"`` the one with the highest
    objective value per image (Croce et al.'s APGD criterion; one extra no-grad loss evaluation per step; an
    objective whose weights depend on t, as SegPGD's and RP-PGD's, scores each iterate with the weights of
    its own step).
    ``pixel_mask`` ``[B or 1, 1, H, W]`` zeroes the step outside a pixel subset (004 §4.5).
    ``seed``: an int (one generator for the batch) or one seed per image (the random start of each image
    then does not depend on its batch). ``normalization=(mean, std)`` wraps the model. ``amp="bf16"`` or
    ``"fp16"`` runs the model's forward (and so its backward) under autocast; the loss is computed from the
    low-precision logits with fp32 accumulation (the fused kernels read bf16/fp16 directly) and the
    iterate stays fp32. ``compile_step=True`` (or a ``torch.compile`` backend name) captures steps 2..T as
    one graph each (forward, loss, input gradient, update; CUDA graphs on CUDA; capture.py): same iterates
    as the eager loop up to the compiler's floating-point reassociation, falling back to the eager step
    with a warning where capture fails. ``channels_last=True`` runs the model with its convolution
    weights and the iterate in channels_last (faster convolutions on oneDNN/cuDNN; the original weight
    tensors are put back afterwards). The model's modes, ``requires_grad`` flags and buffers are
    unchanged afterwards.
    """
    labels = check_attack_inputs(model, images, labels, eps=eps, alpha=alpha, steps=steps,
                                 norm="l2" if step_rule == "l2" else "linf", amp=amp)
    if targeted_labels is not None:
        targeted_labels = targeted_labels.long()
    execution = Execution(normalization=normalization, eval_mode=eval_mode, amp=amp, channels_last=channels_last,
                          compile_step=compile_step)
    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {STEP_RULES}, got {step_rule!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    if targeted_labels is not None and targeted_labels.shape != labels.shape:
        raise ValueError("targeted_labels must have the labels' shape [B, H, W]")
    if pixel_mask is not None and (pixel_mask.dim() != 4 or pixel_mask.shape[-2:] != images.shape[-2:]):
        raise ValueError("pixel_mask must be [B or 1, 1, H, W] like the images")
    size = labels.shape[-2:]
    norm = "l2" if step_rule == "l2" else "linf"
    attack_labels = labels if targeted_labels is None else targeted_labels
    generator = per_image_generators(seed, images.shape[0], images.device)
    criterion = best_iterate_criterion(best_iterate, restarts)
    track = criterion is not None
    x = images.detach()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    best = BestIterate(x, ties="replace")  # per image, the most damaging iterate (later ones win ties)
    hook = FeatureHook(model, feature_layer) if objective.needs_features else None
    with prepared_model(model, execution, hook) as forward_raw:
        if objective.needs_clean_prediction and clean_prediction is None:
            with torch.no_grad():
                clean_logits = logits_at(forward_raw(x), size)
            check_label_range(labels, clean_logits.shape[1], ignore_index)
            clean_prediction = class_prediction(clean_logits)
        iteration = AttackIteration(
            forward_raw=forward_raw, objective=objective, x=x, labels=labels, attack_labels=attack_labels,
            targeted=targeted_labels is not None, eps=eps, alpha=alpha, steps=steps, step_rule=step_rule,
            pixel_mask=pixel_mask, hook=hook, ignore_index=ignore_index, want_prediction=trace is not None or track,
            want_image_loss=criterion == "loss")
        captured = None
        if compile_step and steps > 1:
            captured = CapturedStep(iteration, compile_step=compile_step, device=x.device)
        for restart in range(restarts):
            x_adv = random_start_point(x, eps, norm, generator) if random_start else x.clone()
            if channels_last:
                x_adv = x_adv.contiguous(memory_format=torch.channels_last)
            objective.begin(attack_labels, clean_prediction)
            for t in range(1, steps + 1):
                first = restart == 0 and t == 1
                params = None if captured is None or first else objective.kernel_params(t, steps)
                if params is not None:  # a graph input on the device: a CUDA-graph replay copies it in
                    params = params.to(x.device, non_blocking=True)
                ran_captured = False
                if captured is not None and not first and (params is None or iteration.fused):
                    x_next, loss, prediction, image_loss = captured(input_leaf(x_adv), params, None)
                    ran_captured = captured.last_captured
                else:  # the same weights from step=t (the eager loss encodes t itself)
                    x_next, loss, prediction, image_loss = iteration(x_adv, None, t, first=first)
                with torch.no_grad():
                    if trace is not None:
                        trace.record_step(restart, loss, prediction, labels, ignore_index,
                                          objective.region_counts(attack_labels), captured=ran_captured)
                    if track:
                        keep_best(best, criterion, x_adv, prediction, image_loss, labels, ignore_index)
                x_adv = x_next
            if track:
                keep_best(best, criterion, x_adv, *iteration.score_final(x_adv), labels, ignore_index)
    if trace is not None and captured is not None and captured.error is not None:
        trace.capture_error = captured.error  # the steps after it ran eagerly: recorded, not silent
    best_x = best.x if track else x_adv
    if channels_last:  # back to the layout the images came in
        return best_x.detach().contiguous(memory_format=_layout_of(images))
    return best_x.detach()
