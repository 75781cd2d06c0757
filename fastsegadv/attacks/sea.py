"""SEA, the Segmentation Ensemble Attack (Croce, Singh, Hein, "Towards Reliable Evaluation and Fast Training of
Robust Semantic Segmentation Models", ECCV 2024), written from the paper and the authors' released
algorithm (nmndeep/Robust-Segmentation, ``semseg/attacker.py``: ``apgd_train``, ``apgd_largereps``).

For each loss ℓ of the ensemble (mask-ce-bal, mask-ce-avg, js-avg), :func:`sea_apgd` runs APGD with
progressive radius reduction: three stages of ⌊0.3N⌋, ⌊0.3N⌋ and N − 2⌊0.3N⌋ iterations at radii 2ε, 1.5ε
and ε. Stage 1 starts at a uniform random point of the 2ε ball; each later stage starts at the previous
stage's lowest-accuracy point projected into its own ball, with a fresh step size and schedule. In a
stage of n iterations at radius r (per image, all of it):

- step size η = 2r, halved at the checkpoints of :func:`sea_checkpoints` (k₀ = ⌊0.22n⌋, then the gap
  shrinks by ⌊0.03n⌋ down to ⌊0.06n⌋) where the *tracked* loss (ce-avg, not the followed one) rose in
  at most ρ = 0.75 of the window's steps, or where it was not halved at the previous checkpoint and its
  best value has not improved since (:func:`halve_step_size`); a halved image restarts from its best
  tracked point and that point's gradient;
- update with momentum 0.75: ``z = P(x_k + η sign ∇ℓ(x_k))``, ``x_{k+1} = P(x_k + 0.75 (z − x_k) + 0.25
  (x_k − x_{k−1}))`` (the first step without momentum), P the projection on the ball ∩ [0, 1]; a restart
  at the best point leaves x_{k−1} as it was (as the released code);
- an image whose valid pixels are all misclassified stops (its later passes are not spent);
- returned: the iterate with the lowest pixel accuracy (correct / valid pixels; ties: the later iterate).

:func:`sea` runs the three losses and keeps per image the result with the lowest pixel accuracy; the
evaluation harness's ``sea@N`` runs them as three attacks, so that it also reports the greedy
dataset-mIoU worst case over them.

Deliberate differences from the released code: pixel accuracy counts only valid pixels at every iterate
(the released code counts ignored pixels as wrong at the starting point only, so an image with ignored
pixels leaves its starting point only once that many more valid pixels are fooled, and never stops early);
the early stop is per image and returns the first fully fooled iterate (the released code stops a stage
when every image of the batch is fooled, and returns the last fully fooled iterate); the first
checkpoint's window compares the first iterate with the starting point (the released code with 0, which
changes the step size of some images); each loss draws its own random start from the seed (salted by the
loss); the JS is the closed form in p_y, finite where the released ``kl_div`` form gives NaN (a softmax
probability underflowing to 0). With those aligned, the released loop and this one give bit-identical
iterates in float64 (checked by an independent review; tests/attacks/test_sea.py transcribes the
loop). mask-ce-bal's class weights: the released code uses fixed per-dataset arrays for VOC and ADE20K
(:mod:`.sea_class_weights`, selected by ``class_weights="voc"`` or ``"ade20k"``; the evaluation harness
does so when it knows the dataset); for any other dataset the per-image rule of
:func:`balanced_class_weights`, or a ``[K]`` tensor of the user's.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from ..metrics import per_image_confusion
from .best_iterate import BestIterate, mis_ratio_per_image
from .margins import js_from_ce, per_image_mean, pixel_ce, pixel_ce_and_prediction
from .model_io import NormalizedModel, class_prediction, frozen_for_attack, logits_at
from .perturbation import per_image_generators, project, uniform
from .sea_class_weights import dataset_class_weights
from .validation import check_attack_inputs, check_label_range, reject_unknown_options

SEA_LOSSES = ("mask_ce_bal", "mask_ce_avg", "js_avg")
LOSSES = SEA_LOSSES + ("ce_avg", "tsallis", "mask_ce_iou", "miou")
SELECT = ("accuracy", "iou")
# (radius as a multiple of eps, share of the iterations)
RADIUS_STAGES = ((2.0, 0.3), (1.5, 0.3), (1.0, 0.4))
RHO = 0.75
MOMENTUM = 0.75


def stage_iterations(steps: int) -> list[int]:
    """Iterations of the three radius stages: ⌊0.3N⌋, ⌊0.3N⌋ and the rest (300 -> 90, 90, 120)."""
    first = [int(share * steps) for _, share in RADIUS_STAGES[:-1]]
    return first + [steps - sum(first)]


def sea_checkpoints(steps: int) -> list[int]:
    """0-based iterations after which the step size is checked in a stage of ``steps`` iterations: the
    first after k = max(⌊0.22 n⌋, 1) steps, then every k steps with k decreased by max(⌊0.03 n⌋, 1) each
    time, down to max(⌊0.06 n⌋, 1) (n = 90: 18, 35, 50, 63, 74, 83)."""
    k, k_min, decrease = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    marks, i = [], k - 1
    while i < steps:
        marks.append(i)
        k = max(k - decrease, k_min)
        i += k
    return marks


def halve_step_size(increases: torch.Tensor, window: int, reduced_last_check: torch.Tensor,
                    best_now: torch.Tensor, best_at_last_check: torch.Tensor, rho: float = RHO) -> torch.Tensor:
    """``[B]`` bool: halve where the tracked loss rose in at most ``rho * window`` of the window's steps, or
    where the step was not halved at the previous checkpoint and the best tracked loss has not improved."""
    return (increases <= rho * window) | (~reduced_last_check & (best_now <= best_at_last_check))


def balanced_class_weights(labels: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """``[B, K]`` per-image class weights of mask-ce-bal when no dataset weights are given: normalised inverse
    pixel frequencies of the classes present in each image's valid labels (w_c = (1/n_c) / Σ_c' 1/n_c'; 0
    for absent classes), so every present class weighs the same in total, as SEA's dataset weights
    balance the classes of a dataset."""
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels)).flatten(1)  # [B, HW]
    counts = torch.zeros(labels.shape[0], num_classes, device=labels.device, dtype=torch.float64)
    counts.scatter_add_(1, safe, valid.flatten(1).double())
    inv = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    return (inv / inv.sum(1, keepdim=True).clamp_min(1e-12)).float()


def image_class_counts(prediction: torch.Tensor, labels: torch.Tensor, num_classes: int,
                       ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TP [B, K], U [B, K])`` float64 per image over its valid pixels: true positives and unions
    ``U_c = TP_c + FP_c + FN_c`` of every class in ``prediction`` against ``labels``."""
    cm = per_image_confusion(prediction, labels, num_classes, ignore_index=ignore_index).double()  # [B, K, K]
    tp = cm.diagonal(dim1=1, dim2=2)
    return tp, cm.sum(2) + cm.sum(1) - tp  # labelled c + predicted c - both


