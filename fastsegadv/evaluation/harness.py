"""Robustness evaluation of a model on a dataset under a list of attacks × iteration budgets: the numbers
behind 001 Tables 1-2 / 003 Tables 4-5 (Clean, attack columns), 001 Fig. 2 (mIoU vs iterations),
001 Fig. 1 (MisRatio and loss per iteration), a per-image worst case over the attacks, and what each
attack cost.

    result = evaluate_model(model, dataset, EvalConfig(attacks=["pgd@10", "segpgd@10"]), num_classes=11)
    write_report([result], "report/")       # robustness.md/.csv/.json, curves_*.png, per_image.csv

Every image gets its own random-start seed ``f(seed, dataset index)`` and batches are dealt round-robin
to the ranks under ``torchrun``; all counts are integer confusion matrices summed over ranks, so the
table does not depend on the number of processes.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from tqdm import tqdm

from ..attacks.model_io import NonFiniteLogitsError
from ..attacks.perturbation import perturbation_norms
from ..attacks.registry import AttackSpec
from ..attacks.sea import SEA_LOSSES
from ..attacks.trace import AttackTrace
from ..attacks.validation import check_unit_scale
from ..distributed.context import DistContext, all_gather_objects, all_reduce_sum, init_distributed
from ..distributed.sharding import batch_ranges, collate, image_seed
from ..metrics import ConfusionMatrix, per_image_confusion
from ..outputs import class_prediction, logits_at

DEFAULT_ATTACKS = ("pgd@10", "pgd@20", "segpgd@10", "segpgd@20", "rp_pgd@10", "rp_pgd@20")
# evaluation tiers: (attacks, eps values on the 0-255 scale)
TIERS = {
    # as SemSegBench runs it: 20 iterations of PGD, SegPGD, CosPGD and APGD (cheap, optimistic)
    "quick": (("pgd@20", "segpgd@20", "cospgd@20", "apgd@20"), (4.0, 8.0)),
    # the library's ensemble at 1200 passes per image: faithful SEA (300 iterations of each of its three losses,
    # Croce, Singh, Hein, ECCV 2024) and PAdam-Cos (Halmosi et al. 2024) for 300, later members skipping
    # the images already fooled completely
    "reliable": (("ensemble@1200",), (4.0, 8.0)),
}


@dataclass
class EvalConfig:
    """What :func:`evaluate_model` runs (also the keys of ``fastsegadv evaluate --config``)."""

    attacks: list = field(default_factory=lambda: list(DEFAULT_ATTACKS))  # "name@steps" or AttackSpec
    eps: float = 8 / 255  # ℓ∞ budget, [0, 1] scale (ℓ2 attacks: their own eps via options)
    alpha: float | None = None  # shared step size; None: each attack's paper default (I-FGSM 1/255, PGD 0.01)
    batch_size: int = 16
    seed: int = 0
    ignore_index: int = 255
    curves: bool = True  # per-iteration confusion matrices for the mIoU / MisRatio / loss curves
    greedy_miou: bool = True  # also the per-image choice of attack that minimises the dataset mIoU
    progress: bool = True
    # the dataset, when SEA published class weights for it ("voc", "ade20k"): the presets' mask-ce-bal uses them
    class_weights: str | None = None
    # labels of attacks that skip images an earlier attack fooled completely (set from the ensemble@N presets)
    stop_fooled: set = field(default_factory=set, init=False)

    def __post_init__(self):
        attacks = []
        for item in self.attacks:
            members = expand_preset(item, class_weights=self.class_weights)
            specs = [a if isinstance(a, AttackSpec) else AttackSpec.parse(a) for a in members]
            if preset_name(item) == "ensemble":
                self.stop_fooled.update(a.label for a in specs[1:])
            attacks += specs
        self.attacks = attacks
        labels = [a.label for a in self.attacks]
        if len(set(labels)) != len(labels):
            raise ValueError(f"attacks listed twice: {labels}")
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")
        check_unit_scale(eps=self.eps, **({} if self.alpha is None else {"alpha": self.alpha}))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


# ensemble@N: how the harness spends N passes per image. Its members in order, each given up to
# ENSEMBLE_RUN passes of what is left (SEA's own iteration count), a member skipping the images an earlier
# one fooled completely. Measured (README, "Evaluation tiers"): on both shipped AT models, at 4/255 and
# 8/255, one long run of SEA's class-balanced masked-CE APGD with radius reduction beat every split of 150
# passes between it and PAdam-Cos, SEA's other losses or PAdam-CE in 3 of the 4 cases and on average
# (the radius schedule needs long runs), so budgets up to ENSEMBLE_RUN go to it alone.
ENSEMBLE = ("sea_apgd:loss='mask_ce_bal'", "padam:loss='cos'", "sea_apgd:loss='js_avg'", "sea_apgd:loss='mask_ce_avg'")
ENSEMBLE_RUN = 300


def preset_name(item) -> str | None:
    """``"sea"`` or ``"ensemble"`` for those presets' specs (``"sea@N"``, ``"ensemble"``), else None."""
    name = item.split("@")[0] if isinstance(item, str) else None
    return name if name in ("sea", "ensemble") else None


