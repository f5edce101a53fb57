"""Read and validate hamgrad HDF5 files; load a trajectory split into numpy arrays.

Every problem with a file (missing, not HDF5, truncated, corrupt, foreign format, unsupported
schema version, incomplete, missing split, wrong shapes, non-finite values) is a one-line
:class:`~hamgrad.errors.DataFormatError` naming the file; h5py's own exceptions never escape.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hamgrad.datasets.partial import partial_path
from hamgrad.datasets.schema import (
    FORMAT_FIELDS,
    FORMAT_TRAJECTORIES,
    SPLIT_NAMES,
    SUPPORTED_SCHEMA_VERSIONS,
    TRAJECTORY_ARRAYS,
    attr_to_python,
    read_attrs,
)
from hamgrad.errors import DataFormatError

#: Exceptions h5py/HDF5 raise on damaged files; they are rewrapped as DataFormatError.
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError)

_LOADERS = {FORMAT_TRAJECTORIES: "load_trajectories", FORMAT_FIELDS: "load_fields"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_hdf5(path: Path) -> h5py.File:
    if not path.exists():
        tmp = partial_path(path)
        hint = (
            f" (an unfinished generation was found at {str(tmp)!r}: rerun the same generate "
            "command to resume it)"
            if tmp.exists()
            else ""
        )
        raise DataFormatError(f"{str(path)!r}: no such file{hint}")
    if path.is_dir():
        raise DataFormatError(f"{str(path)!r} is a directory, not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except H5_ERRORS as exc:
        try:
            is_hdf5 = h5py.is_hdf5(path)
        except H5_ERRORS:
            is_hdf5 = False
        if not is_hdf5:
            raise DataFormatError(f"{str(path)!r} is not an HDF5 file") from None
        raise DataFormatError(
            f"{str(path)!r} is truncated or corrupt and cannot be opened ({_first_line(exc)})"
        ) from None


def check_root(f: h5py.File, path: Path, expected_format: str) -> dict[str, Any]:
    """Validate the root attributes ``format``, ``schema_version`` and ``complete``; return all."""
    attrs = read_attrs(f)
    fmt = attrs.get("format")
    if fmt != expected_format:
        if fmt in _LOADERS:
            raise DataFormatError(
                f"{str(path)!r} is a {fmt!r} file, not {expected_format!r}; "
                f"read it with {_LOADERS[fmt]}"
            )
        what = "no 'format' attribute" if fmt is None else f"format {fmt!r}"
        raise DataFormatError(f"{str(path)!r} is not a hamgrad {expected_format!r} file ({what})")
    version = attrs.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise DataFormatError(
            f"{str(path)!r} has schema_version {version!r}; this hamgrad reads "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))} (a newer file needs a newer hamgrad)"
        )
    _check_consistency(path, attrs, expected_format)
    if attrs.get("complete") is not True:
        raise DataFormatError(
            f"{str(path)!r} is incomplete (its 'complete' attribute is not true): "
            "its generation did not finish; generate it again"
        )
    return attrs


#: Root attributes repeated inside ``config`` (key in config -> attribute), per format.
_CONFIG_MIRRORS = {
    FORMAT_TRAJECTORIES: {
        "system": "system",
        "params": "system_params",
        "dt": "dt",
        "n_steps": "n_steps",
        "seed": "seed",
        "noise_std": "noise_std",
    },
    FORMAT_FIELDS: {"system": "system", "params": "system_params", "seed": "seed"},
}


def _check_consistency(path: Path, attrs: dict[str, Any], fmt: str) -> None:
    """The text attributes live in HDF5's global heap, which has no checksum: cross-check them.

    ``config`` repeats the system, its parameters and the numeric settings, which are also stored
    as checksummed numeric attributes; a corrupted text attribute makes them disagree.
    """
    config = attrs.get("config")
    if not isinstance(config, dict):
        raise DataFormatError(
            f"{str(path)!r} is corrupt: its 'config' attribute is not a JSON object"
        )
    for key, attr in _CONFIG_MIRRORS[fmt].items():
        if key not in config or attr not in attrs or config[key] != attrs[attr]:
            raise DataFormatError(
                f"{str(path)!r} is corrupt: attribute {attr!r} disagrees with config[{key!r}]"
            )


def split_names(f: h5py.File) -> list[str]:
    """The split groups of an open file: train, val, test first, then any others sorted."""
    groups = [k for k in f if isinstance(f.get(k, getlink=False), h5py.Group)]
    return sorted(groups, key=lambda k: (SPLIT_NAMES.index(k) if k in SPLIT_NAMES else 3, k))


def split_group(f: h5py.File, path: Path, split: str) -> h5py.Group:
    """The group of ``split``, or a DataFormatError listing the available splits."""
    if not isinstance(split, str) or split not in f or not isinstance(f[split], h5py.Group):
        available = ", ".join(split_names(f)) or "none"
        raise DataFormatError(f"{str(path)!r} has no split {split!r}; available: {available}")
    return f[split]


@contextlib.contextmanager
def open_checked(path: str | os.PathLike, expected_format: str) -> Iterator[tuple[h5py.File, dict]]:
    """Open a complete hamgrad file of ``expected_format``; yield it with its root attributes.

    h5py errors raised inside the block (damaged data) become a DataFormatError naming the file.
    """
    path = Path(path)
    f = _open_hdf5(path)
    try:
        try:
            attrs = check_root(f, path, expected_format)
            from hamgrad.datasets.sharded import check_shards

            check_shards(f, path)  # a file joining shards (distributed generation) needs them all
            yield f, attrs
        except DataFormatError:
            raise
        except H5_ERRORS as exc:
            raise DataFormatError(
                f"{str(path)!r} is corrupt: reading it failed ({_first_line(exc)})"
            ) from None
    finally:
        with contextlib.suppress(Exception):
            f.close()


def trajectory_shape(
    f: h5py.File, path: Path, attrs: dict[str, Any], split: str
) -> tuple[int, int, int]:
    """Validate the shapes of a trajectory split; return ``(N, T+1, n)``."""
    group = split_group(f, path, split)
    n_steps, dof = attrs.get("n_steps"), attrs.get("dof")
    if not isinstance(n_steps, int) or not isinstance(dof, int):
        raise DataFormatError(f"{str(path)!r}: root attributes n_steps/dof missing or not integers")
    missing = [name for name in TRAJECTORY_ARRAYS if name not in group]
    if missing or "t" not in f:
        raise DataFormatError(
            f"{str(path)!r}: split {split!r} lacks dataset(s) {missing or ['/t']}"
        )
    n = group["q"].shape[0]
    want = {
        "q": (n, n_steps + 1, dof),
        "p": (n, n_steps + 1, dof),
        "dqdt": (n, n_steps + 1, dof),
        "dpdt": (n, n_steps + 1, dof),
        "energy": (n, n_steps + 1),
    }
    for name, shape in want.items():
        if group[name].shape != shape:
            raise DataFormatError(
                f"{str(path)!r}: {split}/{name} has shape {group[name].shape}, expected {shape}"
            )
    if f["t"].shape != (n_steps + 1,):
        raise DataFormatError(
            f"{str(path)!r}: t has shape {f['t'].shape}, expected {(n_steps + 1,)}"
        )
    if "params" in group and (group["params"].ndim != 2 or group["params"].shape[0] != n):
        raise DataFormatError(f"{str(path)!r}: {split}/params has shape {group['params'].shape}")
    return n, n_steps + 1, dof


def check_finite(path: Path, where: str, array: np.ndarray) -> None:
    """Refuse NaN or infinite values."""
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise DataFormatError(
            f"{str(path)!r}: {where} holds {bad} non-finite value(s) (NaN or inf)"
        )


@dataclass
class Trajectories:
    """One split of a trajectory file, as float64 numpy arrays.

    Attributes:
        t: times of the stored states, ``(T+1,)``.
        q, p: stored positions and momenta ``(N, T+1, n)`` (noisy when the file's noise_std > 0).
        dqdt, dpdt: exact time derivatives at the clean states ``(N, T+1, n)``.
        energy: H of the clean states ``(N, T+1)``.
        params: per-trajectory system parameters ``(N, k)`` when they vary, else ``None``;
            ``param_names`` names the k columns.
        attrs: the file's root attributes (JSON ones decoded).
    """

    t: np.ndarray
    q: np.ndarray
    p: np.ndarray
    dqdt: np.ndarray
    dpdt: np.ndarray
    energy: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    params: np.ndarray | None = None
    param_names: list[str] | None = None
    split: str = ""

    @property
    def x(self) -> np.ndarray:
        """States ``(N, T+1, 2n)``: q then p on the last axis."""
        return np.concatenate([self.q, self.p], axis=-1)

    @property
    def dxdt(self) -> np.ndarray:
        """Time derivatives ``(N, T+1, 2n)``: dq/dt then dp/dt."""
        return np.concatenate([self.dqdt, self.dpdt], axis=-1)

    @property
    def n_trajectories(self) -> int:
        return self.q.shape[0]

    @property
    def dof(self) -> int:
        return self.q.shape[-1]

    @property
    def dt(self) -> float:
        return float(self.attrs["dt"])


def load_trajectories(path: str | os.PathLike, split: str) -> Trajectories:
    """Load one split (``"train"``, ``"val"`` or ``"test"``) of a trajectory file into memory.

    Raises DataFormatError (one line naming the file) for any file that is missing, not HDF5,
    truncated, corrupt, of another format or schema version, incomplete, without that split or
    holding non-finite values.
    """
    path = Path(path)
    with open_checked(path, FORMAT_TRAJECTORIES) as (f, attrs):
        trajectory_shape(f, path, attrs, split)
        group = f[split]
        arrays = {"t": np.asarray(f["t"][()], dtype=np.float64)}
        for name in TRAJECTORY_ARRAYS:
            arrays[name] = np.asarray(group[name][()], dtype=np.float64)
        params = names = None
        if "params" in group:
            params = np.asarray(group["params"][()], dtype=np.float64)
            raw = attr_to_python(group["params"].attrs.get("names", "[]"))
            names = list(json.loads(raw))
            arrays["params"] = params
    for name, value in arrays.items():
        where = name if name == "t" else f"{split}/{name}"
        check_finite(path, where, value)
    return Trajectories(
        t=arrays["t"],
        q=arrays["q"],
        p=arrays["p"],
        dqdt=arrays["dqdt"],
        dpdt=arrays["dpdt"],
        energy=arrays["energy"],
        attrs=attrs,
        params=params,
        param_names=names,
        split=split,
    )
