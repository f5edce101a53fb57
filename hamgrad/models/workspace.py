"""Per-thread scratch buffers reused across calls by the fused kernels.

Allocating fresh multi-megabyte tensors on every forward and backward pass is expensive on CPU:
the C allocator returns freed memory to the operating system and every new page then costs a
page fault. The fused kernels of :mod:`hamgrad.models.tied` therefore keep their temporaries in
buffers obtained here. A buffer never leaves the call that uses it (results are always fresh
tensors), so reusing it in the next call is safe; each thread has its own cache.

The cache holds at most :data:`MAX_ENTRIES` buffer sets per thread and never one larger than
:data:`MAX_CACHED_BYTES` (larger sets are allocated for the call and freed afterwards).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

#: Buffer sets kept per thread (least recently used dropped first).
MAX_ENTRIES = 4
#: Largest buffer set kept between calls, in bytes.
MAX_CACHED_BYTES = 256 << 20

_local = threading.local()


def _cache() -> OrderedDict:
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = OrderedDict()
    return cache


def scratch(
    tag: str, count: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A ``(count, *shape)`` uninitialised block for one call of the kernel named ``tag``.

    Two calls with the same arguments in the same thread return the same memory, so the caller
    must be done with the buffers before it (or anything it calls) asks for them again.
    """
    key = (tag, count, tuple(shape), dtype, torch.device(device))
    cache = _cache()
    block = cache.get(key)
    if block is None:
        block = torch.empty((count, *shape), dtype=dtype, device=device)
        if block.numel() * block.element_size() <= MAX_CACHED_BYTES:
            cache[key] = block
            while len(cache) > MAX_ENTRIES:
                cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return block


def clear() -> None:
    """Drop this thread's cached buffers."""
    _cache().clear()


class BufferPool:
    """Blocks kept from a forward pass for its backward pass, then recycled.

    A forward pass that must keep arrays for its backward takes a block with :meth:`acquire`
    (recycled when one of the right size is free, fresh otherwise); the block is given back with
    :meth:`release` when the graph node holding it is freed (a ``weakref.finalize`` on the
    autograd context), i.e. exactly when autograd would free its own saved tensors. At most
    ``max_blocks`` free blocks are kept. Thread-safe.
    """

    def __init__(self, max_blocks: int = 2, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self.max_blocks = max_blocks
        self.max_bytes = max_bytes
        self._free: list[torch.Tensor] = []
        self._lock = threading.Lock()

    def acquire(
        self, count: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """A ``(count, *shape)`` block (uninitialised)."""
        full = (count, *shape)
        device = torch.device(device)
        with self._lock:
            for i, block in enumerate(self._free):
                if block.shape == full and block.dtype == dtype and block.device == device:
                    return self._free.pop(i)
        return torch.empty(full, dtype=dtype, device=device)

    def release(self, block: torch.Tensor) -> None:
        """Give ``block`` back; the caller must not use it afterwards."""
        if block.numel() * block.element_size() > self.max_bytes:
            return
        with self._lock:
            self._free.append(block)
            while len(self._free) > self.max_blocks:
                self._free.pop(0)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


#: The pool shared by the fused kernels.
saved_pool = BufferPool()
