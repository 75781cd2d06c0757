"""Peak memory of one call, for the benchmark tables.

CUDA: ``torch.cuda.max_memory_allocated`` after a reset (bytes the caching allocator handed out).
CPU (Linux, glibc): the process's resident high-water mark, reset by writing 5 to
``/proc/self/clear_refs`` and read as ``VmHWM`` from ``/proc/self/status`` after the call, minus the
resident size before it. For the measured call glibc's mmap threshold is lowered to 64 KiB, so every
tensor buffer is a fresh mapping returned to the OS when freed (otherwise the heap reuses already
resident memory and small cases read 0), and ``malloc_trim(0)`` first hands the heap's free pages
back, so reusing them counts too; afterwards it is set to 32 MiB, the value glibc's dynamic
threshold settles at. This counts the pages the call touched at its peak. ``None`` where neither
mechanism exists.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

_M_MMAP_THRESHOLD = -3
_libc = None
if os.path.exists("/proc/self/clear_refs"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.mallopt  # glibc only
    except (OSError, AttributeError):
        _libc = None


def _mmap_threshold(nbytes: int) -> None:
    if _libc is not None:
        _libc.mallopt(_M_MMAP_THRESHOLD, nbytes)


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024  # kB
    raise KeyError(key)


def peak_bytes(fn, device: torch.device) -> int | None:
    """Run ``fn()`` once and return the peak extra memory it used on ``device`` (bytes)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    if _libc is None:
        return None
    _mmap_threshold(64 << 10)
    _libc.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        base = _status_bytes("VmRSS:")
        fn()
        return max(0, _status_bytes("VmHWM:") - base)
    except OSError:
        return None
    finally:
        _mmap_threshold(32 << 20)
