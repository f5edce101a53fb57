"""Running hamgrad on several processes with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node=W -m hamgrad train ...`` starts ``W`` copies of the program; each reads
its rank and the world size from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Outside torchrun the world size is 1 and every
function here is a no-op, so the same code runs on one process unchanged.

- :func:`init_process_group` joins the group once per process (gloo for CPU tensors; when CUDA
  is available, nccl for CUDA tensors); :func:`barrier`, :func:`all_gather_object` and :func:`agree` are the collectives the
  writers need; :func:`is_main` says whether this is rank 0 (the only rank that writes run files).
- :func:`shard_range` splits ``n`` items into contiguous per-rank ranges.
- :class:`ParallelLoss` is data-parallel training: every rank takes its slice of the same global
  batch and gradients are averaged across ranks, with ``DistributedDataParallel`` (default) or a
  plain all-reduce after backward (``HAMGRAD_GRADIENT_SYNC=allreduce``). The batch size is global:
  the averaged gradient is that of the whole batch, whatever the number of ranks.
- :func:`free_port` finds a free loopback port (to launch a local group, e.g. in tests).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

#: Ways of averaging gradients across ranks (environment variable ``HAMGRAD_GRADIENT_SYNC``).
GRADIENT_SYNC_MODES = ("ddp", "allreduce")
GRADIENT_SYNC_ENV = "HAMGRAD_GRADIENT_SYNC"

__all__ = [
    "GRADIENT_SYNC_MODES",
    "ParallelLoss",
    "agree",
    "all_gather_object",
    "barrier",
    "call_on_main",
    "default_backend",
    "free_port",
    "init_process_group",
    "is_distributed",
    "is_main",
    "local_rank",
    "rank",
    "shard_range",
    "world_size",
]


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None
    if value < 0:
        raise ValueError(f"environment variable {name} must be >= 0, got {value}")
    return value


def world_size() -> int:
    """Number of processes in the job (``WORLD_SIZE``; 1 outside torchrun)."""
    if _initialized():
        return torch.distributed.get_world_size()
    size = _env_int("WORLD_SIZE", 1)
    if size < 1:
        raise ValueError(f"environment variable WORLD_SIZE must be >= 1, got {size}")
    return size


def rank() -> int:
    """This process's rank in ``[0, world_size())`` (``RANK``; 0 outside torchrun)."""
    if _initialized():
        return torch.distributed.get_rank()
    r = _env_int("RANK", 0)
    if r >= world_size():
        raise ValueError(f"environment variable RANK={r} must be below WORLD_SIZE={world_size()}")
    return r


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; selects the GPU under nccl)."""
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    """True when the job has more than one process."""
    return world_size() > 1


def is_main() -> bool:
    """True on rank 0 (and on a single process): the rank that writes run files and prints."""
    return rank() == 0


def default_backend() -> str:
    """``"gloo"``; with CUDA ``"cpu:gloo,cuda:nccl"`` (gloo for CPU tensors, nccl for GPU ones)."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def _initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def init_process_group(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Join the process group when ``WORLD_SIZE > 1``; return whether this is a distributed run.

    Idempotent (a second call does nothing). Under nccl each process uses GPU ``LOCAL_RANK``.
    The group is destroyed when the process exits. Under CUDA the default backend maps CPU
    tensors to gloo and CUDA tensors to nccl, so a model trained on the CPU works there too.
    """
    if _initialized():
        return torch.distributed.get_world_size() > 1
    if world_size() <= 1:
        return False
    if not torch.distributed.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size()} but {', '.join(missing)} not set; launch the job with "
            "torchrun (e.g. torchrun --standalone --nproc_per_node=2 -m hamgrad ...)"
        )
    backend = backend or default_backend()
    if "nccl" in backend:
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    torch.distributed.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank(),
        world_size=world_size(),
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    atexit.register(_destroy)
    return True


def _destroy() -> None:
    if _initialized():
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (no-op on one process)."""
    if _initialized():
        if torch.distributed.get_backend() == "nccl":
            torch.distributed.barrier(device_ids=[local_rank()])
        else:
            torch.distributed.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` on one process."""
    if not _initialized():
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def _summary(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def agree(error: BaseException | None, what: str) -> None:
    """Collective check after a step every rank ran: raise on every rank if any rank failed.

    The failing rank re-raises its own ``error``; the others raise a ``RuntimeError`` with the
    first failed rank's message, its rank and ``what`` (the step). On one process this only
    re-raises ``error``.
    """
    gathered = all_gather_object(None if error is None else _summary(error))
    if error is not None:
        raise error
    for r, message in enumerate(gathered):
        if message is not None:
            raise RuntimeError(f"{message} (on rank {r}, {what})")


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """Run a block on every rank; if it raises on any rank, raise on all (see :func:`agree`)."""
    error: BaseException | None = None
    try:
        yield
    except Exception as exc:
        error = exc
    agree(error, what)


def call_on_main(fn: Callable[[], Any], default: Any = None, *, enabled: bool = True) -> Any:
    """Run ``fn()`` on rank 0 only (when ``enabled``); the other ranks get ``default``.

    In a distributed run every rank waits for rank 0, and an exception raised by ``fn`` on rank 0
    is raised on every rank, so no rank goes on alone.
    """
    if not _initialized():
        return fn() if enabled and is_main() else default
    result, error = default, None
    if is_main() and enabled:
        try:
            result = fn()
        except Exception as exc:
            error = exc
    agree(error, "which writes the files")
    return result


def shard_range(n: int, shard: int | None = None, n_shards: int | None = None) -> tuple[int, int]:
    """The contiguous range ``[i0, i1)`` of ``n`` items that shard ``shard`` of ``n_shards`` owns.

    Sizes differ by at most one; the ranges of shards ``0 .. n_shards-1`` tile ``[0, n)`` in order.
    Defaults: this process's rank and the world size.
    """
    shard = rank() if shard is None else shard
    n_shards = world_size() if n_shards is None else n_shards
    if n_shards < 1 or not 0 <= shard < n_shards:
        raise ValueError(f"need 0 <= shard < n_shards, got shard={shard}, n_shards={n_shards}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return shard * n // n_shards, (shard + 1) * n // n_shards


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (for ``--master_port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- data-parallel training -------------------------------------------------------------------


class _LossModule(nn.Module):
    """``forward(x, y) = loss_fn(x, y)`` with ``model`` registered, so DDP sees its parameters."""

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.loss_fn(x, y)


def gradient_sync_mode() -> str:
    """``HAMGRAD_GRADIENT_SYNC`` (``"ddp"``, the default, or ``"allreduce"``)."""
    mode = os.environ.get(GRADIENT_SYNC_ENV, "ddp").strip().lower() or "ddp"
    if mode not in GRADIENT_SYNC_MODES:
        raise ValueError(
            f"{GRADIENT_SYNC_ENV} must be one of {', '.join(GRADIENT_SYNC_MODES)}, got {mode!r}"
        )
    return mode


class ParallelLoss:
    """The loss of one optimisation step, computed data-parallel across the ranks.

    ``loss = parallel(x, y)`` takes the *global* batch (``x`` (B, ...), ``y`` (B, ...) or ``None``;
    the same on every rank) and returns this rank's loss on its contiguous slice of rows
    (:func:`shard_range`), scaled by ``W·n_r/B`` so that after ``loss.backward()``, which averages
    gradients over the ``W`` ranks, every rank holds the gradient of the mean loss over the whole
    batch. ``parallel.value(loss)`` is that global mean loss (a float, equal on every rank).

    Gradients are averaged by ``DistributedDataParallel`` (mode ``"ddp"``: the loss is computed
    through a DDP wrapper, so models that take gradients inside their forward pass, like HNN, work)
    or by an all-reduce of each parameter's gradient as soon as backward has accumulated it (mode
    ``"allreduce"``). The initial parameters of rank 0 are broadcast to all ranks in both modes.

    On one process this is ``loss_fn(x, y)`` and ``float(loss)``: nothing changes.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
        mode: str | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.world = world_size() if _initialized() else 1
        self.rank = rank() if _initialized() else 0
        self.mode = "single" if self.world == 1 else (mode or gradient_sync_mode())
        self._forward: Callable[..., torch.Tensor] = loss_fn
        if self.mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            first = next(model.parameters(), None)
            device_ids = [first.device.index] if first is not None and first.is_cuda else None
            # a (k, 1) parameter's gradient may come with strides (1, k): same memory, harmless
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
            self._forward = DistributedDataParallel(
                _LossModule(model, loss_fn), device_ids=device_ids
            )
        elif self.mode == "allreduce":
            broadcast_parameters(model)
            self._hooks = [
                p.register_post_accumulate_grad_hook(self._average)
                for p in model.parameters()
                if p.requires_grad
            ]
        elif self.mode != "single":
            raise ValueError(f"mode must be one of {', '.join(GRADIENT_SYNC_MODES)}, got {mode!r}")

    def _average(self, param: torch.Tensor) -> None:
        torch.distributed.all_reduce(param.grad)
        param.grad.div_(self.world)

    def local_rows(self, n: int) -> tuple[int, int]:
        """Rows ``[i0, i1)`` of a global batch of ``n`` rows that this rank computes."""
        if n < self.world:
            raise ValueError(
                f"the batch ({n} samples) must hold at least one sample per rank "
                f"({self.world} ranks); raise batch_size"
            )
        return shard_range(n, self.rank, self.world)

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.world == 1:
            return self.loss_fn(x, y)
        n = x.shape[0]
        i0, i1 = self.local_rows(n)
        loss = self._forward(x[i0:i1], None if y is None else y[i0:i1])
        scale = self.world * (i1 - i0) / n
        return loss if scale == 1.0 else loss * scale

    def value(self, loss: torch.Tensor) -> float:
        """The mean loss over the global batch (collective: every rank must call it)."""
        if self.world == 1:
            return float(loss.detach())
        total = loss.detach().to(torch.float64).reshape(1) / self.world  # on the loss's device
        torch.distributed.all_reduce(total)
        return float(total.item())


def broadcast_parameters(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (no-op on one process)."""
    if not _initialized():
        return
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            torch.distributed.broadcast(tensor.data, src=src)
