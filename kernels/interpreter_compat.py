"""One fix to Triton's CPU interpreter (``TRITON_INTERPRET=1``), applied where that interpreter needs it.

Triton 3.6's interpreter (the GPU machine's version) passes a Python ``int`` kernel argument as a
one-element numpy array and turns it back into an ``int`` with ``int(array)`` when it is a loop bound
(``for k in range(span_x)``, ``range(0, HW, BLOCK_P)``). numpy >= 2.4 refuses that for arrays of one
dimension ("only 0-dimensional arrays can be converted to Python scalars"), so every kernel with a
runtime loop bound failed under the interpreter. Triton 3.9 reads the one element (``int(data.squeeze())``);
:func:`apply` gives older interpreters the same ``__index__``. Compiled kernels never run this code.
"""
from __future__ import annotations

try:
    from triton.runtime import interpreter as _interpreter
except ImportError:  # pragma: no cover  (a Triton without the interpreter module)
    _interpreter = None


def _index(tensor) -> int:
    """A scalar tensor of the interpreter as a Python int: its one element, whatever the array's rank."""
    return int(tensor.handle.data.reshape(-1)[0])


def apply() -> bool:
    """Wrap the interpreter's tensor patching so that ``__index__`` reads the one element; idempotent.
    Returns whether the wrapper is in place."""
    patch_lang_tensor = getattr(_interpreter, "_patch_lang_tensor", None)
    if patch_lang_tensor is None:
        return False
    if getattr(patch_lang_tensor, "reads_one_element", False):
        return True

    def patched(tensor, scope):
        patch_lang_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", _index)  # restored with the rest when the launch ends

    patched.reads_one_element = True
    _interpreter._patch_lang_tensor = patched
    return True
