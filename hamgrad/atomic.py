"""Atomic file writing: a file appears under its final name only once it is complete.

The data goes to a temporary file in the same directory, is flushed and fsynced, then renamed over
the destination (``os.replace`` is atomic on POSIX). A crash or an exception leaves at most a
``.tmp`` file behind, never a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temporary_path_for(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    return Path(tmp)


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a written file (or directory entry) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to ``path``.

    On an exception the temporary file is removed and the destination is left untouched.
    """
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: directory {str(path.parent)!r} does not exist"
        )
    tmp = temporary_path_for(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            fsync_path(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` atomically (load it back with ``weights_only=True``)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
