"""Static gradient-field files (format "hamgrad-fields"): contents, determinism, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from hamgrad.datasets import generate_fields, load_fields
from hamgrad.datasets.seeding import FIELD_BLOCK
from hamgrad.errors import DataFormatError
from hamgrad.systems import get_system


def test_contents_are_the_exact_field(tmp_path):
    path = generate_fields(
        "polymax",
        tmp_path / "f.h5",
        params={"dim": 5},
        counts={"train": 300, "test": 50},
        seed=3,
        progress=False,
    )
    field = get_system("polymax", dim=5)
    for split, n in (("train", 300), ("test", 50)):
        d = load_fields(path, split)
        assert d.x.shape == (n, 5) and d.grad.shape == (n, 5) and d.potential.shape == (n,)
        assert ((d.x >= 0) & (d.x <= 1)).all()
        x = torch.from_numpy(d.x)
        np.testing.assert_array_equal(d.grad, field.grad(x).numpy())
        np.testing.assert_array_equal(d.potential, field.potential(x).numpy())
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "hamgrad-fields" and f.attrs["schema_version"] == 1
        assert f.attrs["dim"] == 5 and f.attrs["system"] == "polymax"
        assert bool(f.attrs["complete"]) and set(f) == {"train", "test"}
    assert d.attrs["system_params"] == {"dim": 5}


def test_deterministic_and_splits_independent(tmp_path):
    a = generate_fields("convex-2d", tmp_path / "a.h5", n_samples=100, seed=1, progress=False)
    b = generate_fields("convex-2d", tmp_path / "b.h5", n_samples=100, seed=1, progress=False)
    c = generate_fields("convex-2d", tmp_path / "c.h5", n_samples=100, seed=2, progress=False)
    np.testing.assert_array_equal(load_fields(a, "val").x, load_fields(b, "val").x)
    assert not np.array_equal(load_fields(a, "val").x, load_fields(c, "val").x)
    train = load_fields(a, "train").x
    assert len({tuple(r) for r in np.concatenate([train, load_fields(a, "test").x])}) == 90


def test_blocks_make_large_splits_resumable(tmp_path, monkeypatch):
    import hamgrad.datasets.field_data as field_data

    n = 2 * FIELD_BLOCK + 10
    ref = generate_fields("convex-2d", tmp_path / "ref.h5", counts={"train": n}, progress=False)
    calls = {"n": 0}
    original = field_data.torch_generator

    def interrupt_after_two(*key):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*key)

    monkeypatch.setattr(field_data, "torch_generator", interrupt_after_two)
    dest = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_fields("convex-2d", dest, counts={"train": n}, progress=False)
    assert not dest.exists()
    blocks = []
    monkeypatch.setattr(
        field_data, "torch_generator", lambda *key: blocks.append(key) or original(*key)
    )
    generate_fields("convex-2d", dest, counts={"train": n}, progress=False)
    assert [key[2] for key in blocks] == [1, 2]  # block 0 was kept from the interrupted run
    np.testing.assert_array_equal(load_fields(dest, "train").x, load_fields(ref, "train").x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "n_samples \\(or counts per split\\) is required"),
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"n_samples": 10, "splits": (0.5, 0.6)}, "sum to 1"),
        ({"counts": {"train": 5}, "n_samples": 5}, "not both"),
        ({"counts": {"trn": 5}}, "unknown split name"),
        ({"counts": {"train": -1}}, "must be a positive integer"),
        ({"n_samples": 10, "params": {"d": 3}}, "unknown parameter"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_fields("polymax", tmp_path / "f.h5", progress=False, **kwargs)
    assert not any(tmp_path.iterdir())


def test_damaged_fields_file(tmp_path):
    path = generate_fields("convex-2d", tmp_path / "f.h5", n_samples=50, progress=False)
    with h5py.File(path, "a") as f:
        f["test/grad"][0, 0] = np.nan
    with pytest.raises(DataFormatError, match="test/grad holds 1 non-finite"):
        load_fields(path, "test")
    with pytest.raises(DataFormatError, match="no split 'dev'; available: train, val, test"):
        load_fields(path, "dev")
