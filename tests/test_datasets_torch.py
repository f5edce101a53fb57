"""TrajectoryDataset: items, modes, dtype, lazy per-process opening, DataLoader workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from test_datasets_helpers import Oscillators, exact_simulate, use_solver
from torch.utils.data import DataLoader

from hamgrad.datasets import TrajectoryDataset, generate, load_trajectories
from hamgrad.errors import DataFormatError


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    use_solver(monkeypatch, exact_simulate)
    return generate(
        Oscillators(n=2),
        tmp_path / "d.h5",
        n_trajectories=5,
        n_steps=6,
        dt=0.1,
        splits=(0.6, 0.4),
        noise_std=0.05,
        progress=False,
    )


def test_states_mode_items(data_file):
    ds = TrajectoryDataset(data_file, "train")
    ref = load_trajectories(data_file, "train")
    assert len(ds) == 3 * 7
    assert ds._file is None  # nothing opened until an item is read
    for k in (0, 6, 7, 20, -1):
        i, j = divmod(k % len(ds), 7)
        x, dxdt = ds[k]
        assert x.dtype == torch.float64 and x.shape == (4,)
        np.testing.assert_array_equal(x.numpy(), ref.x[i, j])
        np.testing.assert_array_equal(dxdt.numpy(), ref.dxdt[i, j])
    with pytest.raises(IndexError):
        ds[21]


def test_windows_mode_items(data_file):
    ds = TrajectoryDataset(data_file, "val", mode="windows", window=3, dtype=torch.float32)
    ref = load_trajectories(data_file, "val")
    assert len(ds) == 2 * 4
    for k in range(len(ds)):
        i, j = divmod(k, 4)
        w = ds[k]
        assert w.shape == (4, 4) and w.dtype == torch.float32
        np.testing.assert_array_equal(w.numpy(), ref.x[i, j : j + 4].astype(np.float32))
    assert ds.dt == 0.1


def test_in_memory_matches_lazy(data_file):
    lazy = TrajectoryDataset(data_file, "train", mode="windows", window=2)
    mem = TrajectoryDataset(data_file, "train", mode="windows", window=2, in_memory=True)
    for k in range(len(lazy)):
        assert torch.equal(lazy[k], mem[k])


def test_bad_arguments(data_file, tmp_path):
    with pytest.raises(ValueError, match="unknown mode 'frames'"):
        TrajectoryDataset(data_file, mode="frames")
    with pytest.raises(ValueError, match="window is required"):
        TrajectoryDataset(data_file, mode="windows")
    with pytest.raises(ValueError, match="window must be at most n_steps = 6"):
        TrajectoryDataset(data_file, mode="windows", window=7)
    with pytest.raises(DataFormatError, match="no split 'validation'; available: train, val"):
        TrajectoryDataset(data_file, "validation")
    with pytest.raises(DataFormatError, match="no such file"):
        TrajectoryDataset(tmp_path / "missing.h5")


def test_pickles_without_its_handle(data_file):
    ds = TrajectoryDataset(data_file, "train")
    first = ds[0]
    assert ds._file is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    assert all(torch.equal(a, b) for a, b in zip(clone[0], first, strict=True))


def test_non_finite_item_is_refused(data_file):
    import h5py

    with h5py.File(data_file, "a") as f:
        f["train/p"][1, 2, 0] = np.nan
    ds = TrajectoryDataset(data_file, "train")
    ds[0]
    with pytest.raises(DataFormatError, match="train/p\\[1\\] holds 1 non-finite"):
        ds[7 + 2]


@pytest.mark.parametrize(
    "method",
    ["fork", pytest.param("spawn", marks=pytest.mark.slow)],  # spawn: ~10 s of imports
)
def test_dataloader_workers(data_file, method):
    ds = TrajectoryDataset(data_file, "train")
    ds[0]  # the parent has an open handle: workers must not reuse it
    loader = DataLoader(
        ds, batch_size=4, shuffle=False, num_workers=2, multiprocessing_context=method
    )
    xs, vs = zip(*loader, strict=True)
    ref = load_trajectories(data_file, "train")
    np.testing.assert_array_equal(torch.cat(xs).numpy(), ref.x.reshape(-1, 4))
    np.testing.assert_array_equal(torch.cat(vs).numpy(), ref.dxdt.reshape(-1, 4))
