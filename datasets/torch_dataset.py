"""A ``torch.utils.data.Dataset`` over one split of a trajectory file.

The HDF5 file is opened lazily, on the first item read in each process (the process id is
checked, so a DataLoader worker never reuses a handle inherited from its parent), and the object
pickles without its handle: it is safe with ``DataLoader(num_workers > 0)`` under the fork, spawn
and forkserver start methods.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from hamgrad.datasets.reader import (
    H5_ERRORS,
    _first_line,
    check_finite,
    open_checked,
    trajectory_shape,
)
from hamgrad.datasets.schema import FORMAT_TRAJECTORIES
from hamgrad.errors import DataFormatError
from hamgrad.validation import check_choice, check_positive_int

MODES = ("states", "windows")


class TrajectoryDataset(Dataset):
    """Items of one split of a trajectory file, as torch tensors.

    ``mode="states"``: item ``k`` is the pair ``(x, dxdt)``, each ``(2n,)``, of time point
    ``j = k % (T+1)`` of trajectory ``i = k // (T+1)``; ``len = N·(T+1)``.

    ``mode="windows"``: item ``k`` is a window of ``window + 1`` consecutive states ``(window+1, 2n)``
    (for rollout matching over ``window`` steps of ``dt``): windows start at every step
    ``j = 0 .. T - window`` of every trajectory; ``len = N·(T + 1 - window)``.

    Tensors are ``dtype`` (float64 by default). ``in_memory=True`` reads the split once per process
    on first use instead of reading each item from the file. Values are checked to be finite as they
    are read (a DataFormatError otherwise).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        mode: str = "states",
        window: int | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        in_memory: bool = False,
    ) -> None:
        self.path = Path(path)
        self.split = split
        self.mode = check_choice("mode", mode, MODES)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.dtype = dtype
        self.in_memory = bool(in_memory)
        with open_checked(self.path, FORMAT_TRAJECTORIES) as (f, attrs):
            n, t1, dof = trajectory_shape(f, self.path, attrs, split)
        self.attrs: dict[str, Any] = attrs
        self.n_trajectories, self.n_steps, self.dof = n, t1 - 1, dof
        self.dt = float(attrs["dt"])
        if self.mode == "windows":
            if window is None:
                raise ValueError(
                    "window is required with mode='windows' (number of steps per window)"
                )
            window = check_positive_int("window", window)
            if window > self.n_steps:
                raise ValueError(
                    f"window must be at most n_steps = {self.n_steps} of {str(self.path)!r}, got {window}"
                )
            self.per_trajectory = t1 - window
        else:
            if window is not None:
                raise ValueError("window only applies to mode='windows'")
            self.per_trajectory = t1
        self.window = window
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._memory: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.n_trajectories * self.per_trajectory

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_file=None, _pid=None, _memory=None)  # each process opens its own handle
        return state

    def _source(self) -> Any:
        """The split's arrays in this process: the open h5py group, or the in-memory copy."""
        pid = os.getpid()
        if self._pid != pid:
            # a handle inherited from another process is dropped, never used or closed here
            self._file, self._memory, self._pid = None, None, pid
        if self.in_memory:
            if self._memory is None:
                with open_checked(self.path, FORMAT_TRAJECTORIES) as (f, _):
                    group = f[self.split]
                    self._memory = {k: group[k][()] for k in ("q", "p", "dqdt", "dpdt")}
                for key, value in self._memory.items():
                    check_finite(self.path, f"{self.split}/{key}", value)
            return self._memory
        if self._file is None:
            try:
                self._file = h5py.File(self.path, "r")
            except H5_ERRORS as exc:
                raise DataFormatError(
                    f"{str(self.path)!r} cannot be opened ({_first_line(exc)})"
                ) from None
        return self._file[self.split]

    def _read(self, src: Any, name: str, i: int, rows: slice | int) -> np.ndarray:
        try:
            value = np.asarray(src[name][i, rows], dtype=np.float64)
        except H5_ERRORS as exc:
            raise DataFormatError(
                f"{str(self.path)!r} is corrupt: reading {self.split}/{name}[{i}] failed "
                f"({_first_line(exc)})"
            ) from None
        if not self.in_memory:
            check_finite(self.path, f"{self.split}/{name}[{i}]", value)
        return value

    def __getitem__(self, index: int) -> Any:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {index!r}")
        size = len(self)
        k = int(index) + size if index < 0 else int(index)
        if not 0 <= k < size:
            raise IndexError(f"index {index} out of range for a dataset of {size} items")
        i, j = divmod(k, self.per_trajectory)
        src = self._source()
        if self.mode == "states":
            x = np.concatenate([self._read(src, "q", i, j), self._read(src, "p", i, j)])
            v = np.concatenate([self._read(src, "dqdt", i, j), self._read(src, "dpdt", i, j)])
            return torch.from_numpy(x).to(self.dtype), torch.from_numpy(v).to(self.dtype)
        rows = slice(j, j + self.window + 1)
        x = np.concatenate([self._read(src, "q", i, rows), self._read(src, "p", i, rows)], axis=-1)
        return torch.from_numpy(x).to(self.dtype)

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next item)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._memory = None, None

    def __repr__(self) -> str:
        extra = f", window={self.window}" if self.mode == "windows" else ""
        return (
            f"TrajectoryDataset({str(self.path)!r}, split={self.split!r}, mode={self.mode!r}{extra}, "
            f"items={len(self)})"
        )
