"""A speed guard in CI: catches regressions like the 2.5x one of issue 11 (autograd materialising a zero
gradient for the op's [B, C, H, W] buffer output in every backward) or the 3.7x one of subnormal logits,
which no correctness test sees.

Timing belongs in benchmarks/ (benchmarks/test_fused_loss.py); this only checks ratios, and it is built
so that it cannot fail at random (issue 20: the wall-clock version failed 2 runs in 4 inside the suite):

- each measurement runs in a fresh interpreter (this file run as a script): nothing of the suite's state
  (allocator, thread pools, other tests' threads) is timed;
- one intra-op thread, timed with ``time.thread_time()``: the CPU time of the thread that does the work, so
  other processes on the machine (CI's other job, the suite's own subprocesses) do not count;
- the variants are interleaved, each round calls each once, and the minimum over the rounds is kept;
- every run has a control: the fast variant run twice per call must measure 1.7-2.4x the single call. A
  run whose control does not see that 2x slowdown has too little resolution to judge and is repeated
  (twice at most), never passed on luck.

The bounds leave room for noise and still fail on a real 2x regression: on the CI machine (Intel Xeon,
one thread) the API costs 1.06-1.08x the bare op (bound 1.3: twice the API is ~2x), the eager reference
takes 8.1-8.2x the fused loss (bound 5: a fused loss twice as slow gives ~4.1x), and scale-50 logits cost
0.95-1.01x scale-1 ones (bound 1.5: the subnormal slowdown was 3.7x).
"""
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastsegadv._ops import CPP_AVAILABLE
from fastsegadv.losses import Weighting, segpgd_loss
from fastsegadv.ops.weighted_ce import encode
from fastsegadv.reference.weighted import weighted_cross_entropy_reference

pytestmark = pytest.mark.skipif(not CPP_AVAILABLE, reason="compares the compiled CPU kernel with the eager loss")

SHAPE = (1, 19, 512, 1024)  # B, C, H, W: a Cityscapes image at half resolution (the benchmarks' CPU shape)
ROUNDS = 7


def best_cpu_times(fns: dict, rounds: int = ROUNDS) -> dict:
    """Per variant, the least CPU time of this thread over ``rounds`` interleaved calls (seconds)."""
    for f in fns.values():  # warm-up: allocator, caches
        f()
    best = {k: float("inf") for k in fns}
    gc.disable()
    try:
        for _ in range(rounds):
            for k, f in fns.items():  # interleaved: every variant sees the same machine state
                t = time.thread_time()
                f()
                best[k] = min(best[k], time.thread_time() - t)
    finally:
        gc.enable()
    return best


def twice(f):
    return lambda: (f(), f())


def fused_vs_eager_and_op() -> dict:
    """The fused loss (public API, forward + input gradient) against the bare kernel op (loss, stats and the
    gradient in one pass) and the eager reference."""
    b, c, h, w = SHAPE
    g = torch.Generator().manual_seed(0)
    z = torch.randn(b, c, h, w, generator=g)
    y = torch.randint(0, c, (b, h, w), generator=g)
    y[:, :8] = 255
    weighting = Weighting(segpgd="linear")
    flags, params = encode(weighting, 3, 10, True)
    params = torch.tensor(params)
    no_state = torch.empty(0, dtype=torch.uint8)
    inv_n_valid = 1.0 / int((y != 255).sum())
    x = z.clone().requires_grad_(True)

    def bare_op():
        return torch.ops.fastsegadv.weighted_ce_forward(z, y, no_state, params, flags, 255, False, True, inv_n_valid)

    def public_api():
        return torch.autograd.grad(segpgd_loss(x, y, step=3, steps=10), x)

    def eager():
        return torch.autograd.grad(weighted_cross_entropy_reference(x, y, weighting=weighting, step=3, steps=10), x)

    torch.testing.assert_close(public_api()[0], eager()[0], rtol=1e-4, atol=1e-9)  # the same gradient
    return best_cpu_times({"op": bare_op, "api": public_api, "api twice": twice(public_api), "eager": eager})


def large_vs_small_logits() -> dict:
    """Trained and random real models emit logits of tens of units (a random SegFormer: |z| ~ 100), whose
    exp(z - max) and products fall below 1.2e-38: x86 handles such subnormals ~100x slower, and the fused
    CE ran 3.7x slower at logit scale 50 than at scale 1 until the kernels flushed them (FTZ/DAZ in every
    worker thread, csrc/cpu/fast_math.h)."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(SHAPE, generator=g)
    y = torch.randint(0, SHAPE[1], (SHAPE[0], *SHAPE[2:]), generator=g)
    small = base.clone().requires_grad_(True)
    large = (base * 50).requires_grad_(True)

    def run(z):
        return lambda: torch.autograd.grad(segpgd_loss(z, y, step=3, steps=10), z)

    return best_cpu_times({"scale 1": run(small), "scale 50": run(large), "scale 1 twice": twice(run(small))})


CASES = {"fused": fused_vs_eager_and_op, "logit_scale": large_vs_small_logits}


def measure(case: str) -> dict:
    """Run ``case`` in a fresh interpreter with one intra-op thread; its best CPU times in ms."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), case], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {k: 1e3 * v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def judged(case: str, single: str) -> dict:
    """Measure until the run can see a 2x slowdown (``single`` twice costs 1.7-2.4x ``single``), three tries
    at most."""
    for _ in range(3):
        t = measure(case)
        if 1.7 <= t[f"{single} twice"] / t[single] <= 2.4:
            return t
    pytest.fail(f"{case}: three runs could not tell a 2x slowdown apart from noise ({t} ms)")


def test_fused_loss_speed_ratios():
    """The fused loss is at least 5x faster than the eager reference, and the public API costs at most 1.3x
    the bare kernel op."""
    t = judged("fused", "api")
    ms = {k: round(v, 2) for k, v in t.items()}
    assert t["eager"] / t["api"] >= 5.0, f"fused loss only {t['eager'] / t['api']:.2f}x faster than eager ({ms} ms)"
    assert t["api"] / t["op"] <= 1.3, f"public API costs {t['api'] / t['op']:.2f}x the bare op ({ms} ms)"


def test_large_logits_cost_no_more_than_small_ones():
    """Same shape, same labels: logits at scale 50 cost at most 1.5x those at scale 1."""
    t = judged("logit_scale", "scale 1")
    ratio = t["scale 50"] / t["scale 1"]
    assert ratio <= 1.5, f"logits at scale 50 cost {ratio:.2f}x those at scale 1 ({t} ms)"


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(CASES[sys.argv[1]]()))