def iou_class_weights(prediction: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      ignore_index: int) -> torch.Tensor:
    """``[B, K]`` per-image weights of mask-ce-iou: ``w_c = 1 / U_c`` with ``U_c = TP_c + FP_c + FN_c`` the
    union of class c in the image's current prediction (0 where the union is empty). Fooling one more
    correct pixel of class c turns a TP into an FN: the union stays and IoU_c falls by exactly 1 / U_c, so
    w is dIoU_c per pixel, and a class's total weight over its correct pixels is its IoU (TP_c / U_c): the
    classes that still hold the mIoU up get the weight. From the image alone (batch-invariant)."""
    _, union = image_class_counts(prediction, labels, num_classes, ignore_index)
    return torch.where(union > 0, 1.0 / union.clamp_min(1), torch.zeros_like(union)).float()


def image_miou_damage(prediction: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      ignore_index: int) -> torch.Tensor:
    """``[B]`` 1 − the image's mIoU (over the classes in its valid labels or its prediction): the selection
    score of ``select="iou"``, which, unlike pixel accuracy, also counts where wrong pixels go (a pixel
    pulled into a class raises that class's FP)."""
    tp, union = image_class_counts(prediction, labels, num_classes, ignore_index)
    present = union > 0
    miou = (tp / union.clamp_min(1)).sum(1) / present.sum(1).clamp_min(1)
    return (1.0 - miou).float()


