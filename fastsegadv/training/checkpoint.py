"""The training checkpoint (``OUTPUT/last.pt``): written atomically, read without pickle, checked before use.

It holds only tensors and plain types (dicts, lists, numbers, strings), so it loads with
``torch.load(weights_only=True)``: a crafted ``last.pt`` cannot run code on resume. A file that is not
such a checkpoint (random bytes, a truncated write, a model file of ``fastsegadv train`` or
``--init``) gets one error naming the file, what was expected and what was found.

On resume the saved :class:`~fastsegadv.training.loop.TrainConfig` is compared with the new one: any
difference that changes the result is refused, naming the options, unless ``resume_with_changes``
(``--resume-with-changes``) says otherwise. ``epochs`` may be raised on purpose: the learning-rate
schedule is then rebuilt for the new length and brought to the step reached.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import atomic_io
from ..safe_load import UnreadableFile, load_file

FORMAT = "fastsegadv-train-checkpoint/2"
REQUIRED = ("format", "model", "optimizer", "scheduler", "scaler", "rng", "meter", "epoch", "step", "history",
            "world_size", "config", "num_classes", "dataset_size")
# options that do not change what is computed (where files go, how often, how it is shown, workers)
NEUTRAL = {"checkpoint_dir", "checkpoint_every", "resume", "resume_with_changes", "num_workers", "progress",
           "timeout_s", "eval_batch_size"}


class CheckpointError(UnreadableFile):
    """A checkpoint that cannot be used: unreadable, foreign, or from another configuration."""


def save(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` (tensors and plain types only) to ``path`` atomically."""
    atomic_io.torch_save({"format": FORMAT, **state}, path)


def load(path: str | os.PathLike, *, map_location=None) -> dict:
    """Read a training checkpoint with ``weights_only=True`` and check that it is one."""
    path = Path(path)
    try:
        ck = load_file(path, what="a fastsegadv training checkpoint", map_location=map_location)
    except UnreadableFile as e:
        raise CheckpointError(f"{e}. Was it written by `fastsegadv train`? (start over with --no-resume)") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path} is not a fastsegadv training checkpoint: it holds a {type(ck).__name__}, "
                              "not a dict. Was it written by `fastsegadv train`?")
    missing = [k for k in REQUIRED if k not in ck]
    if missing:
        found = ", ".join(sorted(map(str, ck))[:8]) or "nothing"
        hint = " (it looks like a model file: pass it to --init or --models instead)" if "state_dict" in ck else ""
        absent = ", ".join(map(repr, missing[:3]))
        raise CheckpointError(f"{path} is not a fastsegadv training checkpoint (no {absent}; "
                              f"found {found}){hint}. Was it written by `fastsegadv train` of this version? "
                              "(start over with --no-resume)")
    if ck["format"] != FORMAT:
        raise CheckpointError(f"{path} is a training checkpoint of format {ck['format']!r}; this version reads "
                              f"{FORMAT!r} (start over with --no-resume)")
    return ck


def config_changes(saved: dict, new: dict) -> dict[str, tuple]:
    """``{option: (saved, new)}`` for every option that changes the result (all but :data:`NEUTRAL`)."""
    keys = (set(saved) | set(new)) - NEUTRAL
    return {k: (saved.get(k), new.get(k)) for k in sorted(keys) if _normal(saved.get(k)) != _normal(new.get(k))}


def _normal(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, tuple | list):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    return v


def check_resume(path, saved: dict, new: dict, *, dataset_size: int, saved_dataset_size: int,
                 allow_changes: bool) -> dict[str, tuple]:
    """The changes a resume would make, or a :class:`CheckpointError` naming them.

    Raising ``epochs`` is allowed on its own (the schedule is rebuilt for the new length); lowering it
    below the epochs already trained is not. ``allow_changes`` accepts every change."""
    changes = config_changes(saved, new)
    if saved_dataset_size != dataset_size:
        changes["num_images (training set size)"] = (saved_dataset_size, dataset_size)
    blocking = {k: v for k, v in changes.items() if k != "epochs" or v[1] < v[0]}
    if blocking and not allow_changes:  # (fewer epochs than the run was started with are among them)
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in blocking.items())
        raise CheckpointError(f"{path} was written with other settings ({listed}). Resuming would mix two "
                              "configurations: use the same options, start over with --no-resume, or pass "
                              "--resume-with-changes to continue with the new ones on purpose")
    return changes

