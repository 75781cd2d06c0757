"""The complete adversarial-training loop (001 Algorithm 2; 003 §4): any attack as the inner attack,
auxiliary heads, AMP, exact resume, DistributedDataParallel under ``torchrun``, per-epoch metrics.

    model = TinyDeepLab(11)
    history = fit(model, train_set, TrainConfig(attack="segpgd@3", epochs=8), val_set=val_set, num_classes=11)

Layout of one optimisation step with global batch B (all ranks together), world size W:
- the epoch's order is a permutation drawn from ``(seed, epoch)``; step s takes B indices of it;
- the first ``round(B * clean_fraction)`` of them stay clean, the rest are attacked; each rank takes an
  equal share of both parts (so the split is the same for any W);
- every attacked image has its own random-start seed ``f(seed, epoch, dataset index)``;
- the loss is CE(clean) + CE(adv), each normalised by the valid pixels of that part over all ranks.
Hence W ranks compute what one process computes on the whole batch, up to float summation order and
BatchNorm: BatchNorm normalises with each rank's own batch statistics, as DDP does without SyncBatchNorm
(``sync_batchnorm=True`` converts the model on GPU; PyTorch has no CPU SyncBatchNorm).

A checkpoint holds the parameters, optimiser, scheduler, gradient scaler, every rank's RNG state, the
position in the data (epoch, step) and the running metrics of the epoch: a resumed run continues
bit-identically to one that was never interrupted.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from .. import atomic_io
from ..attacks.registry import AttackSpec
from ..distributed.context import DistContext, all_gather_objects, all_reduce_sum, init_distributed
from ..distributed.sharding import clean_confusion, collate, image_seed, stack_items
from ..metrics import ConfusionMatrix
from ..outputs import class_prediction, logits_at
from ..safe_load import UnreadableFile, load_weights
from . import checkpoint
from .at_batch import adversarial_batch, adversarial_training_loss

CHECKPOINT_NAME = "last.pt"


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit` (also the keys of ``fastsegadv train --config``)."""

    attack: str | None = "pgd@3"  # "name@steps" of the inner attack; None trains on clean images only
    eps: float = 8 / 255  # ℓ∞ budget of the inner attack, [0, 1] scale
    alpha: float | None = None  # its step size; None: the attack's paper default (PGD/SegPGD: 0.01)
    attack_options: dict = field(default_factory=dict)  # extra keyword arguments of the attack
    clean_fraction: float = 0.5  # share of each batch kept clean (001: one half)
    epochs: int = 8
    batch_size: int = 16  # global batch: all ranks together
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9)
    schedule: str = "onecycle"  # "onecycle", "poly" (power 0.9) or "constant"
    # "per_part": CE(clean) + CE(adv), each a mean (001 Algorithm 2); "joint": one mean over the whole batch
    # (the public AT codebases: half the loss and gradient of "per_part")
    loss_reduction: str = "per_part"
    aux_weights: dict = field(default_factory=dict)  # {"aux": 0.4} for a torchvision-style aux head
    amp: str | None = None  # None, "bf16" or "fp16" (fp16 with a gradient scaler, CUDA only)
    sync_batchnorm: bool = False  # convert BatchNorm to SyncBatchNorm under DDP (GPU only)
    seed: int = 0
    ignore_index: int = 255
    checkpoint_dir: str | None = None  # last.pt, metrics.json; None = no checkpoints
    checkpoint_every: int = 0  # also checkpoint every this many steps (0: at the end of each epoch only)
    resume: bool = True  # continue from checkpoint_dir/last.pt when it exists
    resume_with_changes: bool = False  # resume even where the saved config differs (else: refused, named)
    eval_batch_size: int = 64
    num_workers: int = 0  # DataLoader workers for the training data (0: load in the main process)
    progress: bool = True
    timeout_s: float = 300.0  # collective timeout under torchrun: a dead rank fails the others

    def __post_init__(self):
        if self.attack in ("", "none", "None"):
            self.attack = None
        if self.attack is not None:
            AttackSpec.parse(self.attack)  # unknown names fail now
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0.0 <= self.clean_fraction <= 1.0, "clean_fraction must lie in [0, 1]"),
            (self.eps >= 0 and math.isfinite(self.eps), "eps must be a finite number >= 0"),
            (self.alpha is None or self.alpha >= 0, "alpha must be >= 0"),
            (self.eps <= 1 and (self.alpha is None or self.alpha <= 1),
             "eps and alpha are on the [0, 1] image scale (8 / 255, not 8)"),
            (self.optimizer in ("adamw", "sgd"), "optimizer must be 'adamw' or 'sgd'"),
            (self.schedule in ("onecycle", "poly", "constant"), "schedule must be 'onecycle', 'poly' or 'constant'"),
            (self.amp in (None, "bf16", "fp16"), "amp must be None, 'bf16' or 'fp16'"),
            (self.loss_reduction in ("per_part", "joint"), "loss_reduction must be 'per_part' or 'joint'"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {msg}")

    @property
    def n_clean(self) -> int:
        return self.batch_size if self.attack is None else int(round(self.batch_size * self.clean_fraction))


def train_seed(seed: int, epoch: int, index: int) -> int:
    """Random-start seed of dataset item ``index`` in ``epoch``."""
    return image_seed(seed, index, salt=epoch * 100_003 + 17)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 10_007 + epoch))