def fp_target(prediction: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(k* [B], w [B])``: per image the class whose IoU one more false positive lowers most,
    ``k* = argmax_k TP_k / (U_k (U_k + 1))``, and that drop ``w`` (0 where no class has a true positive)."""
    tp, union = image_class_counts(prediction, labels, num_classes, ignore_index)
    drop = tp / (union * (union + 1)).clamp_min(1)  # IoU_k - TP_k / (U_k + 1)
    w, k = drop.max(1)
    return k, w.float()


def sea_pixel_losses(logits: torch.Tensor, labels: torch.Tensor, loss: str, *, ignore_index: int = 255,
                     class_weights: torch.Tensor | None = None, q: float | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(followed [B], tracked [B])`` of :func:`sea_losses_and_prediction` (without the prediction)."""
    followed, tracked, _ = sea_losses_and_prediction(logits, labels, loss, ignore_index=ignore_index,
                                                     class_weights=class_weights, q=q)
    return followed, tracked


def sea_losses_and_prediction(logits: torch.Tensor, labels: torch.Tensor, loss: str, *, ignore_index: int = 255,
                              class_weights: torch.Tensor | None = None, q: float | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(followed [B], tracked [B], prediction [B, H, W])``: per-image means over the valid pixels of the
    followed loss (with its graph) and of the CE that steers the step size (detached), and the class
    prediction, all from one fused pass over the logits (per-pixel CE and argmax,
    :func:`~.margins.pixel_ce_and_prediction`). Every weight below is a detached per-pixel factor of the CE, so
    the backward is the fused kernel's with that factor as its per-pixel upstream gradient: a step reads the
    ``[B, C, H, W]`` logits twice (forward, backward); the rest works on ``[B, H, W]`` maps.

    - ``ce_avg``: CE; ``mask_ce_avg``: CE on the pixels still correctly classified (mask detached);
    - ``mask_ce_bal``: the same, each pixel weighted by its class's weight (``class_weights`` ``[K]`` or
      ``[B, K]``; default :func:`balanced_class_weights`);
    - ``mask_ce_iou``: the same, each pixel of class c weighted by dIoU_c per pixel at the current
      prediction (:func:`iou_class_weights`, issue 23's mIoU-aimed objective);
    - ``miou``: ``mask_ce_iou`` plus the false-positive term: every valid pixel neither labelled nor predicted
      as the image's :func:`fp_target` class k* is pulled into k* (``− w_FP · CE(z_i, k*)``, w_FP the drop of
      IoU_k* per false positive), which lowers IoU_k* also through pixels that are already wrong (those
      pixel accuracy, and the masked losses, ignore);
    - ``js_avg``: Jensen-Shannon divergence between softmax(z) and the one-hot label, which depends on
      p_y alone: ``log 2 + (p_y log p_y − (1 + p_y) log(1 + p_y)) / 2``;
    - ``tsallis``: TsallisPGD's Tsallis cross-entropy (1 − p_y^(1−q)) / (1 − q) (Matyasko et al., IJCNN
      2026), whose gradient is the CE gradient weighted per pixel by p_y^(1−q): followed here as CE times
      that detached weight, so the gradient (not the value) is the Tsallis one and runs through the fused
      CE op with a per-pixel upstream gradient."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    valid = labels != ignore_index
    ce, prediction = pixel_ce_and_prediction(logits, labels, ignore_index)
    if loss == "ce_avg":
        pix = ce
    elif loss == "tsallis":
        if q is None:
            raise ValueError("the tsallis loss needs q")
        pix = ce * torch.exp(-(1.0 - q) * ce.detach())  # p_y^(1-q) = exp(-(1-q) CE)
    elif loss == "js_avg":
        pix = js_from_ce(ce)
    else:
        correct = (prediction == labels) & valid
        pix = ce * correct
        if loss in ("mask_ce_bal", "mask_ce_iou", "miou"):
            w = class_weights
            if loss in ("mask_ce_iou", "miou"):
                w = iou_class_weights(prediction, labels, logits.shape[1], ignore_index)
            elif w is None:
                w = balanced_class_weights(labels, logits.shape[1], ignore_index)
            w = w.to(pix.device, pix.dtype)
            safe = torch.where(valid, labels, torch.zeros_like(labels))
            pix = pix * (w[safe] if w.dim() == 1 else w.gather(1, safe.flatten(1)).view_as(pix))
        if loss == "miou":  # pull the pixels that are not k* into k*: one more FP of the cheapest class
            k, w_fp = fp_target(prediction, labels, logits.shape[1], ignore_index)  # [B], [B]
            k_map = k.view(-1, 1, 1).expand_as(labels)
            pulled = valid & (labels != k_map) & (prediction != k_map)
            ce_k = pixel_ce(logits, torch.where(pulled, k_map, torch.full_like(labels, ignore_index)), ignore_index)
            pix = pix - w_fp.view(-1, 1, 1).to(pix.dtype) * ce_k * pulled
    return per_image_mean(pix, valid), per_image_mean(ce.detach(), valid), prediction


