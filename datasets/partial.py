"""Resumable, atomic HDF5 writing: a partial file beside the destination, renamed when complete.

A dataset is written to ``.<name>.partial`` in the destination's directory. Its root attribute
``n_written`` (:data:`~hamgrad.datasets.schema.PROGRESS_ATTR`) counts the items (trajectories or
samples, in global index order) already written and flushed; ``complete`` is false. When every item
is written, ``n_written`` is deleted, ``complete`` is set true (last), the file is fsynced and renamed
to the destination. A crash therefore never leaves a file under the final name, and a later call
with the same configuration resumes from ``n_written``; with a different configuration (or an
unreadable partial file) it starts again from scratch.

The partial name is fixed rather than random (as :func:`hamgrad.atomic.atomic_path` makes it) so
that a rerun can find it; the rename is done the same way (``os.replace`` after ``fsync``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py

from hamgrad.atomic import fsync_path
from hamgrad.datasets.schema import CHUNK_CACHE_BYTES, LIBVER, PROGRESS_ATTR, to_json


def partial_path(path: str | os.PathLike) -> Path:
    """Where the file for ``path`` is written until it is complete: ``.<name>.partial`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def check_destination(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Refuse a destination that cannot be written, or an existing file without ``overwrite``."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"path must name a file, got {str(path)!r}")
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist"
        )
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {str(path)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write {str(path)!r}: directory {str(parent)!r} is not writable"
        )
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {str(path)!r}: it is a directory")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{str(path)!r} already exists; pass overwrite=True (--force on the command line) "
            "to replace it"
        )
    return path


def _identity(config: Mapping[str, Any], volatile: Iterable[str]) -> str:
    return to_json({k: v for k, v in config.items() if k not in set(volatile)})


def _open_h5(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode, libver=LIBVER, rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise RuntimeError(
                f"{str(path)!r} is locked: another process is writing this dataset; wait for it "
                "to finish (or remove the file if that process is gone)"
            ) from None
        if mode != "r" and not path.exists():  # could not create it: say why, in one line
            code = _errno_of(exc)
            reason = os.strerror(code) if code else str(exc).strip().splitlines()[0]
            raise OSError(f"cannot create {str(path)!r}: {reason}") from None
        raise


def _try_resume(
    tmp: Path,
    root_attrs: Mapping[str, Any],
    volatile: Iterable[str],
    total: int,
    verify: Callable[[h5py.File, int], None],
) -> tuple[h5py.File, int] | None:
    """Reopen a partial file written with the same configuration, or ``None``."""
    try:
        f = _open_h5(tmp, "r+")
    except RuntimeError:
        raise
    except OSError:
        return None  # unreadable (e.g. cut short by a crash): start again
    try:
        for key in ("format", "schema_version", "hamgrad_version"):
            if f.attrs.get(key) != root_attrs[key]:
                raise ValueError(key)
        stored = json.loads(f.attrs["config"])
        if _identity(stored, volatile) != _identity(json.loads(root_attrs["config"]), volatile):
            raise ValueError("config")
        if bool(f.attrs.get("complete", True)):
            raise ValueError("complete")
        n_written = int(f.attrs[PROGRESS_ATTR])
        if not 0 <= n_written <= total:
            raise ValueError(PROGRESS_ATTR)
        verify(f, n_written)
    except Exception:
        f.close()
        return None
    f.attrs["config"] = root_attrs["config"]  # the volatile keys (chunk size) of this call
    f.flush()
    return f, n_written


def open_partial(
    path: Path,
    *,
    root_attrs: Mapping[str, Any],
    volatile: Iterable[str],
    total: int,
    create: Callable[[h5py.File], None],
    verify: Callable[[h5py.File, int], None],
) -> tuple[h5py.File, int]:
    """Open the partial file of ``path`` for writing; return it and the number of items written.

    A partial file whose ``format``/``schema_version``/``hamgrad_version`` attributes and ``config``
    (ignoring the keys in ``volatile``) equal ``root_attrs`` and which passes ``verify(file,
    n_written)`` is resumed; anything else there is discarded and a new file is made: ``root_attrs``
    are written, ``create(file)`` lays out the datasets and ``n_written`` starts at 0.
    """
    tmp = partial_path(path)
    if tmp.exists():
        resumed = _try_resume(tmp, root_attrs, volatile, total, verify)
        if resumed is not None:
            return resumed
        tmp.unlink()
    f = _open_h5(tmp, "w-")
    try:
        for key, value in root_attrs.items():
            f.attrs[key] = value
        f.attrs["complete"] = False
        create(f)
        f.attrs[PROGRESS_ATTR] = 0
        f.flush()
    except BaseException as exc:
        if is_write_failure(exc):  # e.g. disk full while laying out the file
            raise write_failed(f, path, exc) from None
        f.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return f, 0


def record_progress(f: h5py.File, n_written: int) -> None:
    """Mark the first ``n_written`` items as written and flush the file to disk."""
    f.attrs[PROGRESS_ATTR] = int(n_written)
    f.flush()


def finalize(f: h5py.File, path: Path) -> None:
    """Set ``complete`` (last), close, fsync and rename the partial file to ``path``."""
    try:
        del f.attrs[PROGRESS_ATTR]
        f.attrs["complete"] = True
        f.flush()
        f.close()
    except WRITE_ERRORS as exc:  # disk full: remove the partial file, say so
        raise write_failed(f, path, exc) from None
    tmp = partial_path(path)
    fsync_path(tmp)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        fsync_path(path.parent)


def discard(f: h5py.File, path: Path) -> None:
    """Close and delete the partial file of ``path`` (after an error a rerun would repeat)."""
    with contextlib.suppress(Exception):
        f.close()
    with contextlib.suppress(FileNotFoundError):
        partial_path(path).unlink()


#: What h5py raises when the operating system refuses a write (disk full, I/O error, quota).
WRITE_ERRORS = (OSError, RuntimeError)


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the operating system refusing a write (not a bug or a bad argument)."""
    if isinstance(exc, OSError):
        return True
    return isinstance(exc, RuntimeError) and (
        "write failed" in str(exc) or _errno_of(exc) is not None
    )


def _errno_of(exc: BaseException) -> int | None:
    import re

    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    found = re.search(r"errno = (\d+)", str(exc))
    return int(found.group(1)) if found else None


def write_failed(f: h5py.File, path: Path, exc: BaseException) -> OSError:
    """After a failed write: remove the partial file of ``path``; return a one-line OSError.

    HDF5 cannot close a file whose metadata it failed to write (on a full disk it fails again, and
    may crash the process at exit), so the partial file is first truncated to free its space, then
    closed and deleted: nothing is left behind, and the error says why the write failed.
    """
    tmp = partial_path(path)
    with contextlib.suppress(OSError):
        os.truncate(tmp, 0)
    with contextlib.suppress(Exception):
        f.close()
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    code = _errno_of(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror  # e.g. "No space left on device"
    elif code and "errno = " in str(exc):
        reason = os.strerror(code)  # HDF5's long report of the failed write
    else:
        reason = first
    error = OSError(
        f"cannot write {str(path)!r}: {reason}; the unfinished file was removed"
        + (" (free some disk space and run the command again)" if code == errno.ENOSPC else "")
    )
    error.errno = code
    return error


#: Free space kept in reserve for HDF5's own metadata when checking room for a write (bytes).
METADATA_RESERVE = 64 << 10


def allocated_bytes(f: h5py.File) -> int:
    """Bytes the datasets of ``f`` occupy once fully written, uncompressed (whole chunks)."""
    total = 0

    def visit(_name: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset) and not obj.is_virtual:
            shape = obj.shape or ()
            block = obj.chunks or shape
            n = 1
            for size, chunk in zip(shape, block, strict=True):
                n *= -(-size // chunk) * chunk if chunk else size
            total += n * obj.dtype.itemsize

    f.visititems(visit)
    return total


def check_room(f: h5py.File) -> None:
    """Refuse to go on writing the partial file ``f`` when its disk cannot hold the rest of it.

    HDF5 may crash the process when the disk fills up under it, so writers call this before each
    chunk: the error (an ``OSError``, errno ENOSPC) takes the writer's failure path
    (:func:`write_failed`), which removes the partial file while HDF5 can still close it cleanly.
    Compressed datasets are counted at their uncompressed size (an upper bound).
    """
    path = Path(f.filename)
    try:
        stat = os.statvfs(path.parent)
        size = path.stat().st_size
    except (OSError, AttributeError):
        return  # unknown: the write itself will tell
    free = stat.f_bavail * stat.f_frsize
    needed = allocated_bytes(f) - size + METADATA_RESERVE
    if needed > free:
        error = OSError(
            f"not enough free disk space (the rest of the file needs about {needed / 1e6:.2f} MB, "
            f"{free / 1e6:.2f} MB are free in {str(path.parent)!r})"
        )
        error.errno = errno.ENOSPC
        raise error
