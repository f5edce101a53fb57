"""Static gradient-field datasets (``format = "hamgrad-fields"``): points x, ∇F(x) and F(x) per split.

Samples are drawn with the field's ``sample(n, generator)`` in blocks of
:data:`~hamgrad.datasets.seeding.FIELD_BLOCK` points; block ``b`` of split number ``j`` (train 0,
val 1, test 2) uses a generator seeded from ``SeedSequence(seed, spawn_key=(j, b))``. The splits are
thus independent draws, and the arrays do not depend on resumption.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from hamgrad.datasets import partial
from hamgrad.datasets.generation import check_seed
from hamgrad.datasets.reader import check_finite, open_checked, split_group
from hamgrad.datasets.resolve import resolve_system
from hamgrad.datasets.schema import (
    DEFAULT_SPLITS,
    FIELD_ARRAYS,
    FORMAT_FIELDS,
    SCHEMA_VERSION,
    SPLIT_NAMES,
    check_compression,
    dataset_options,
    to_json,
)
from hamgrad.datasets.seeding import FIELD_BLOCK, torch_generator
from hamgrad.datasets.splits import normalize_splits, split_counts, split_ranges
from hamgrad.errors import DataFormatError
from hamgrad.validation import check_positive_int


@dataclass
class Fields:
    """One split of a field file: ``x`` and ``grad`` ``(N, d)``, ``potential`` ``(N,)``, float64."""

    x: np.ndarray
    grad: np.ndarray
    potential: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    split: str = ""

    @property
    def dim(self) -> int:
        return self.x.shape[-1]


def _counts(
    n_samples: int | None,
    counts: Mapping[str, int] | None,
    splits: Mapping[str, float] | Sequence[float] | None,
) -> dict[str, int]:
    if counts is not None:
        if n_samples is not None or splits is not None:
            raise ValueError("give either counts or n_samples (with splits), not both")
        if not isinstance(counts, Mapping) or not counts:
            raise TypeError(f"counts must be a non-empty dict split -> number, got {counts!r}")
        unknown = [k for k in counts if k not in SPLIT_NAMES]
        if unknown:
            raise ValueError(f"unknown split name(s) {unknown}; allowed: {', '.join(SPLIT_NAMES)}")
        return {
            k: check_positive_int(f"counts[{k!r}]", counts[k]) for k in SPLIT_NAMES if k in counts
        }
    if n_samples is None:
        raise ValueError("n_samples (or counts per split) is required")
    n_samples = check_positive_int("n_samples", n_samples)
    return split_counts(n_samples, normalize_splits(DEFAULT_SPLITS if splits is None else splits))


def generate_fields(
    field: Any,
    path: str | os.PathLike,
    *,
    n_samples: int | None = None,
    splits: Mapping[str, float] | Sequence[float] | None = None,
    counts: Mapping[str, int] | None = None,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    compression: str | None = None,
    compression_opts: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a static gradient-field dataset to ``path``; return the path.

    ``field`` is a registered field name (``"polymax"``, with ``params={"dim": 32}``) or a
    GradientField instance. Give ``n_samples`` split by ``splits`` (default 0.8/0.1/0.1) or
    ``counts={"train": 10000, "test": 2000}``. Points are drawn by ``field.sample``; ``grad`` and
    ``potential`` are the field's exact values there (float64).
    """
    resolved = resolve_system(field, params=params, kind="field")
    fld = resolved.system
    sizes = _counts(n_samples, counts, splits)
    seed = check_seed(seed)
    check_compression(compression, compression_opts)
    path = partial.check_destination(path, overwrite=overwrite)
    dim = int(fld.dim)
    total = sum(sizes.values())
    ranges = split_ranges(sizes)

    from hamgrad import __version__

    config = {
        "function": "hamgrad.datasets.generate_fields",
        "system": resolved.name,
        "params": resolved.params,
        "counts": sizes,
        "seed": seed,
        "block": FIELD_BLOCK,
        "compression": compression,
        "compression_opts": compression_opts,
    }
    root_attrs = {
        "format": FORMAT_FIELDS,
        "schema_version": SCHEMA_VERSION,
        "hamgrad_version": __version__,
        "system": resolved.name,
        "system_params": to_json(resolved.params),
        "dim": dim,
        "low": np.asarray(torch.as_tensor(fld.low, dtype=torch.float64), dtype=np.float64),
        "high": np.asarray(torch.as_tensor(fld.high, dtype=torch.float64), dtype=np.float64),
        "seed": seed,
        "config": to_json(config),
    }
    opts = {"compression": compression, "compression_opts": compression_opts}

    def create(f: h5py.File) -> None:
        for split, count in sizes.items():
            g = f.create_group(split)
            g.create_dataset("x", **dataset_options((count, dim), **opts))
            g.create_dataset("grad", **dataset_options((count, dim), **opts))
            g.create_dataset("potential", **dataset_options((count,), **opts))

    def verify(f: h5py.File, n_written: int) -> None:
        for split, (start, stop) in ranges.items():
            if start < n_written <= stop:
                row = n_written - 1 - start
                if (n_written - start) % FIELD_BLOCK and n_written != stop:
                    raise ValueError("progress not at a block boundary")
                for name in FIELD_ARRAYS:
                    if not np.isfinite(f[split][name][row]).all():
                        raise ValueError(f"{split}/{name}[{row}] was not written")

    f, done = partial.open_partial(
        path, root_attrs=root_attrs, volatile=(), total=total, create=create, verify=verify
    )
    try:
        _fill(f, fld, sizes, ranges, seed, done, progress, resolved.name)
    except (ValueError, TypeError):
        partial.discard(f, path)
        raise
    except BaseException as exc:
        if partial.is_write_failure(exc):  # disk full or I/O error: a clear error, no file left
            raise partial.write_failed(f, path, exc) from None
        f.close()
        raise
    partial.finalize(f, path)
    return path


