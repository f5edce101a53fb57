"""Summaries of hamgrad files (what ``hamgrad inspect`` prints).

For a trajectory file: its attributes, the shape and size of each split and an energy-conservation
summary of the stored (clean-state) energies: per trajectory the relative energy error
``e_i = max_t |E_i(t) − E_i(0)| / |E_i(0)|`` (the absolute error where ``E_i(0) = 0``), reported as
the maximum and the median of ``e_i`` over the split. Energies are read in blocks of rows, so memory
stays bounded for any file size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hamgrad.datasets.reader import (
    _open_hdf5,
    check_finite,
    open_checked,
    split_group,
    split_names,
    trajectory_shape,
)
from hamgrad.datasets.schema import FIELD_ARRAYS, FORMAT_FIELDS, FORMAT_TRAJECTORIES, attr_to_python
from hamgrad.errors import DataFormatError

#: Rows of ``energy`` read at a time.
ENERGY_BLOCK_ROWS = 4096


def file_format(path: str | os.PathLike) -> str:
    """The ``format`` attribute of a hamgrad file (DataFormatError for anything else)."""
    path = Path(path)
    f = _open_hdf5(path)
    try:
        fmt = attr_to_python(f.attrs.get("format"))
    except Exception:
        fmt = None
    finally:
        f.close()
    if fmt not in (FORMAT_TRAJECTORIES, FORMAT_FIELDS):
        what = "no 'format' attribute" if fmt is None else f"format {fmt!r}"
        raise DataFormatError(f"{str(path)!r} is not a hamgrad data file ({what})")
    return fmt


def relative_energy_errors(energy: np.ndarray) -> np.ndarray:
    """Per trajectory ``max_t |E(t) − E(0)| / |E(0)|`` of ``energy`` ``(N, T+1)`` -> ``(N,)``.

    Where ``E(0) = 0`` the absolute error is used.
    """
    e0 = energy[:, :1]
    scale = np.where(e0 == 0, 1.0, np.abs(e0))
    return np.max(np.abs(energy - e0) / scale, axis=1)


def summarize(path: str | os.PathLike) -> dict[str, Any]:
    """A dictionary describing a hamgrad file: format, attributes, splits (and energy errors)."""
    path = Path(path)
    fmt = file_format(path)
    out: dict[str, Any] = {"path": str(path), "file_bytes": path.stat().st_size, "format": fmt}
    with open_checked(path, fmt) as (f, attrs):
        out["attrs"] = attrs
        splits: dict[str, Any] = {}
        for split in split_names(f):
            if fmt == FORMAT_TRAJECTORIES:
                splits[split] = _trajectory_split(f, path, attrs, split)
            else:
                group = split_group(f, path, split)
                missing = [k for k in FIELD_ARRAYS if k not in group]
                if missing:
                    raise DataFormatError(f"{str(path)!r}: split {split!r} lacks {missing}")
                splits[split] = {"n_samples": group["x"].shape[0], "dim": group["x"].shape[1]}
        out["splits"] = splits
    return out


def _stored_bytes(dataset: Any) -> int:
    """Bytes a dataset occupies: its storage, or for a virtual dataset (a joined shard file) the
    size of the data it maps, which lives in the shard files."""
    if dataset.is_virtual:
        return int(dataset.size) * dataset.dtype.itemsize
    return int(dataset.id.get_storage_size())


def _trajectory_split(f: Any, path: Path, attrs: dict[str, Any], split: str) -> dict[str, Any]:
    n, t1, dof = trajectory_shape(f, path, attrs, split)
    energy = f[split]["energy"]
    errors = []
    for r0 in range(0, n, ENERGY_BLOCK_ROWS):
        block = np.asarray(energy[r0 : r0 + ENERGY_BLOCK_ROWS], dtype=np.float64)
        check_finite(path, f"{split}/energy", block)
        errors.append(relative_energy_errors(block))
    e = np.concatenate(errors) if errors else np.zeros(0)
    info: dict[str, Any] = {
        "n_trajectories": n,
        "n_states": t1,
        "dof": dof,
        "stored_bytes": sum(_stored_bytes(f[split][k]) for k in f[split]),
        "energy_rel_error_max": float(e.max()) if e.size else float("nan"),
        "energy_rel_error_median": float(np.median(e)) if e.size else float("nan"),
    }
    if "params" in f[split]:
        info["varied_params"] = attr_to_python(f[split]["params"].attrs.get("names", "[]"))
    return info