def bal_weights(loss: str, class_weights: str | None) -> str:
    """The spec option that gives mask-ce-bal SEA's published weights of a known dataset ('' otherwise)."""
    return f",class_weights={class_weights!r}" if class_weights and loss == "mask_ce_bal" else ""


def expand_preset(item, *, class_weights: str | None = None):
    """Presets that stand for several attacks, so that the worst case per image and the greedy dataset-mIoU
    worst case are taken over their members (their passes add up in the report):

    - ``"sea@N"`` (N = 300 by default): SEA (Croce, Singh, Hein, ECCV 2024) as its three attacks, APGD with
      radius reduction on each of its losses at N iterations (:func:`fastsegadv.attacks.sea_apgd`): 3N passes;
    - ``"ensemble@N"`` (N = 150 by default): the library's budgeted ensemble, at most N passes per image in
      total: :data:`ENSEMBLE`'s members in order, each given up to :data:`ENSEMBLE_RUN` of the passes left
      (SEA's members need at least 3); a later member skips images already fooled completely.
    ``class_weights`` (``"voc"``, ``"ade20k"``): SEA's published weights for the members' mask-ce-bal.
    Anything else: ``[item]``."""
    if preset_name(item) == "sea":
        steps = item.partition("@")[2] or "300"
        return [f"sea_apgd:loss='{loss}'{bal_weights(loss, class_weights)}@{steps}" for loss in SEA_LOSSES]
    if preset_name(item) == "ensemble":
        total = int(item.partition("@")[2] or "150")
        if total < 3:
            raise ValueError(f"ensemble@N needs N >= 3 passes per image, got {total}")
        members, left = [], total
        for spec in ENSEMBLE:
            n = min(left, ENSEMBLE_RUN)
            if n < 3:  # SEA's members need one iteration per radius stage
                break
            loss = spec.split("'")[1]
            members.append(f"{spec}{bal_weights(loss, class_weights)}@{n}")
            left -= n
        return members
    return [item]


def greedy_worst_miou(per_image: torch.Tensor, start: torch.Tensor, *, passes: int = 3) -> torch.Tensor:
    """Per image the attack whose result minimises the dataset mIoU given the others' choices (coordinate
    descent from ``start``). per_image ``[N, A, C, C]`` confusion counts; returns the choice ``[N]``."""
    choice = start.clone()
    n = per_image.shape[0]
    total = per_image[torch.arange(n), choice].sum(0)  # [C, C]
    for _ in range(passes):
        changed = False
        for i in range(n):
            cand = total.unsqueeze(0) - per_image[i, choice[i]] + per_image[i]  # [A, C, C]
            m = cand.double()
            tp = m.diagonal(dim1=1, dim2=2)
            union = m.sum(1) + m.sum(2) - tp
            iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
            miou = torch.nanmean(iou, dim=1)  # [A]
            best = int(torch.argmin(torch.nan_to_num(miou, nan=float("inf"))))
            if miou[best] < miou[choice[i]] - 1e-15:
                total = cand[best]
                choice[i] = best
                changed = True
        if not changed:
            break
    return choice


def add_curves(total: torch.Tensor | None, part: torch.Tensor | None) -> torch.Tensor | None:
    """Sum of two per-iteration curves ``[T, ...]`` (None: absent). A shorter one — an attack whose images all
    stopped early, fooled — stays at its last value for the iterations it did not run."""
    if part is None or len(part) == 0:
        return total
    if total is None:
        return part.clone()
    n = max(len(total), len(part))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t[-1:].expand(n - len(t), *t.shape[1:])]) if len(t) < n else t

    return pad(total) + pad(part.to(total.device))