def salted_seed(seed, salt: int):
    """``seed`` (None, an int or one per image) moved by ``salt``: a different random start per loss."""
    if seed is None or salt == 0:
        return seed
    if isinstance(seed, int):
        return seed * 1_000_003 + salt
    return [int(s) * 1_000_003 + salt for s in (seed.tolist() if isinstance(seed, torch.Tensor) else seed)]


def pixel_accuracy(prediction: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``[B]`` correct / valid pixels of each image (1 for an image without valid pixels: nothing to fool):
    1 − MisRatio, the score :class:`BestIterate` keeps."""
    return 1.0 - mis_ratio_per_image(prediction, labels, ignore_index)


class StageResult(NamedTuple):
    lowest_accuracy: torch.Tensor  # [B, 3, H, W] the iterate with the lowest pixel accuracy (ties: later)
    accuracy: torch.Tensor  # [B] its pixel accuracy
    highest_loss: torch.Tensor  # [B, 3, H, W] the iterate with the highest tracked CE


def apgd_stage(net, x: torch.Tensor, labels: torch.Tensor, x_init: torch.Tensor, *, radius: float, steps: int,
               loss: str, ignore_index: int, class_weights, passes: torch.Tensor, num_classes: int, trace=None,
               stage: int = 0, q_schedule: tuple[float, float] | None = None,
               select: str = "accuracy") -> StageResult:
    """One APGD run of ``steps`` iterations in the ℓ∞ ball of ``radius`` around ``x`` from ``x_init`` (already
    in the ball). ``passes [B]`` counts each image's forward+backward passes; ``trace`` records each
    iteration (``stage`` as its restart index); ``q_schedule`` ``(q_start, q_end)``: the Tsallis q of the
    evaluation at step s (0 the start, i + 1 after iteration i) is linear in s / steps. ``select``: which
    iterate is the stage's result, the lowest pixel accuracy (``"accuracy"``, SEA) or the lowest image mIoU
    (``"iou"``: :func:`image_miou_damage`). ``num_classes``: the model's."""
    b, view = x.shape[0], (-1, 1, 1, 1)

    def keep(best, v, prediction, idx=None):
        rows = labels if idx is None else labels[idx]
        if select == "iou":
            best.update_scores(v, image_miou_damage(prediction, rows, num_classes, ignore_index), index=idx)
        else:
            best.update(v, prediction, rows, ignore_index, index=idx)
        # an image stops once an iterate has every valid pixel wrong (from the prediction: a score near 1
        # may round to 1 in float32)
        all_wrong = ~((prediction == rows) & (rows != ignore_index)).flatten(1).any(1)
        fooled[slice(None) if idx is None else idx] |= all_wrong

    lo, hi = (x - radius).clamp_min(0.0), (x + radius).clamp_max(1.0)

    def evaluate(v, idx, step, need_grad=True):
        """Followed and tracked loss, gradient and prediction of the images ``idx`` at ``v`` [len(idx), ...]."""
        v = v.detach().requires_grad_(need_grad)
        w = class_weights[idx] if class_weights is not None and class_weights.dim() == 2 else class_weights
        q = None
        if q_schedule is not None:
            q = q_schedule[0] + (q_schedule[1] - q_schedule[0]) * min(step / max(steps, 1), 1.0)
        with torch.enable_grad():
            logits = logits_at(net(v), labels.shape[-2:])
            follow, track, prediction = sea_losses_and_prediction(logits, labels[idx], loss, ignore_index=ignore_index,
                                                                  class_weights=w, q=q)
            g = torch.autograd.grad(follow.sum(), v)[0] if need_grad else None
        passes[idx] += 1
        return track, g, prediction

    everyone = torch.arange(b, device=x.device)
    x_cur = x_init.detach().clone()
    track, grad, pred = evaluate(x_cur, everyone, 0)
    best = BestIterate(x_cur, ties="replace")  # lowest accuracy = highest MisRatio; ties: the later iterate
    fooled = torch.zeros(b, dtype=torch.bool, device=x.device)
    keep(best, x_cur, pred)
    has_valid = (labels != ignore_index).flatten(1).any(1)
    x_best, g_best, loss_best = x_cur.clone(), grad.clone(), track.clone()
    x_prev, prev_track = x_cur.clone(), track.clone()
    eta = torch.full((b,), 2.0 * radius, device=x.device, dtype=x.dtype)
    checks = sea_checkpoints(steps)
    increases = torch.zeros(b, device=x.device)
    reduced_last_check = torch.ones(b, dtype=torch.bool, device=x.device)
    best_at_last_check, last_check = loss_best.clone(), -1
    for i in range(steps):
        active = (~fooled & has_valid).nonzero().squeeze(1)  # stop once every valid pixel is wrong
        if active.numel() == 0:
            break
        a = 1.0 if i == 0 else MOMENTUM
        xc, xp, gc = x_cur[active], x_prev[active], grad[active]
        z = torch.min(torch.max(xc + eta[active].view(view) * gc.sign(), lo[active]), hi[active])
        x_next = torch.min(torch.max(xc + a * (z - xc) + (1 - a) * (xc - xp), lo[active]), hi[active])
        last = i == steps - 1
        t_next, g_next, p_next = evaluate(x_next, active, i + 1, need_grad=not last)
        x_prev[active], x_cur[active] = xc, x_next
        if g_next is not None:
            grad[active] = g_next
        increases[active] += (t_next > prev_track[active]).float()
        prev_track[active] = t_next
        keep(best, x_next, p_next, active)
        pred[active] = p_next
        up = t_next > loss_best[active]
        idx_up = active[up]
        loss_best[idx_up], x_best[idx_up] = t_next[up], x_next[up]
        if g_next is not None:
            g_best[idx_up] = g_next[up]
        if trace is not None:
            trace.record_step(stage, t_next.sum(), pred, labels, ignore_index)
        if i in checks:
            halve = halve_step_size(increases, i - last_check, reduced_last_check, loss_best, best_at_last_check)
            eta = torch.where(halve, eta / 2, eta)
            x_cur = torch.where(halve.view(view), x_best, x_cur)
            grad = torch.where(halve.view(view), g_best, grad)
            reduced_last_check, best_at_last_check, last_check = halve, loss_best.clone(), i
            increases.zero_()
    return StageResult(best.x, 1.0 - best.score, x_best)


def apgd_radius_reduction(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float, steps: int,
                          loss: str, handover: str = "accuracy", q_schedule: tuple[float, float] | None = None,
                          class_weights: torch.Tensor | str | None = None, seed=None, ignore_index: int = 255,
                          normalization: tuple | None = None, eval_mode: bool = True, trace=None,
                          trace_restart: int = 0, passes: torch.Tensor | None = None,
                          final_loss: str | None = None, select: str = "accuracy") -> torch.Tensor:
    """APGD with progressive radius reduction (2ε, 1.5ε, ε over 0.3/0.3/0.4 of ``steps``), the loop of SEA and
    of TsallisPGD. A stage hands its lowest-accuracy point (``handover="accuracy"``, SEA) or its
    highest-CE point (``"loss"``, TsallisPGD) to the next; the last stage returns its lowest-accuracy point.
    ``final_loss``: another loss for the last stage (at ε), e.g. a class-balanced start followed by the
    mIoU-aimed ``mask_ce_iou`` on what it left (issue 23's scheduling between objectives). ``select``: each
    stage's result by pixel accuracy (``"accuracy"``, SEA) or by the image's mIoU (``"iou"``)."""
    labels = check_attack_inputs(model, images, labels, eps=eps, alpha=0.0, steps=steps)
    for name, value in (("loss", loss), ("final_loss", final_loss or loss)):
        if value not in LOSSES:
            raise ValueError(f"{name} must be one of {LOSSES}, got {value!r}")
    if select not in SELECT:
        raise ValueError(f"select must be one of {SELECT}, got {select!r}")
    if class_weights is not None and {loss, final_loss} & {"mask_ce_iou", "miou"}:
        raise ValueError("class_weights apply to mask_ce_bal only: mask_ce_iou and miou weigh the classes by "
                         "their IoU in the current prediction")
    if handover not in ("accuracy", "loss"):
        raise ValueError(f"handover must be 'accuracy' or 'loss', got {handover!r}")
    if steps < len(RADIUS_STAGES):
        raise ValueError(f"{loss} APGD needs at least {len(RADIUS_STAGES)} steps (one per radius stage), got {steps}")
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    x = images.detach()
    b = x.shape[0]
    passes = passes if passes is not None else torch.zeros(b, dtype=torch.long, device=x.device)
    with frozen_for_attack(model, eval_mode=eval_mode):
        with torch.no_grad():
            num_classes = logits_at(net(x[:1]), labels.shape[-2:]).shape[1]
        check_label_range(labels, num_classes, ignore_index)
        if isinstance(class_weights, str):
            class_weights = dataset_class_weights(class_weights, num_classes)
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32).to(x.device)
            if class_weights.shape not in ((num_classes,), (b, num_classes)):
                raise ValueError(f"class_weights must have one weight per class ([{num_classes}] or "
                                 f"[{b}, {num_classes}]), got shape {tuple(class_weights.shape)}")
        # each loss its own random start (as the released code, which draws every run's start afresh)
        generators = per_image_generators(salted_seed(seed, LOSSES.index(loss)), b, x.device)
        start = uniform(x.shape, generators, x.device, x.dtype) * 2 - 1
        x_init = (x + start * RADIUS_STAGES[0][0] * eps).clamp(0.0, 1.0)
        stages = list(zip(RADIUS_STAGES, stage_iterations(steps)))
        for stage, ((mult, _), n) in enumerate(stages):
            r = mult * eps
            x_init = project(x_init, x, r, "linf")  # warm start, projected into this ball
            if n == 0:  # N < 4 leaves the first stages no iteration: they would only score their start
                continue
            last = stage == len(stages) - 1
            stage_loss = final_loss if (last and final_loss is not None) else loss
            result = apgd_stage(net, x, labels, x_init, radius=r, steps=n, loss=stage_loss, ignore_index=ignore_index,
                                class_weights=class_weights, passes=passes, trace=trace,
                                stage=trace_restart + stage, q_schedule=q_schedule, select=select,
                                num_classes=num_classes)
            x_init = result.lowest_accuracy if (last or handover == "accuracy") else result.highest_loss
    return x_init


