"""Files that are either absent or complete: every report and checkpoint is written to a temporary file
in the same folder, flushed to disk, then renamed over the target (``os.replace`` is atomic). The file
gets the permissions ``open()`` would give it (0666 less the umask), not ``mkstemp``'s 0600."""
from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_affixes(path: Path) -> tuple[str, str]:
    """Prefix and suffix of the temporaries of ``path`` (``.NAME.<random>.tmp`` beside it)."""
    return f".{path.name}.", ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temporary_affixes(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` that a kill during :func:`atomic_path` left behind (nothing else
    removes them); returns what was removed. Only for a path no other process is writing."""
    path = Path(path)
    prefix, suffix = _temporary_affixes(path)
    removed = []
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*{suffix}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def torch_save(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_figure(fig, path: str | os.PathLike, **kwargs) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
