"""Distributed generation: one shard file per rank and a file that joins them (HDF5 virtual datasets).

Under ``torchrun`` (``WORLD_SIZE = W > 1``) :func:`hamgrad.datasets.generate` hands over to
:func:`generate_sharded`. The simulation batches ``0 .. ceil(N/S)-1`` are cut into ``W`` contiguous
runs (:func:`hamgrad.distributed.shard_range`); rank ``r`` simulates the trajectories of its run,
``[i0, i1)``, and writes them to its shard file ``<stem>.shard-<r>-of-<W><suffix>`` beside the
output. Trajectory ``i`` depends on ``(seed, i)`` and its simulation batch only, so the shards hold
exactly the rows a single process would write.

A shard file (``format = "hamgrad-trajectory-shard"``) has the root attributes of the dataset plus
``shard_index``, ``shard_count``, ``first`` and ``stop`` (its global trajectory range), and one group
per split it meets holding that split's rows of ``[i0, i1)``. Like every hamgrad file it is written
as ``.<name>.partial`` and renamed when complete, and a rerun resumes it (or keeps it, if complete).

When every shard is complete, rank 0 writes the joined file: the dataset's usual root attributes
(plus ``shards``: the JSON list of shard file names), the ``t`` dataset, and per split the arrays as
virtual datasets mapping each shard's rows. Shards are named relative to the joined file, so the
directory may be moved as a whole; the shard files must stay beside the joined file. The joined
file is written under a partial name and renamed last: it appears only when all shards are
complete, and plain h5py and :func:`~hamgrad.datasets.load_trajectories` read it like any dataset.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hamgrad.datasets import partial
from hamgrad.datasets.schema import TRAJECTORY_ARRAYS, dataset_options
from hamgrad.errors import ConvergenceError, DataFormatError, DivergenceError

FORMAT_SHARD = "hamgrad-trajectory-shard"
#: Root attribute of a joined file: JSON list of its shard files (names relative to it).
SHARDS_ATTR = "shards"

__all__ = [
    "FORMAT_SHARD",
    "SHARDS_ATTR",
    "check_shards",
    "generate_sharded",
    "shard_path",
    "shard_ranges",
]


def shard_path(path: str | os.PathLike, shard: int, n_shards: int) -> Path:
    """The shard file of ``shard`` (of ``n_shards``) beside ``path``: ``data.shard-0-of-2.h5``."""
    path = Path(path)
    width = len(str(n_shards - 1))
    return path.with_name(f"{path.stem}.shard-{shard:0{width}d}-of-{n_shards}{path.suffix}")


def shard_ranges(
    n_trajectories: int, simulation_batch: int, n_shards: int
) -> list[tuple[int, int]]:
    """Global trajectory range ``[i0, i1)`` of each shard: contiguous runs of whole batches.

    A shard gets no trajectories (``i0 == i1``) when there are fewer batches than shards.
    """
    n_batches = -(-n_trajectories // simulation_batch)
    out = []
    for k in range(n_shards):
        b0, b1 = k * n_batches // n_shards, (k + 1) * n_batches // n_shards
        out.append(
            (min(b0 * simulation_batch, n_trajectories), min(b1 * simulation_batch, n_trajectories))
        )
    return out


def _split_rows(
    ranges: Mapping[str, tuple[int, int]], i0: int, i1: int
) -> dict[str, tuple[int, int]]:
    """For each split meeting ``[i0, i1)``: the global range of its rows inside ``[i0, i1)``."""
    out = {}
    for split, (start, stop) in ranges.items():
        lo, hi = max(i0, start), min(i1, stop)
        if lo < hi:
            out[split] = (lo, hi)
    return out


def _shard_attrs(
    root_attrs: Mapping[str, Any], shard: int, n_shards: int, i0: int, i1: int
) -> dict[str, Any]:
    attrs = dict(root_attrs)
    attrs.update(format=FORMAT_SHARD, shard_index=shard, shard_count=n_shards, first=i0, stop=i1)
    return attrs


def _write_shard(
    path: Path,
    system: Any,
    plan: Any,
    root_attrs: Mapping[str, Any],
    shard: int,
    n_shards: int,
    *,
    volatile: tuple[str, ...],
    compression: str | None,
    compression_opts: int | None,
    batches_per_chunk: int,
    progress: bool,
    name: str,
    overwrite: bool,
) -> Path | None:
    """Write (or resume, or keep) this rank's shard file; ``None`` for an empty shard."""
    from hamgrad.datasets.generation import simulate_range

    i0, i1 = shard_ranges(plan.n_trajectories, plan.simulation_batch, n_shards)[shard]
    target = shard_path(path, shard, n_shards)
    if i0 == i1:
        return None
    attrs = _shard_attrs(root_attrs, shard, n_shards, i0, i1)
    if target.exists():
        if not overwrite and _is_complete_shard(target, attrs, volatile):
            return target  # finished by an earlier run of the same command
        target.unlink()
    rows = _split_rows(plan.ranges, i0, i1)
    n = int(root_attrs["dof"])
    t1 = plan.n_steps + 1
    opts = {"compression": compression, "compression_opts": compression_opts}

    def create(f: h5py.File) -> None:
        for split, (lo, hi) in rows.items():
            g = f.create_group(split)
            for key in ("q", "p", "dqdt", "dpdt"):
                g.create_dataset(key, **dataset_options((hi - lo, t1, n), **opts))
            g.create_dataset("energy", **dataset_options((hi - lo, t1), **opts))
            if plan.vary:
                d = g.create_dataset("params", **dataset_options((hi - lo, len(plan.vary)), **opts))
                d.attrs["names"] = json.dumps(list(plan.vary))

    def verify(f: h5py.File, n_written: int) -> None:
        if n_written % plan.simulation_batch and n_written != i1 - i0:
            raise ValueError("progress is not at a batch boundary")
        if n_written == 0:
            return
        last = i0 + n_written - 1
        for split, (lo, hi) in rows.items():
            if lo <= last < hi:
                for key in TRAJECTORY_ARRAYS:
                    if not np.isfinite(f[split][key][last - lo]).all():
                        raise ValueError(f"{split}/{key}[{last - lo}] was not written")

    f, done = partial.open_partial(
        target, root_attrs=attrs, volatile=volatile, total=i1 - i0, create=create, verify=verify
    )
    try:
        from tqdm.auto import tqdm

        step = batches_per_chunk * plan.simulation_batch
        with tqdm(
            total=i1 - i0,
            initial=done,
            unit="traj",
            desc=f"generate {name} (rank {shard}/{n_shards})",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            for c0 in range(i0 + done, i1, step):
                c1 = min(c0 + step, i1)
                partial.check_room(f)
                arrays = simulate_range(system, plan, c0, c1)
                for split, (lo, hi) in _split_rows(plan.ranges, c0, c1).items():
                    base = rows[split][0]
                    for key, value in arrays.items():
                        f[split][key][lo - base : hi - base] = value[lo - c0 : hi - c0]
                partial.record_progress(f, c1 - i0)
                bar.update(c1 - c0)
    except (DivergenceError, ConvergenceError, ValueError, TypeError):
        partial.discard(f, target)  # a rerun would fail the same way
        raise
    except BaseException as exc:
        if partial.is_write_failure(exc):  # disk full or I/O error: a clear error, no file left
            raise partial.write_failed(f, target, exc) from None
        f.close()  # keep the partial shard: a rerun resumes it
        raise
    partial.finalize(f, target)
    return target


def _is_complete_shard(path: Path, attrs: Mapping[str, Any], volatile: tuple[str, ...]) -> bool:
    """Whether ``path`` is a complete shard written with the same configuration and range."""
    try:
        with h5py.File(path, "r") as f:
            stored = {k: f.attrs[k] for k in f.attrs}
            complete = bool(stored.get("complete", False))
    except (OSError, KeyError, ValueError, RuntimeError):
        return False
    if not complete:
        return False
    for key in ("format", "schema_version", "hamgrad_version", "shard_index", "shard_count"):
        if _plain(stored.get(key)) != _plain(attrs[key]):
            return False
    for key in ("first", "stop"):
        if _plain(stored.get(key)) != attrs[key]:
            return False
    try:
        old = json.loads(_plain(stored["config"]))
    except (KeyError, TypeError, ValueError):
        return False
    new = json.loads(attrs["config"])
    return {k: v for k, v in old.items() if k not in volatile} == {
        k: v for k, v in new.items() if k not in volatile
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join(
    path: Path,
    plan: Any,
    root_attrs: Mapping[str, Any],
    shards: list[tuple[Path, int, int]],
    *,
    volatile: tuple[str, ...],
) -> None:
    """Rank 0: write the joined file (virtual datasets over the shards) and rename it into place.

    ``shards`` lists ``(file, i0, i1)`` for every rank, in rank order (empty ones included).
    """
    n = int(root_attrs["dof"])
    t1 = plan.n_steps + 1
    for k, (shard_file, i0, i1) in enumerate(shards):
        expected = _shard_attrs(root_attrs, k, len(shards), i0, i1)
        if i0 < i1 and not _is_complete_shard(shard_file, expected, volatile):
            raise DataFormatError(
                f"shard {str(shard_file)!r} is missing or incomplete; rerun the same command"
            )
    shards = [s for s in shards if s[1] < s[2]]
    attrs = dict(root_attrs)
    attrs[SHARDS_ATTR] = json.dumps([s.name for s, _, _ in shards])

    def create(f: h5py.File) -> None:
        f.create_dataset(
            "t", data=plan.dt * np.arange(t1, dtype=np.float64), fletcher32=True, chunks=True
        )
        for split, count in plan.counts.items():
            g = f.create_group(split)
            start = plan.ranges[split][0]
            shapes = {key: (t1, n) for key in ("q", "p", "dqdt", "dpdt")}
            shapes["energy"] = (t1,)
            if plan.vary:
                shapes["params"] = (len(plan.vary),)
            for key, tail in shapes.items():
                layout = h5py.VirtualLayout(shape=(count, *tail), dtype=np.float64)
                for shard_file, i0, i1 in shards:
                    rows = _split_rows({split: plan.ranges[split]}, i0, i1)
                    if split in rows:
                        lo, hi = rows[split]
                        layout[lo - start : hi - start] = h5py.VirtualSource(
                            shard_file.name, f"{split}/{key}", shape=(hi - lo, *tail)
                        )
                d = g.create_virtual_dataset(key, layout, fillvalue=np.nan)
                if key == "params":
                    d.attrs["names"] = json.dumps(list(plan.vary))

    tmp = partial.partial_path(path)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a join interrupted earlier: it is quick to redo
    f, _ = partial.open_partial(
        path,
        root_attrs=attrs,
        volatile=volatile,
        total=1,
        create=create,
        verify=lambda f, n: None,
    )
    try:
        partial.record_progress(f, 1)
    except BaseException:
        partial.discard(f, path)
        raise
    partial.finalize(f, path)


def generate_sharded(
    path: Path,
    system: Any,
    plan: Any,
    root_attrs: Mapping[str, Any],
    *,
    volatile: tuple[str, ...],
    compression: str | None,
    compression_opts: int | None,
    batches_per_chunk: int,
    progress: bool,
    name: str,
    overwrite: bool,
) -> Path:
    """Write this rank's shard, then (rank 0) the joined file; return ``path`` on every rank.

    Collective: every rank of the group must call it with the same arguments. An error on any rank
    is raised on every rank. Called by :func:`hamgrad.datasets.generate` under torchrun.
    """
    from hamgrad import distributed  # torch: imported only when generating

    n_shards, shard = distributed.world_size(), distributed.rank()
    ranges = shard_ranges(plan.n_trajectories, plan.simulation_batch, n_shards)
    with distributed.collective("writing the shards"):
        _write_shard(
            path,
            system,
            plan,
            root_attrs,
            shard,
            n_shards,
            volatile=volatile,
            compression=compression,
            compression_opts=compression_opts,
            batches_per_chunk=batches_per_chunk,
            progress=progress and distributed.is_main(),
            name=name,
            overwrite=overwrite,
        )
    shards = [(shard_path(path, k, n_shards), i0, i1) for k, (i0, i1) in enumerate(ranges)]
    distributed.call_on_main(lambda: _join(path, plan, root_attrs, shards, volatile=volatile))
    return path


def check_shards(f: h5py.File, path: Path) -> None:
    """For a joined file (root attribute ``shards``): every shard file must exist beside it.

    Raises DataFormatError naming the missing ones (a virtual dataset would otherwise read them as
    fill values). A file without the attribute is not a joined file and passes.
    """
    if SHARDS_ATTR not in f.attrs:
        return
    try:
        names = json.loads(_plain(f.attrs[SHARDS_ATTR]))
        if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
            raise ValueError(names)
    except (TypeError, ValueError):
        raise DataFormatError(f"{str(path)!r} is corrupt: its {SHARDS_ATTR!r} attribute") from None
    missing = [s for s in names if not (path.parent / s).is_file()]
    if missing:
        raise DataFormatError(
            f"{str(path)!r} joins shard files that are missing: {', '.join(missing)} "
            "(keep the shard files beside the joined file)"
        )
    for s in names:
        try:
            with h5py.File(path.parent / s, "r") as shard:
                ok = _plain(shard.attrs.get("format")) == FORMAT_SHARD and bool(
                    shard.attrs.get("complete", False)
                )
        except (OSError, RuntimeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise DataFormatError(
                f"{str(path)!r}: its shard file {s!r} is not a complete hamgrad shard "
                "(damaged or replaced); generate the dataset again"
            )