def sea_apgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float = 8 / 255,
             steps: int = 300, loss: str = "mask_ce_bal", class_weights: torch.Tensor | str | None = None,
             seed=None, ignore_index: int = 255, normalization: tuple | None = None, eval_mode: bool = True,
             trace=None, trace_restart: int = 0, passes: torch.Tensor | None = None, final_loss: str | None = None,
             select: str = "accuracy", **unused) -> torch.Tensor:
    """One loss of SEA: APGD with progressive radius reduction (2ε, 1.5ε, ε over 0.3/0.3/0.4 of ``steps``).
    Returns adversarial images ``[B, 3, H, W]`` within the ℓ∞ ball of radius ``eps`` (the lowest pixel
    accuracy of the last stage). ``passes`` (a ``[B]`` int tensor) accumulates each image's
    forward+backward passes; ``trace`` records every iteration, the radius stages as restarts
    ``trace_restart``, ``+1``, ``+2``. ``class_weights`` (mask-ce-bal): ``"voc"`` / ``"ade20k"`` for SEA's
    published weights, a ``[K]`` tensor, or None for the per-image rule. ``final_loss``: the loss of the last
    radius stage if not ``loss`` (``loss="mask_ce_bal", final_loss="mask_ce_iou"``). ``select="iou"`` returns
    per image the iterate with the lowest image mIoU instead of the lowest pixel accuracy. ``alpha`` is not
    used: APGD sets its own step size."""
    unused.pop("alpha", None)
    reject_unknown_options(unused, "sea_apgd")
    return apgd_radius_reduction(model, images, labels, eps=eps, steps=steps, loss=loss, handover="accuracy",
                                 class_weights=class_weights, seed=seed, ignore_index=ignore_index,
                                 normalization=normalization, eval_mode=eval_mode, trace=trace,
                                 trace_restart=trace_restart, passes=passes, final_loss=final_loss, select=select)