def honest_prediction(logits: torch.Tensor, labels: torch.Tensor,
                      num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class prediction ``[B, H, W]`` where a pixel whose logits are not all finite is counted wrong (a
    class other than its label), and per image whether that happened ``[B]``: NaN logits never count
    as robust (an argmax of NaN can land on the right class)."""
    pred = class_prediction(logits)
    bad = ~torch.isfinite(logits).all(1)  # [B, H, W]
    if bool(bad.any()):
        pred = torch.where(bad, everything_wrong(labels, num_classes), pred)
    return pred, bad.flatten(1).any(1)


def everything_wrong(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A prediction ``[B, H, W]`` wrong at every pixel (the result of an image whose attack failed on
    non-finite logits: never counted as robust)."""
    return (labels.clamp(0, num_classes - 1) + 1) % num_classes


def run_with_non_finite_check(spec: AttackSpec, model, x, y, *, seeds: list, trace, **kwargs):
    """``spec.run`` on the batch; where the model returns non-finite logits during it, each image again on
    its own (the attacks are batch-invariant), so only the images that cause it are flagged. Returns the
    adversarial images, the flags ``[b]`` and the trace (None when the batch had to be split)."""
    flagged = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    try:
        return spec.run(model, x, y, seed=seeds, trace=trace, **kwargs), flagged, trace
    except NonFiniteLogitsError:
        adv = x.clone()
        for i in range(x.shape[0]):
            one = {k: v[i:i + 1] if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
            try:
                adv[i:i + 1] = spec.run(model, x[i:i + 1], y[i:i + 1], seed=seeds[i:i + 1], trace=None, **one)
            except NonFiniteLogitsError:
                flagged[i] = True
        return adv, flagged, None


def eval_seed(seed: int, index: int) -> int:
    """Random-start seed of dataset item ``index`` in an evaluation."""
    return image_seed(seed, index, salt=1)


class CallCounter:
    """Counts image-forwards and image-backwards through a model (hooks; removed by :meth:`close`)."""

    def __init__(self, model: nn.Module):
        self.forwards = 0
        self.backwards = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        x = inputs[0]
        self.forwards += x.shape[0]
        if x.requires_grad:
            n = x.shape[0]

            def count(grad):
                self.backwards += n

            x.register_hook(count)

    def close(self) -> None:
        self._handle.remove()


@dataclass
class AttackResult:
    spec: AttackSpec
    confusion: ConfusionMatrix
    forwards: int = 0
    backwards: int = 0
    seconds: float = 0.0
    curve_confusion: torch.Tensor | None = None  # [T + 1, C, C]: iterate 0..T
    curve_loss: torch.Tensor | None = None  # [T] summed over images
    curve_images: int = 0
    l2_sum: float = 0.0  # sums over images of the perturbation norms
    linf_sum: float = 0.0


@dataclass
class ModelResult:
    """Everything :func:`write_report` needs for one model (all ranks' counts already summed)."""

    name: str
    num_images: int
    clean: ConfusionMatrix
    attacks: list
    worst: ConfusionMatrix
    per_image: list  # dicts: index, clean_acc, <label>_acc ..., worst_attack
    config: EvalConfig
    worst_miou: ConfusionMatrix | None = None  # greedy per-image choice minimising the dataset mIoU

    def row(self) -> dict:
        """``{"model", "Clean", "<label>": mIoU %, ..., "Worst-case": mIoU %}`` (001 Table 1 layout)."""
        r = {"model": self.name, "Clean": 100 * self.clean.miou()}
        for a in self.attacks:
            r[a.spec.label] = 100 * a.confusion.miou()
        if len(self.attacks) > 1:
            r["Worst-case"] = 100 * self.worst.miou()
            if self.worst_miou is not None:
                r["Worst-case (mIoU)"] = 100 * self.worst_miou.miou()
        return r

    def details(self) -> list[dict]:
        """Per column: mIoU, pixel accuracy, MisRatio, IoU Ratio and cost per image."""
        clean_miou = self.clean.miou()
        out = [
            {
                "model": self.name,
                "attack": "Clean",
                "miou": clean_miou,
                "pixel_accuracy": self.clean.pixel_accuracy(),
                "mis_ratio": self.clean.mis_ratio(),
                "iou_ratio": 1.0,
            }
        ]
        for a in self.attacks:
            m = a.confusion.miou()
            out.append(
                {
                    "model": self.name,
                    "attack": a.spec.label,
                    "miou": m,
                    "pixel_accuracy": a.confusion.pixel_accuracy(),
                    "mis_ratio": a.confusion.mis_ratio(),
                    "iou_ratio": m / clean_miou if clean_miou > 0 else float("nan"),
                    "l2_norm": a.l2_sum / self.num_images,
                    "linf_norm": a.linf_sum / self.num_images,
                    "forwards_per_image": a.forwards / self.num_images,
                    "backwards_per_image": a.backwards / self.num_images,
                    "seconds_per_image": a.seconds / self.num_images,
                }
            )
        if len(self.attacks) > 1:
            m = self.worst.miou()
            out.append(
                {
                    "model": self.name,
                    "attack": "Worst-case",
                    "miou": m,
                    "pixel_accuracy": self.worst.pixel_accuracy(),
                    "mis_ratio": self.worst.mis_ratio(),
                    "iou_ratio": m / clean_miou if clean_miou > 0 else float("nan"),
                    "forwards_per_image": sum(a.forwards for a in self.attacks) / self.num_images,
                    "backwards_per_image": sum(a.backwards for a in self.attacks) / self.num_images,
                    "seconds_per_image": sum(a.seconds for a in self.attacks) / self.num_images,
                }
            )
            if self.worst_miou is not None:
                m = self.worst_miou.miou()
                out.append(
                    {
                        "model": self.name,
                        "attack": "Worst-case (mIoU)",
                        "miou": m,
                        "pixel_accuracy": self.worst_miou.pixel_accuracy(),
                        "mis_ratio": self.worst_miou.mis_ratio(),
                        "iou_ratio": m / clean_miou if clean_miou > 0 else float("nan"),
                    }
                )
        return out

    def curves(self) -> dict:
        """Per attack label: ``{"iteration": [0..T], "miou": [...], "mis_ratio": [...], "loss": [...]}``."""
        out = {}
        for a in self.attacks:
            if a.curve_confusion is None or len(a.curve_confusion) < 2:  # no iteration recorded
                continue
            cms = [
                ConfusionMatrix(self.clean.num_classes, ignore_index=self.config.ignore_index)
                for _ in a.curve_confusion
            ]
            for cm, m in zip(cms, a.curve_confusion):
                cm.matrix = m
            out[a.spec.label] = {
                "iteration": list(range(len(cms))),
                "miou": [cm.miou() for cm in cms],
                "mis_ratio": [cm.mis_ratio() for cm in cms],
                "loss": [float(v) / max(a.curve_images, 1) for v in (a.curve_loss if a.curve_loss is not None
                                                                       else [])],  # at iterates 0..T-1
            }
        return out


def evaluate_model(
    model: nn.Module,
    dataset,
    config: EvalConfig | None = None,
    *,
    num_classes: int,
    name: str = "model",
    ctx: DistContext | None = None,
    forward=None,
) -> ModelResult:
    """Clean and attacked metrics of ``model`` (eval mode) over ``dataset`` (map-style ``(image [3, H, W]
    in [0, 1], label [H, W])``). ``forward``: optional ``x -> logits`` used for the final predictions
    (defaults to the model; logits at a lower resolution are upsampled)."""
    cfg = config or EvalConfig()
    ctx = ctx or init_distributed()
    device = ctx.device
    model.to(device).eval()
    c, ign = num_classes, cfg.ignore_index
    clean = ConfusionMatrix(c, ignore_index=ign, device=device)
    worst = ConfusionMatrix(c, ignore_index=ign, device=device)
    results = [AttackResult(spec, ConfusionMatrix(c, ignore_index=ign, device=device)) for spec in cfg.attacks]
    per_image = []
    predict = forward or model
    batches = batch_ranges(len(dataset), cfg.batch_size, ctx)
    bar = tqdm(
        total=len(batches) * (1 + len(results)),
        desc=f"evaluate {name}",
        disable=not (cfg.progress and ctx.is_main),
        dynamic_ncols=True,
    )
    counter = CallCounter(model)
    flagged_images = []  # images whose logits were NaN/inf somewhere: counted wrong there, never robust
    try:
        for _, start, stop in batches:
            x, y = collate(dataset, range(start, stop), device)  # [b, 3, H, W], [b, H, W]
            seeds = [eval_seed(cfg.seed, i) for i in range(start, stop)]
            with torch.no_grad():
                pred, non_finite = honest_prediction(logits_at(predict(x), y.shape[-2:]), y, c)
            clean.update(pred, y)  # also checks the labels' range
            per_img = per_image_confusion(pred, y, c, ignore_index=ign)  # [b, C, C]
            valid = per_img.sum((1, 2)).clamp_min(1)
            correct = per_img.diagonal(dim1=1, dim2=2).sum(1)  # [b] correctly predicted valid pixels
            records = [{"index": i, "clean_acc": float(a)}
                       for i, a in zip(range(start, stop), (correct / valid).tolist())]
            attack_non_finite = torch.zeros_like(non_finite)
            # the clean image is a candidate of the worst case (an attacker can always submit it; AutoAttack
            # counts clean errors as robust errors): an attack replaces it only where it does strictly worse
            worst_acc = correct.double() / valid
            worst_cm = per_img.clone()
            worst_name = ["Clean"] * len(seeds)
            attack_cms = []  # per attack [b, C, C]
            bar.update(1)
            for res in results:
                trace = AttackTrace(num_classes=c, ignore_index=ign) if cfg.curves else None
                f0, b0 = counter.forwards, counter.backwards
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                # RP-PGD needs the clean prediction for its region state: reuse ours (one forward less)
                extra = {"clean_prediction": pred} if res.spec.name == "rp_pgd" and forward is None else {}
                # an ensemble's later members skip the images an earlier attack already fooled completely
                run = ((worst_acc > 0).nonzero().squeeze(1) if res.spec.label in cfg.stop_fooled
                       else torch.arange(len(seeds), device=device))
                adv = x.clone()
                failed = torch.zeros_like(non_finite)
                if run.numel():
                    adv[run], failed[run], trace = run_with_non_finite_check(
                        res.spec, model, x[run], y[run], eps=cfg.eps, alpha=cfg.alpha,
                        seeds=[seeds[i] for i in run.tolist()], ignore_index=ign, trace=trace,
                        **({k: v[run] for k, v in extra.items()}),
                    )
                with torch.no_grad():
                    adv_pred, adv_bad = honest_prediction(logits_at(predict(adv), y.shape[-2:]), y, c)
                    adv_pred = torch.where(failed.view(-1, 1, 1), everything_wrong(y, c), adv_pred)
                attack_non_finite |= adv_bad | failed
                if device.type == "cuda":
                    torch.cuda.synchronize()
                res.seconds += time.perf_counter() - t0
                res.forwards += counter.forwards - f0
                res.backwards += counter.backwards - b0
                cm_img = per_image_confusion(adv_pred, y, c, ignore_index=ign)  # [b, C, C]
                skipped = torch.ones(len(seeds), dtype=torch.bool, device=device)
                skipped[run] = False
                cm_img[skipped] = worst_cm[skipped]  # a skipped image keeps its fully fooled result
                res.confusion.matrix += cm_img.sum(0)
                norms = perturbation_norms(adv, x)
                res.l2_sum += float(norms["l2"].sum())
                res.linf_sum += float(norms["linf"].sum())
                if cfg.greedy_miou:
                    attack_cms.append(cm_img)
                acc = cm_img.diagonal(dim1=1, dim2=2).sum(1).double() / valid
                for rec, a in zip(records, acc.tolist()):
                    rec[f"{res.spec.label}_acc"] = a
                better = acc < worst_acc
                worst_acc = torch.where(better, acc, worst_acc)
                worst_cm = torch.where(better.view(-1, 1, 1), cm_img, worst_cm)
                worst_name = [res.spec.label if bt else w for bt, w in zip(better.tolist(), worst_name)]
                if trace is not None:
                    # [T+1, C, C]: the images that ran at each iterate, the skipped ones as they were fooled
                    curve = torch.stack(trace.confusion + [cm_img[run].sum(0)]) + cm_img[skipped].sum(0)
                    res.curve_confusion = add_curves(res.curve_confusion, curve)
                    if trace.loss:
                        loss = torch.stack([v.double() * run.numel() for v in trace.loss])  # batch means -> sums
                        res.curve_loss = add_curves(res.curve_loss, loss)
                        res.curve_images += run.numel()
                bar.update(1)
            worst.matrix = worst.matrix + (worst_cm.sum(0) if results else per_img.sum(0))
            for rec, wname, bad in zip(records, worst_name, (non_finite | attack_non_finite).tolist()):
                rec["worst_attack"] = wname
                rec["non_finite_logits"] = bad
                if bad:
                    flagged_images.append(rec["index"])
            if attack_cms:
                labels_order = ["Clean"] + [r.spec.label for r in results]
                stacked = torch.stack([per_img] + attack_cms, 1).cpu()  # [b, 1 + A, C, C]: clean first
                for j, rec in enumerate(records):
                    rec["_cms"] = stacked[j]
                    rec["_start"] = labels_order.index(rec["worst_attack"])
            per_image.extend(records)
    finally:
        counter.close()
        bar.close()
    if flagged_images:
        warnings.warn(f"{name}: the model returned NaN or infinite logits on {len(flagged_images)} image(s) "
                      f"(first: {flagged_images[:5]}); their pixels with such logits, and every pixel of an image "
                      "whose attack met them, are counted as wrong (never robust); per_image.csv flags them "
                      "(non_finite_logits)", stacklevel=2)
    result = _reduce(ModelResult(name, len(dataset), clean, results, worst, per_image, cfg), ctx)
    _greedy(result)
    return result


def _greedy(r: ModelResult) -> None:
    """Fill ``worst_miou`` from the per-image confusions (then dropped from the records). The candidates of
    each image are its clean prediction (index 0) and every attack's result."""
    recs = [p for p in r.per_image if "_cms" in p]
    if len(r.attacks) > 1 and recs and len(recs) == len(r.per_image):
        cms = torch.stack([p["_cms"] for p in recs])  # [N, 1 + A, C, C]
        n, a = cms.shape[:2]
        # from the pixel-accuracy choice and from "every image with attack k": never weaker than a member
        starts = [torch.tensor([p["_start"] for p in recs])] + [torch.full((n,), k) for k in range(1, a)]
        best = None
        for start in starts:
            choice = greedy_worst_miou(cms, start)
            cm = ConfusionMatrix(r.clean.num_classes, ignore_index=r.config.ignore_index)
            cm.matrix = cms[torch.arange(n), choice].sum(0)
            if best is None or cm.miou() < best[1].miou():
                best = (choice, cm)
        choice, r.worst_miou = best
        labels = ["Clean"] + [res.spec.label for res in r.attacks]
        for p, k in zip(recs, choice.tolist()):
            p["worst_attack_miou"] = labels[k]
    for p in r.per_image:
        p.pop("_cms", None)
        p.pop("_start", None)


def _reduce(r: ModelResult, ctx: DistContext) -> ModelResult:
    """Sum every count over ranks and gather the per-image records (sorted by index)."""
    if not ctx.enabled:
        return r
    all_reduce_sum(r.clean.matrix, ctx)
    all_reduce_sum(r.worst.matrix, ctx)
    for a in r.attacks:
        all_reduce_sum(a.confusion.matrix, ctx)
        costs = torch.tensor([a.forwards, a.backwards, a.curve_images], dtype=torch.int64, device=ctx.device)
        all_reduce_sum(costs, ctx)
        a.forwards, a.backwards, a.curve_images = (int(v) for v in costs.tolist())
        secs = torch.tensor([a.seconds, a.l2_sum, a.linf_sum], dtype=torch.float64, device=ctx.device)
        all_reduce_sum(secs, ctx)  # seconds summed over ranks: total compute time
        a.seconds, a.l2_sum, a.linf_sum = (float(v) for v in secs.tolist())
        # ranks' curves can differ in length (attacks stop early) or be missing: gathered, not all-reduced
        parts = all_gather_objects(
            [None if t is None else t.cpu() for t in (a.curve_confusion, a.curve_loss)], ctx)
        a.curve_confusion, a.curve_loss = None, None
        for confusion, loss in parts:
            a.curve_confusion = add_curves(a.curve_confusion, confusion)
            a.curve_loss = add_curves(a.curve_loss, loss)
    r.per_image = sorted(
        (rec for part in all_gather_objects(r.per_image, ctx) for rec in part), key=lambda d: d["index"]
    )
    return r


def evaluate_models(
    models: Sequence[tuple[str, nn.Module]],
    dataset,
    config: EvalConfig,
    *,
    num_classes: int,
    ctx: DistContext | None = None,
) -> list[ModelResult]:
    """:func:`evaluate_model` for each ``(name, model)``."""
    ctx = ctx or init_distributed()
    return [evaluate_model(m, dataset, config, num_classes=num_classes, name=n, ctx=ctx) for n, m in models]