def rank_share(batch: torch.Tensor, n_clean: int, ctx: DistContext) -> tuple[torch.Tensor, int]:
    """This rank's indices of a global batch: its share of the clean part, then of the adversarial part."""
    clean, adv = batch[:n_clean], batch[n_clean:]
    if len(clean) % ctx.world_size or len(adv) % ctx.world_size:
        raise ValueError(f"the clean ({len(clean)}) and adversarial ({len(adv)}) parts of the batch must each "
                         f"divide evenly over {ctx.world_size} ranks; change batch_size or clean_fraction")
    mine_clean = clean[ctx.rank::ctx.world_size]
    return torch.cat([mine_clean, adv[ctx.rank::ctx.world_size]]), len(mine_clean)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(opt, cfg: TrainConfig, total: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 1))
    if cfg.schedule == "poly":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda it: (1 - min(it, total - 1) / total) ** 0.9)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0)


def _scheduler_at(opt, cfg: TrainConfig, total: int, done: int):
    """A fresh schedule of ``total`` steps brought to step ``done`` (a resume whose length or schedule
    changed: the saved state belongs to another schedule)."""
    sched = _scheduler(opt, cfg, total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "step() before optimizer.step()": no optimiser step is meant here
        for _ in range(min(done, total)):
            sched.step()
    return sched


def _rng_state(ctx: DistContext) -> dict:
    state = {"torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return state


def _set_rng_state(state: dict, ctx: DistContext) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and ctx.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], ctx.device)


class _EpochMeter:
    """Running sums of one epoch: loss, steps, and confusion matrices of the clean and adversarial parts
    of the training forward (so robust training accuracy costs no extra pass)."""

    def __init__(self, num_classes: int, ignore_index: int, device):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0
        self.clean = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
        self.adv = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)

    def state_dict(self) -> dict:
        return {"loss": self.loss.cpu(), "steps": self.steps, "clean": self.clean.matrix.cpu(),
                "adv": self.adv.matrix.cpu()}

    def load_state_dict(self, s: dict) -> None:
        self.loss = s["loss"].to(self.loss.device)
        self.steps = s["steps"]
        self.clean.matrix = s["clean"].to(self.clean.matrix.device)
        self.adv.matrix = s["adv"].to(self.adv.matrix.device)


