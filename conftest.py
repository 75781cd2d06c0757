"""Shared by tests/ and benchmarks/: the Hugging Face ``kernels`` package before our ``kernels/``.

pytest puts the repository root on ``sys.path``, where this project's Triton folder ``kernels/``
(installed as ``fastsegadv.kernels``) would be found as a top-level ``kernels`` and shadow the Hugging
Face package of that name, which ``transformers`` >= 5 imports (``from kernels import CUDAProperties``).
Import the installed one first, with the root left out of the search, so ``sys.modules["kernels"]`` is
the real package; nothing of ours imports a top-level ``kernels``.
"""
import importlib
import os
import sys

_ROOT = os.path.dirname(os.path.abspath(__file__))


def _import_hub_kernels_first() -> None:
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _ROOT]
    try:
        importlib.import_module("kernels")
    except ImportError:  # not installed: nothing to shadow
        pass
    finally:
        sys.path[:] = saved


if "kernels" not in sys.modules:
    _import_hub_kernels_first()