def tsallis_pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float = 8 / 255,
                steps: int = 300, q_start: float = -2.0, q_end: float = 1.0, seed=None, ignore_index: int = 255,
                normalization: tuple | None = None, eval_mode: bool = True, trace=None,
                passes: torch.Tensor | None = None, **unused) -> torch.Tensor:
    """TsallisPGD (Matyasko et al., IJCNN 2026; aam-at/tsallis_pgd): the APGD loop with radius reduction above,
    following the Tsallis cross-entropy gradient p_y^(1−q) (p − e_y) with q linear from ``q_start`` to
    ``q_end`` over each radius stage (restarting every stage), the step size steered by the CE, no pixel mask
    and no class weights; stages 1 and 2 hand over their highest-CE point, the last returns its lowest pixel
    accuracy. Returns adversarial images ``[B, 3, H, W]`` within the ℓ∞ ball of radius ``eps``."""
    unused.pop("alpha", None)
    reject_unknown_options(unused, "tsallis_pgd")
    return apgd_radius_reduction(model, images, labels, eps=eps, steps=steps, loss="tsallis", handover="loss",
                                 q_schedule=(q_start, q_end), seed=seed, ignore_index=ignore_index,
                                 normalization=normalization, eval_mode=eval_mode, trace=trace, passes=passes)


