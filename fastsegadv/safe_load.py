"""Reading ``.pt`` files the user names, without pickle and with one clear error.

Every file is read with ``torch.load(weights_only=True)`` (tensors and plain types only: a crafted file
cannot run code). A file that cannot be read (random bytes, a truncated write, an unsafe pickle) or that
is not what the argument expects gets a :class:`UnreadableFile` (a ``ValueError``: the commands print it
as one line) naming the file, what was expected and what was found.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
import torch.nn as nn


class UnreadableFile(ValueError):
    """A file given by the user that is not what it should be."""


def load_file(path: str | os.PathLike, *, what: str, map_location="cpu"):
    """The object stored in ``path`` (read with ``weights_only=True``); ``what`` names what the file
    should be ("a fastsegadv training checkpoint", "a state dict") for the error message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected {what})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError,
            AttributeError, TypeError, KeyError, IndexError, ImportError) as e:
        text = str(e).strip()
        if "weights_only" in text or "Unsupported global" in text or "Unsupported operand" in text:
            reason = "it holds Python objects that only an unsafe (pickle) load could build, and none is done here"
        else:
            reason = text.splitlines()[0][:200] if text else type(e).__name__
        raise UnreadableFile(f"{path} is not readable as {what}: {reason}") from None


def load_weights(model: nn.Module, state, *, path: str | os.PathLike, what: str = "weights") -> None:
    """``model.load_state_dict(state)``, or one line saying which file holds weights of another model."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = f" with keys {', '.join(sorted(map(str, state))[:6])}" if isinstance(state, dict) else ""
        raise UnreadableFile(f"{path} is not a state dict of tensors ({what}); found {type(state).__name__}{keys}")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:3])[:300] if len(lines) > 1 else lines[0][:300]
        raise UnreadableFile(f"{path} holds {what} of another model than {type(model).__name__}: {detail}") from None
