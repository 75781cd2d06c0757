"""One writer per output folder: ``fastsegadv train`` and ``evaluate`` hold an exclusive lock on
``OUTPUT/.fastsegadv.lock`` while they run, and a second process aimed at the same folder stops at once
with one line naming the holder. The lock is an ``fcntl.flock`` on an open file: the operating system
releases it when the process ends, however it ends (a killed run leaves no stale lock behind)."""
from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover  (not POSIX: no lock, as before)
    fcntl = None

LOCK_NAME = ".fastsegadv.lock"


class OutputBusy(ValueError):
    """Another process is writing the output folder."""


def check_output_folder(folder: str | os.PathLike, *, argument: str = "--output", create: bool = True) -> Path:
    """One clear error when the folder is a file or cannot be written, before any work (so no result is
    lost at the end); with ``create`` the folder is made, else only its nearest existing ancestor is
    checked (nothing is written before the inputs are known to be good)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{argument} {folder} is an existing file, not a folder")
    if not create:
        existing = next(p for p in [folder, *folder.absolute().parents] if p.exists())
        if not existing.is_dir():
            raise ValueError(f"{argument} {folder} cannot be created: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{argument} {folder} cannot be created: {existing} is not writable")
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{argument} {folder} cannot be created: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{argument} {folder} is not writable")
    return folder


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, *, argument: str = "--output") -> Iterator[Path]:
    """Hold the folder's lock for the ``with`` block (the folder is checked and created first)."""
    folder = check_output_folder(folder, argument=argument)
    path = folder / LOCK_NAME
    f = open(path, "a+")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise OutputBusy(f"{argument} {folder} is being written by {holder}; wait for it to end or "
                                 f"choose another {argument}") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        yield folder
    finally:
        f.close()  # releases the lock