def sea(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float = 8 / 255, steps: int = 300,
        losses: tuple[str, ...] = SEA_LOSSES, class_weights: torch.Tensor | str | None = None, seed=None,
        ignore_index: int = 255, normalization: tuple | None = None, eval_mode: bool = True, trace=None,
        passes: torch.Tensor | None = None, **unused) -> torch.Tensor:
    """SEA: :func:`sea_apgd` with each of ``losses`` (``steps`` iterations each), and per image the result with
    the lowest pixel accuracy (ties: the earlier loss). Returns adversarial images ``[B, 3, H, W]``; ``trace``
    records the losses' stages as restarts 0-2, 3-5, 6-8."""
    unused.pop("alpha", None)
    reject_unknown_options(unused, "sea")
    net = NormalizedModel(model, *normalization) if normalization is not None else model
    worst, worst_acc = images.detach().clone(), torch.full((images.shape[0],), 2.0, device=images.device)
    for loss in losses:
        adv = sea_apgd(model, images, labels, eps=eps, steps=steps, loss=loss, class_weights=class_weights,
                       seed=seed, ignore_index=ignore_index, normalization=normalization, eval_mode=eval_mode,
                       trace=trace, trace_restart=len(RADIUS_STAGES) * losses.index(loss), passes=passes)
        with frozen_for_attack(model, eval_mode=eval_mode), torch.no_grad():
            acc = pixel_accuracy(class_prediction(logits_at(net(adv), labels.shape[-2:])), labels, ignore_index)
        better = acc < worst_acc
        worst_acc = torch.where(better, acc, worst_acc)
        worst = torch.where(better.view(-1, 1, 1, 1), adv, worst)
    return worst