def fit(
    model: nn.Module,
    train_set,
    config: TrainConfig,
    *,
    num_classes: int,
    val_set=None,
    callbacks: Sequence[Callable[[str, dict], None]] = (),
    ctx: DistContext | None = None,
) -> list[dict]:
    """Train ``model`` in place on ``train_set`` (map-style: ``(image [3, H, W] in [0, 1], label [H, W])``)
    and return the per-epoch history (also written to ``checkpoint_dir/metrics.json``).

    ``callbacks``: called as ``cb("step_end", state)`` after every optimisation step (state: epoch,
    step, global_step, loss) and ``cb("epoch_end", record)``. Under ``torchrun`` the process group is
    joined here (``ctx``), metrics are summed over ranks and only rank 0 writes files."""
    cfg = config
    ctx = ctx or init_distributed(timeout_s=cfg.timeout_s)
    device = ctx.device
    torch.manual_seed(cfg.seed + ctx.rank)
    model.to(device)
    if ctx.enabled and cfg.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = model
    if ctx.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    n = len(train_set)
    steps_per_epoch = n // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"the training set has {n} images, fewer than one batch of {cfg.batch_size}")
    total = cfg.epochs * steps_per_epoch
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg, total)
    use_scaler = cfg.amp == "fp16" and device.type == "cuda"
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs CUDA; use amp='bf16' on CPU")
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    spec = AttackSpec.parse(cfg.attack) if cfg.attack is not None else None

    start_epoch, start_step, history = 0, 0, []
    meter = _EpochMeter(num_classes, cfg.ignore_index, device)
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckpt_dir is not None and ctx.is_main:
        atomic_io.remove_leftovers(ckpt_dir / CHECKPOINT_NAME)  # left by a kill during a checkpoint write
    if ckpt_dir is not None and cfg.resume and (ckpt_dir / CHECKPOINT_NAME).exists():
        path = ckpt_dir / CHECKPOINT_NAME
        ck = checkpoint.load(path, map_location=device)
        if ck["world_size"] != ctx.world_size:
            raise checkpoint.CheckpointError(f"{path} was written by {ck['world_size']} ranks; resume with the "
                                             "same number")
        changes = checkpoint.check_resume(path, ck["config"], dataclasses.asdict(cfg), dataset_size=n,
                                          saved_dataset_size=ck["dataset_size"], allow_changes=cfg.resume_with_changes)
        try:
            load_weights(model, ck["model"], path=path)
        except UnreadableFile as e:
            raise checkpoint.CheckpointError(str(e)) from None
        if "optimizer" not in changes:
            opt.load_state_dict(ck["optimizer"])
        start_epoch, start_step, history = ck["epoch"], ck["step"], ck["history"]
        if start_step >= steps_per_epoch:  # fewer steps per epoch than when it was saved
            start_epoch, start_step = start_epoch + 1, 0
        if changes.keys() & {"epochs", "batch_size", "num_images (training set size)", "schedule", "lr", "optimizer"}:
            sched = _scheduler_at(opt, cfg, total, start_epoch * steps_per_epoch + start_step)
        else:
            sched.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        _set_rng_state(ck["rng"][ctx.rank], ctx)
        meter.load_state_dict(ck["meter"][ctx.rank])
        if changes and ctx.is_main:
            tqdm.write("resuming with changed settings (--resume-with-changes): "
                       + "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()))

    def save_checkpoint(epoch: int, step: int) -> None:
        if ckpt_dir is None:
            return
        rngs = all_gather_objects(_rng_state(ctx), ctx)
        meters = all_gather_objects(meter.state_dict(), ctx)
        if ctx.is_main:
            checkpoint.save({
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "rng": rngs, "meter": meters, "epoch": epoch, "step": step,
                "history": history, "world_size": ctx.world_size, "config": dataclasses.asdict(cfg),
                "num_classes": num_classes, "dataset_size": n,
            }, ckpt_dir / CHECKPOINT_NAME)

    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch + start_step, desc="training",
               disable=not (cfg.progress and ctx.is_main), dynamic_ncols=True)
    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        order = epoch_order(n, cfg.seed, epoch)
        first = start_step if epoch == start_epoch else 0
        if first == 0:
            meter = _EpochMeter(num_classes, cfg.ignore_index, device)
        shares = [rank_share(order[s * cfg.batch_size:(s + 1) * cfg.batch_size], cfg.n_clean, ctx)
                  for s in range(first, steps_per_epoch)]
        for step, (idx, n_clean), (x, y) in zip(range(first, steps_per_epoch), shares,
                                                _load(train_set, [i for i, _ in shares], cfg.num_workers, device)):
            if spec is not None:
                seeds = [train_seed(cfg.seed, epoch, int(i)) for i in idx]
                x, _, _ = adversarial_batch(model, x, y, attack=spec, eps=cfg.eps, alpha=cfg.alpha, n_clean=n_clean,
                                            seed=seeds, ignore_index=cfg.ignore_index, **cfg.attack_options)
            valid = y != cfg.ignore_index
            counts = torch.stack([valid[:n_clean].sum(), valid[n_clean:].sum()]).to(torch.float64)
            all_reduce_sum(counts, ctx)
            normalizers = tuple((counts / ctx.world_size).clamp_min(1.0 / ctx.world_size).float())
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = net(x)
            loss = adversarial_training_loss(out, y, n_clean=n_clean, aux_weights=cfg.aux_weights,
                                             ignore_index=cfg.ignore_index, normalizers=normalizers,
                                             reduction=cfg.loss_reduction)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            with torch.no_grad():
                pred = class_prediction(logits_at(out, y.shape[-2:]))
                meter.clean.update(pred[:n_clean], y[:n_clean])
                meter.adv.update(pred[n_clean:], y[n_clean:])
                meter.loss += loss.detach().double()
                meter.steps += 1
            global_step = epoch * steps_per_epoch + step + 1
            bar.update(1)
            loss_value = float(loss.detach())
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.3f}")
            for cb in callbacks:
                cb("step_end", {"epoch": epoch, "step": step, "global_step": global_step, "loss": loss_value})
            if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                save_checkpoint(epoch, step + 1)
        record = _epoch_record(epoch, meter, model, val_set, cfg, num_classes, ctx, time.time() - t0)
        history.append(record)
        if ctx.is_main and cfg.progress:
            tqdm.write(json.dumps(record))
        save_checkpoint(epoch + 1, 0)
        if ckpt_dir is not None and ctx.is_main:
            atomic_io.write_text(ckpt_dir / "metrics.json", json.dumps(history, indent=1))
        for cb in callbacks:
            cb("epoch_end", record)
    bar.close()
    if ckpt_dir is not None and ctx.is_main and start_epoch >= cfg.epochs:
        # a resume that found training complete (killed after the last checkpoint, before the metrics)
        atomic_io.write_text(ckpt_dir / "metrics.json", json.dumps(history, indent=1))
    model.eval()
    return history


