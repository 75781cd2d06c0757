"""Models by name for the command line: a shipped checkpoint (``standard``, ``pgd_at``), a model file
written by ``fastsegadv train`` (``path/to/model.pt``), or a user's factory ``package.module:function``
(called with ``num_classes=``) with optional ``weights`` (a state dict file)."""
from __future__ import annotations

import importlib
from pathlib import Path

import torch.nn as nn

from .. import atomic_io
from ..safe_load import load_file, load_weights
from .pretrained import ARCHITECTURES, SHIPPED, load_pretrained
from .tiny_deeplab import TinyDeepLab


def save_model(model: nn.Module, path: str | Path, **meta) -> None:
    """A self-describing file of a library model (TinyDeepLab or TinyUPerNet: architecture + weights + ``meta``),
    written atomically."""
    arch = next((name for name, cls in ARCHITECTURES.items() if type(model) is cls), None)
    if arch is None:
        raise TypeError(f"save_model writes the library's architectures ({', '.join(ARCHITECTURES)}), "
                        f"not {type(model).__name__}; save a state dict of your own model instead")
    extra = {"norm": model.norm, "aux_head": model.aux_head} if isinstance(model, TinyDeepLab) else {}
    atomic_io.torch_save({"arch": arch, "num_classes": model.num_classes, "width": model.width, **extra,
                          "state_dict": model.state_dict(), "meta": meta}, path)


def load_model(spec: str, *, num_classes: int | None = None, weights: str | Path | None = None,
               map_location="cpu") -> nn.Module:
    """See the module docstring. The model is returned in eval mode."""
    if spec in SHIPPED:
        return load_pretrained(spec, map_location=map_location)
    path = Path(spec)
    if path.suffix in (".pt", ".pth") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist (shipped models: {', '.join(SHIPPED)})")
        ck = load_file(path, what="a model file written by `fastsegadv train`", map_location=map_location)
        if not isinstance(ck, dict) or ck.get("arch") not in ARCHITECTURES:
            hint = (" (it is a training checkpoint: use OUTPUT/model.pt, or resume with `fastsegadv train`)"
                    if isinstance(ck, dict) and "world_size" in ck else "")
            raise ValueError(f"{path} is not a model file written by fastsegadv (no 'arch' entry){hint}; load your "
                             "own architecture with a factory 'package.module:function' and --weights")
        extra = ({"norm": ck.get("norm", "batch"), "aux_head": bool(ck.get("aux_head", False))}
                 if ck["arch"] == "tiny_deeplab" else {})
        model = ARCHITECTURES[ck["arch"]](int(ck["num_classes"]), width=int(ck["width"]), **extra)
        load_weights(model, ck["state_dict"], path=path)
        return model.eval()
    if ":" in spec:
        mod_name, _, fn_name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot import model factory {spec!r}: {e}") from None
        if not callable(factory):
            raise ValueError(f"model factory {spec!r} is a {type(factory).__name__}, not a function or class")
        try:
            model = factory(num_classes=num_classes) if num_classes is not None else factory()
        except Exception as e:  # noqa: BLE001  (the user's code: its failure becomes one line naming it)
            raise ValueError(f"model factory {spec!r} failed: {type(e).__name__}: {e}") from None
        if not isinstance(model, nn.Module):
            raise ValueError(f"model factory {spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
        if weights is not None:
            state = load_file(weights, what="a state dict (--weights)", map_location=map_location)
            load_weights(model, state.get("state_dict", state) if isinstance(state, dict) else state, path=weights)
        return model.eval()
    raise ValueError(f"unknown model {spec!r}: give a shipped name ({', '.join(SHIPPED)}), a .pt file written by "
                     "`fastsegadv train`, or a factory 'package.module:function'")


def load_named_models(items, *, num_classes: int | None = None, weights: str | Path | None = None,
                      map_location="cpu") -> dict[str, nn.Module]:
    """``[LABEL=]SPEC`` items (the commands' ``--models``) -> ``{label: model}`` in order, every model loaded
    before any work starts. Without a label: the run folder's name for a ``.pt`` file, else the spec."""
    models: dict[str, nn.Module] = {}
    for item in items:
        label, eq, spec = item.partition("=")
        if not eq:
            label, spec = (Path(item).parent.name if item.endswith(".pt") else item), item
        if label in models:
            raise ValueError(f"two models are labelled {label!r}; name them with LABEL=SPEC")
        models[label] = load_model(spec, num_classes=num_classes, weights=weights, map_location=map_location)
    return models
