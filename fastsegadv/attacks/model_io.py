"""How attacks talk to a user's model: the output adapter (re-exported from fastsegadv.outputs),
normalisation, the frozen-model guard and the feature hook RP-PGD's prototype term needs."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn

from ..outputs import class_prediction, extract_logits, logits_at  # noqa: F401  (re-exported)


class NormalizedModel(nn.Module):
    """``model((x - mean) / std)`` so attacks work on images in [0, 1] (torchattacks'
    ``set_normalization_used``). mean/std: per-channel sequences."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor):
        return self.model((x - self.mean.to(x)) / self.std.to(x))


class NonFiniteLogitsError(ValueError):
    """The model returned NaN or infinite logits during an attack: its gradient means nothing, and counting
    its result would over-report robustness."""


class _FiniteWatch:
    """A forward hook that ORs "some logit is not finite" into a device flag (no host sync per forward;
    skipped inside a compiled graph, where the harness's own check of the final predictions remains)."""

    def __init__(self):
        self.flag: torch.Tensor | None = None

    def __call__(self, module, inputs, output) -> None:
        if torch.compiler.is_compiling():
            return
        try:
            logits = extract_logits(output)
        except (KeyError, TypeError):
            return  # a custom output layout: the attack's own extraction reports it
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            return
        bad = ~torch.isfinite(logits.detach()).all()
        self.flag = bad if self.flag is None else self.flag | bad

    def tripped(self) -> bool:
        return self.flag is not None and bool(self.flag)


@contextlib.contextmanager
def frozen_for_attack(model: nn.Module, *, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Run the attack with parameters not requiring grad (no weight gradients are computed) and, by
    default, in eval mode. Restores the training flags of every module and ``requires_grad`` of every
    parameter afterwards; with ``eval_mode=False`` the buffers (BatchNorm running statistics) are
    snapshotted and restored, so the model is exactly as it was.

    Raises :class:`NonFiniteLogitsError` at the end when a forward inside returned NaN or infinite logits
    (checked on the device, read once at the end)."""
    modes = {m: m.training for m in model.modules()}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    buffers = None if eval_mode else [(b, b.detach().clone()) for b in model.buffers()]
    watch = _FiniteWatch()
    handle = model.register_forward_hook(watch)
    try:
        if eval_mode:
            model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        handle.remove()
        for m, training in modes.items():
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
        if buffers is not None:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
    if watch.tripped():
        raise NonFiniteLogitsError(
            f"{type(model).__name__} returned NaN or infinite logits during the attack: its gradient means nothing "
            "and its result would over-report robustness. Check the model (an fp16 overflow? try fp32 or "
            "amp='bf16') and its inputs")


@contextlib.contextmanager
def channels_last_weights(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Run with every 4-D parameter (convolution weights) in channels_last, which oneDNN/cuDNN convolve
    faster, and put the original tensors back afterwards (same storage, strides and values)."""
    saved = [(p, p.data) for p in model.parameters() if enabled and p.dim() == 4]
    try:
        for p, data in saved:
            p.data = data.contiguous(memory_format=torch.channels_last)
        yield model
    finally:
        for p, data in saved:
            p.data = data


def producing_conv(logits: torch.Tensor, outputs: dict) -> str | None:
    """Name of the ``nn.Conv2d`` nearest to ``logits`` in their autograd graph (breadth first), i.e. the
    final classifier of this output, among ``outputs`` (``{conv output's grad_fn: module name}``, recorded in
    the forward that produced ``logits``); None if no recorded convolution produced them."""
    start = getattr(logits, "grad_fn", None)
    seen, frontier = set(), [start] if start is not None else []
    while frontier:
        nxt = []
        for node in frontier:
            if node in outputs:
                return outputs[node]
            for child, _ in node.next_functions:
                if child is not None and child not in seen:
                    seen.add(child)
                    nxt.append(child)
        frontier = nxt
    return None


class FeatureHook:
    """Captures the input (default, the features a classifier sees) or output of ``model.<layer>`` on
    every forward. Use as a context manager; ``.features`` holds the last capture ``[B, d, h, w]``.

    ``layer=None``: the final classifier of the main output, found from what actually runs. Every
    ``nn.Conv2d`` is watched during the first forward; :meth:`resolve` (given that forward's logits, with
    their autograd graph) keeps the convolution that produced them and drops the other hooks. Registration
    order does not matter: an auxiliary head registered last (torchvision's ``aux_classifier``, mmseg's
    ``auxiliary_head``), whether it runs in eval or not, is never chosen."""

    def __init__(self, model: nn.Module, layer: str | None = None, *, capture: str = "input"):
        if capture not in ("input", "output"):
            raise ValueError(f"capture must be 'input' or 'output', got {capture!r}")
        self.model = model
        self.layer = layer
        self.module = None
        if layer is not None:
            try:
                self.module = model.get_submodule(layer)
            except AttributeError as e:
                raise ValueError(f"feature_layer {layer!r} is not a submodule of the model") from e
        self.capture = capture
        self.features: torch.Tensor | None = None
        self._handles: list = []
        self._candidates: dict = {}  # conv output grad_fn -> name, first forward of layer=None only
        self._captured: dict = {}  # name -> capture, first forward of layer=None only

    def _hook(self, module, inputs, output):
        self.features = inputs[0] if self.capture == "input" else extract_logits(output)

    def _watch(self, name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.grad_fn is not None:
                self._candidates[output.grad_fn] = name
                self._captured[name] = inputs[0] if self.capture == "input" else output
        return hook

    @property
    def resolved(self) -> bool:
        return self.module is not None

    def resolve(self, logits: torch.Tensor) -> str:
        """With ``layer=None``: pick the convolution that produced ``logits`` in the forward just run (which
        must have had an autograd graph), set :attr:`features` to its capture and watch only it from now on."""
        if self.resolved:
            return self.layer
        name = producing_conv(logits, self._candidates)
        for h in self._handles:
            h.remove()
        self._handles = []
        captured, self._candidates, self._captured = self._captured, {}, {}
        if name is None:
            raise ValueError("could not find the nn.Conv2d that produces the model's logits (no convolution ran "
                             "with an autograd graph on the way to them); name the prototype features' layer "
                             "with feature_layer=")
        self.layer, self.module = name, self.model.get_submodule(name)
        self.features = captured[name]
        self._handles = [self.module.register_forward_hook(self._hook)]
        return name

    def __enter__(self) -> "FeatureHook":
        if self.module is not None:
            self._handles = [self.module.register_forward_hook(self._hook)]
        else:
            self._handles = [m.register_forward_hook(self._watch(n)) for n, m in self.model.named_modules()
                             if isinstance(m, nn.Conv2d)]
            if not self._handles:
                raise ValueError("the model has no nn.Conv2d; name the prototype features' layer with feature_layer=")
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._candidates, self._captured = {}, {}
        self.features = None