def _load(dataset, batches: list[torch.Tensor], num_workers: int, device: torch.device):
    """Yield ``(images [b, 3, H, W], labels [b, H, W])`` on ``device`` for each index list, in order; with
    ``num_workers > 0`` a DataLoader prefetches them (the order is fixed by ``batches`` either way)."""
    if num_workers <= 0:
        for idx in batches:
            yield collate(dataset, idx, device)
        return
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=[[int(i) for i in b] for b in batches],
                                         num_workers=num_workers, collate_fn=stack_items,
                                         pin_memory=device.type == "cuda")
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _epoch_record(epoch, meter: _EpochMeter, model, val_set, cfg: TrainConfig, num_classes: int,
                  ctx: DistContext, seconds: float) -> dict:
    sums = torch.stack([meter.loss, torch.tensor(float(meter.steps), dtype=torch.float64, device=meter.loss.device)])
    all_reduce_sum(sums, ctx)
    all_reduce_sum(meter.clean.matrix, ctx)
    all_reduce_sum(meter.adv.matrix, ctx)
    record = {"epoch": epoch + 1, "loss": float(sums[0] / sums[1].clamp_min(1)),
              "train_clean_miou": meter.clean.miou(), "seconds": round(seconds, 2)}
    if cfg.attack is not None:
        record["train_adv_miou"] = meter.adv.miou()
    if val_set is not None:
        cm = clean_confusion(model, val_set, num_classes=num_classes, ignore_index=cfg.ignore_index,
                             batch_size=cfg.eval_batch_size, ctx=ctx)
        record["val_miou"] = cm.miou()
        record["val_pixel_accuracy"] = cm.pixel_accuracy()
    return record
