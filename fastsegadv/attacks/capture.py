"""Graph capture of one attack step (issue 6): ``torch.compile(fullgraph=True)`` of forward + loss +
input gradient + update as one graph, with CUDA graphs (``mode="reduce-overhead"``) on CUDA when the
shapes are static, and a clean fallback to the eager step when capture fails.

    step = CapturedStep(step_fn, compile_step=True, device=x.device)
    x_next, loss, prediction, image_loss = step(x_adv, params)

``compile_step``: ``True`` (inductor; on CUDA with CUDA graphs), or a ``torch.compile`` backend: a name
(``"inductor"``, ``"aot_eager"``, ``"cudagraphs"``, ...) or a callable. The step function must use ``t`` only through
tensor inputs (attacks pass the kernel parameters of t, :meth:`Objective.kernel_params`), so one graph
serves every iteration. ``torch.autograd.grad`` inside the graph needs dynamo's ``trace_autograd_ops``,
switched on only while the step is traced and run.
"""
from __future__ import annotations

import warnings

import torch

RECOMPILE_LIMIT = 64


class CapturedStep:
    """Calls ``fn`` compiled; on a capture failure warns once and calls ``fn`` eagerly from then on.
    ``last_captured``: whether the last call ran the captured graph; ``failed``: the capture error."""

    def __init__(self, fn, *, compile_step: bool | str, device: torch.device):
        if not (compile_step is True or isinstance(compile_step, str) or callable(compile_step)):
            raise ValueError(f"compile_step must be False, True or a torch.compile backend (name or callable), "
                             f"got {compile_step!r}")
        backend = "inductor" if compile_step is True else compile_step
        self.cuda_graphs = device.type == "cuda" and (backend == "cudagraphs"
                                                       or (compile_step is True and backend == "inductor"))
        mode = "reduce-overhead" if self.cuda_graphs and backend == "inductor" else None
        self.fn = fn
        self.compiled = torch.compile(fn, fullgraph=True, backend=backend, mode=mode, dynamic=False)
        self.failed: Exception | None = None
        self.last_captured = False

    def __call__(self, *args):
        if self.failed is None:
            try:
                # one cache entry per (model, objective, shapes) this process attacks: allow many
                with torch._dynamo.config.patch(trace_autograd_ops=True, recompile_limit=RECOMPILE_LIMIT):
                    if self.cuda_graphs:
                        torch.compiler.cudagraph_mark_step_begin()
                    out = self.compiled(*args)
                # a CUDA graph's outputs are overwritten by its next replay: keep copies
                self.last_captured = True
                return tuple(o.clone() if self.cuda_graphs and isinstance(o, torch.Tensor) else o for o in out)
            except (torch._dynamo.exc.TorchDynamoException,  # Unsupported, BackendCompilerFailed, ...
                    torch._dynamo.exc.FailOnRecompileLimitHit) as e:
                self.failed = e
                warnings.warn(f"attack step graph capture failed, running it eagerly: {self.error}", RuntimeWarning,
                              stacklevel=3)
        self.last_captured = False
        return self.fn(*args)

    @property
    def error(self) -> str | None:
        """Why capture failed (``Type: first line``), or None."""
        if self.failed is None:
            return None
        return f"{type(self.failed).__name__}: {str(self.failed).splitlines()[0] if str(self.failed) else ''}"
