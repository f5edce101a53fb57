"""Compiled elementwise kernels, built on first use with the system C compiler.

The fused kernels of :mod:`hamgrad.models.tied` are bound by memory traffic on CPU: each torch
operation reads and writes whole ``(N, h)`` arrays. A few loops in C (``*_native.c`` next to this
file) do the same arithmetic in one pass, with the hidden-unit rows in L1 cache. They are
compiled once per machine and source into a cache directory and called through :mod:`ctypes`
(which releases the GIL, so row or column ranges run on torch's threads concurrently).

Everything here is optional: without a C compiler, on a non-CPU device, or with
``HAMGRAD_NATIVE=0`` in the environment, :func:`load` returns ``None`` and the torch kernels
run instead (same values to round-off). :func:`status` says which and why.

Environment:
    ``HAMGRAD_NATIVE``: ``0`` disables the compiled kernels.
    ``HAMGRAD_CACHE``: directory for the compiled libraries (default
    ``$XDG_CACHE_HOME/hamgrad`` or ``~/.cache/hamgrad``; a temporary directory if unwritable).
    ``CC``: the C compiler (default: the first of ``cc``, ``gcc``, ``clang`` found).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

#: Compiler flags. ``-ffast-math`` lets gcc call the vectorised ``exp`` of glibc's libmvec; the
#: kernels contain no NaN/inf tests (no infinities are formed) and sum each column in row order.
CFLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC", "-std=c99")
#: Link flags. Linking is a separate step *without* ``-ffast-math``: with it, gcc adds a start-up
#: routine that switches the whole process to flush-to-zero (subnormals read as 0 everywhere).
LDFLAGS = ("-shared",)
LIBS = ("-lm",)
#: Column ranges narrower than this are not split further across threads.
MIN_COLUMNS_PER_THREAD = 128
#: Below this many activations (N·h) one thread does the whole call.
MIN_PARALLEL_ACTIVATIONS = 1 << 16

#: ctypes types of the kernels' arguments: pointers, sizes and (per dtype) scalars.
POINTER = ctypes.c_void_p
INDEX = ctypes.c_ssize_t
REAL = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}
#: Name suffix of each dtype's version of a kernel function.
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}

_SOURCE_DIR = Path(__file__).resolve().parent
_lock = threading.Lock()
_libs: dict[str, ctypes.CDLL | None] = {}
_reasons: dict[str, str] = {}
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def enabled() -> bool:
    """Whether compiled kernels may be used (``HAMGRAD_NATIVE`` is not ``0``; Linux or macOS)."""
    return os.environ.get("HAMGRAD_NATIVE", "1") != "0" and sys.platform != "win32"


def _cache_dir() -> Path:
    root = os.environ.get("HAMGRAD_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        return (Path(xdg) if xdg else Path.home() / ".cache") / "hamgrad"
    except RuntimeError:  # no home directory: the temporary directory serves
        return Path(tempfile.gettempdir()) / f"hamgrad-{os.getuid()}"


def _machine_key() -> str:
    """What ``-march=native`` depends on: the architecture and the CPU's feature flags."""
    parts = [platform.machine(), platform.system()]
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features", "model name")):
                    parts.append(line.strip())
                    if len(parts) > 4:
                        break
    except OSError:
        parts.append(platform.processor())
    return "\n".join(parts)


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _build(name: str) -> ctypes.CDLL:
    source = _SOURCE_DIR / f"{name}.c"
    # the source and every header beside it (``#include "…"``) decide the library's bytes
    text = b"".join(p.read_bytes() for p in [source, *sorted(_SOURCE_DIR.glob("*.h"))])
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC, or install cc/gcc/clang)")
    try:
        version = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"{cc} --version failed: {exc}") from exc
    key = hashlib.sha256(
        b"\0".join(
            [
                text,
                " ".join((cc, *CFLAGS, *LDFLAGS, *LIBS)).encode(),
                _machine_key().encode(),
                *map(str.encode, version),
            ]
        )
    ).hexdigest()[:16]
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    for directory in (_cache_dir(), Path(tempfile.gettempdir()) / f"hamgrad-{os.getuid()}"):
        target = directory / f"{name}-{key}{suffix}"
        if target.exists():
            return ctypes.CDLL(str(target))
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=suffix, dir=directory)
            os.close(fd)
        except OSError:
            continue
        try:
            obj = tmp + ".o"
            for command in (
                [cc, *CFLAGS, "-c", str(source), "-o", obj],
                [cc, *LDFLAGS, obj, "-o", tmp, *LIBS],
            ):
                proc = subprocess.run(
                    command, capture_output=True, text=True, timeout=300, check=False
                )
                if proc.returncode != 0:
                    raise RuntimeError(
                        f"{cc} failed on {source.name}: {proc.stderr.strip()[-2000:]}"
                    )
            os.replace(tmp, target)  # atomic: concurrent builders produce the same bytes
        finally:
            for leftover in (tmp, tmp + ".o"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
        return ctypes.CDLL(str(target))
    raise RuntimeError(f"no writable cache directory for compiled kernels ({_cache_dir()})")


def load(name: str, declare: Callable[[ctypes.CDLL], None] | None = None) -> ctypes.CDLL | None:
    """The compiled library ``name`` (built from ``hamgrad/models/{name}.c``), or ``None``.

    Built at most once per process; a failure is remembered (see :func:`status`) and the callers
    fall back to their torch kernels. ``declare(lib)`` sets the functions' ctypes signatures; it
    runs once per library object, on the first call that passes it.
    """
    if not enabled():
        return None
    with _lock:
        if name not in _libs:
            try:
                _libs[name] = _build(name)
                _reasons[name] = "compiled"
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                _libs[name] = None
                _reasons[name] = f"unavailable: {exc}"
        lib = _libs[name]
        if lib is not None and declare is not None and not getattr(lib, "_hamgrad_declared", 0):
            declare(lib)
            lib._hamgrad_declared = True
        return lib


def kernel(lib: ctypes.CDLL, name: str, dtype: torch.dtype):
    """The function ``{name}_f32`` or ``{name}_f64`` of ``lib`` for tensors of ``dtype``."""
    return getattr(lib, f"{name}_{SUFFIX[dtype]}")


def detached(t: torch.Tensor) -> torch.Tensor:
    """``t`` as the kernels read it: detached from autograd and contiguous."""
    return t.detach().contiguous()


def status() -> dict[str, str]:
    """For each kernel library asked for so far: ``"compiled"`` or why it is unavailable."""
    with _lock:
        return dict(_reasons)


def usable(x: torch.Tensor) -> bool:
    """Whether the compiled kernels can take tensors like ``x`` (CPU, float32/float64)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def pointer(t: torch.Tensor) -> ctypes.c_void_p:
    """The data pointer of a contiguous tensor."""
    if not t.is_contiguous():
        raise ValueError("compiled kernels need contiguous tensors")
    return ctypes.c_void_p(t.data_ptr())


def _executor(parts: int) -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        # a pool inherited through fork() has no threads in the child: make a new one there
        if _pool is None or _pool._max_workers < parts or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="hamgrad-native")
            _pool_pid = os.getpid()
        return _pool


def thread_count(n_rows: int, n_cols: int, min_rows: int = 1) -> int:
    """How many threads a call over an ``(n_rows, n_cols)`` problem should use."""
    if n_rows * n_cols < MIN_PARALLEL_ACTIVATIONS:
        return 1
    return max(1, min(torch.get_num_threads(), n_rows // min_rows))


def run_parallel(calls) -> None:
    """Run the zero-argument callables ``calls`` (ctypes calls: they release the GIL) at once."""
    if len(calls) == 1:
        calls[0]()
        return
    futures = [_executor(len(calls) - 1).submit(c) for c in calls[1:]]
    calls[0]()
    for fut in futures:
        fut.result()


def run_columns(fn, n_rows: int, n_cols: int, *args) -> None:
    """Call ``fn(*args, n_rows, n_cols, c0, c1)`` over column ranges, on torch's thread count.

    ``fn`` is a ctypes function; it releases the GIL, so the ranges run concurrently.
    """
    parts = min(thread_count(n_rows, n_cols), n_cols // MIN_COLUMNS_PER_THREAD)
    step = -(-n_cols // max(parts, 1))
    step += -step % 16  # whole vectors per range
    run_parallel(
        [
            (lambda c0=c0: fn(*args, n_rows, n_cols, c0, min(c0 + step, n_cols)))
            for c0 in range(0, n_cols, step)
        ]
    )


def run_row_blocks(
    fn,
    head: list,
    tail: list,
    *,
    n_rows: int,
    n_cols: int,
    dtype: torch.dtype,
    scratch: int,
    accumulators: int = 0,
) -> torch.Tensor | None:
    """Call ``fn(*head, rows, [acc,] *tail, r0, r1)`` on row ranges, one per thread.

    Each thread gets ``scratch`` values of row scratch and, when ``accumulators > 0``, that many
    zeroed accumulators; their sum over the threads is returned (``None`` otherwise).
    """
    ranges = row_ranges(n_rows, thread_count(n_rows, n_cols))
    rows = torch.empty((len(ranges), scratch), dtype=dtype)
    acc = torch.zeros((len(ranges), accumulators), dtype=dtype) if accumulators else None

    def call(i: int, r0: int, r1: int) -> None:
        own = [pointer(rows[i])] + ([pointer(acc[i])] if acc is not None else [])
        fn(*head, *own, *tail, r0, r1)

    run_parallel([functools.partial(call, i, r0, r1) for i, (r0, r1) in enumerate(ranges)])
    if acc is None:
        return None
    return acc.sum(0) if len(ranges) > 1 else acc[0]


def row_ranges(n_rows: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, nearly equal ranges covering ``range(n_rows)``."""
    bounds = [n_rows * p // parts for p in range(parts + 1)]
    return [(bounds[p], bounds[p + 1]) for p in range(parts) if bounds[p] < bounds[p + 1]]