def _fill(
    f: h5py.File,
    fld: Any,
    sizes: Mapping[str, int],
    ranges: Mapping[str, tuple[int, int]],
    seed: int,
    done: int,
    progress: bool,
    name: str,
) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(
        total=sum(sizes.values()),
        initial=done,
        unit="pt",
        desc=f"sample {name}",
        file=sys.stderr,
        disable=not progress,
    )
    try:
        for split, (start, stop) in ranges.items():
            j = SPLIT_NAMES.index(split)
            count = stop - start
            first_block = max(0, done - start) // FIELD_BLOCK
            for b in range(first_block, -(-count // FIELD_BLOCK)):
                r0, r1 = b * FIELD_BLOCK, min((b + 1) * FIELD_BLOCK, count)
                partial.check_room(f)  # a full disk is a clear error, not a crash inside HDF5
                with torch.no_grad():
                    x = torch.as_tensor(
                        fld.sample(r1 - r0, generator=torch_generator(seed, j, b)),
                        dtype=torch.float64,
                    )
                    grad = torch.as_tensor(fld.grad(x), dtype=torch.float64)
                    pot = torch.as_tensor(fld.potential(x), dtype=torch.float64)
                for key, value in (("x", x), ("grad", grad), ("potential", pot)):
                    arr = value.numpy()
                    if not np.isfinite(arr).all():
                        raise ValueError(f"field {name!r} gave non-finite {key} values")
                    f[split][key][r0:r1] = arr
                partial.record_progress(f, start + r1)
                bar.update(r1 - r0)
    finally:
        bar.close()


def load_fields(path: str | os.PathLike, split: str) -> Fields:
    """Load one split of a field file (validated like :func:`load_trajectories`)."""
    path = Path(path)
    with open_checked(path, FORMAT_FIELDS) as (f, attrs):
        group = split_group(f, path, split)
        missing = [k for k in FIELD_ARRAYS if k not in group]
        if missing:
            raise DataFormatError(f"{str(path)!r}: split {split!r} lacks dataset(s) {missing}")
        arrays = {k: np.asarray(group[k][()], dtype=np.float64) for k in FIELD_ARRAYS}
    n = arrays["x"].shape[0]
    dim = attrs.get("dim")
    if (
        arrays["x"].shape != (n, dim)
        or arrays["grad"].shape != (n, dim)
        or arrays["potential"].shape != (n,)
    ):
        raise DataFormatError(
            f"{str(path)!r}: split {split!r} has inconsistent shapes "
            f"{ {k: v.shape for k, v in arrays.items()} } for dim {dim}"
        )
    for key, value in arrays.items():
        check_finite(path, f"{split}/{key}", value)
    return Fields(
        x=arrays["x"], grad=arrays["grad"], potential=arrays["potential"], attrs=attrs, split=split
    )
