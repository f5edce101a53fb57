"""Bad input and damaged files: each a clear one-line error, and nothing half-written."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from test_datasets_helpers import ARRAYS, Oscillators, exact_simulate, use_solver

from hamgrad.datasets import generate, generate_fields, load_fields, load_trajectories
from hamgrad.datasets.partial import partial_path
from hamgrad.errors import DataFormatError


@pytest.fixture
def exact(monkeypatch):
    """The closed-form flow as the ground truth."""
    use_solver(monkeypatch, exact_simulate)


SMALL = {"n_trajectories": 10, "n_steps": 4, "dt": 0.2, "progress": False}


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def nothing_written(directory) -> bool:
    return not any(directory.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_trajectories": 0}, ValueError, "n_trajectories must be a positive integer"),
        ({"n_trajectories": -3}, ValueError, "n_trajectories"),
        ({"n_trajectories": 2.5}, TypeError, "n_trajectories must be an integer"),
        ({"n_steps": 0}, ValueError, "n_steps must be a positive integer"),
        ({"dt": 0.0}, ValueError, "dt must be a finite number > 0"),
        ({"dt": -0.1}, ValueError, "dt must be a finite number > 0"),
        ({"dt": float("nan")}, ValueError, "dt must be a finite number > 0"),
        ({"seed": -1}, ValueError, "seed must be a non-negative integer"),
        ({"noise_std": -0.1}, ValueError, "noise_std must be a finite number >= 0"),
        ({"splits": (0.5, 0.2, 0.2)}, ValueError, "split fractions must sum to 1"),
        ({"splits": {"train": 0.5, "tst": 0.5}}, ValueError, "unknown split name"),
        ({"splits": (1.2, -0.2)}, ValueError, "must be in \\[0, 1\\]"),
        ({"splits": (0.5, 0.2, 0.3), "n_trajectories": 2}, ValueError, "cannot fill 3 splits"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive integer"),
        ({"compression": "zip"}, ValueError, "unknown compression 'zip'"),
        ({"compression": "gzip", "compression_opts": 12}, ValueError, "gzip level 0-9"),
        ({"vary": {"mass": (1, 2)}}, ValueError, "cannot vary unknown parameter 'mass'"),
        ({"vary": {"omega": (2, 1)}}, ValueError, "low <= high"),
    ],
)
def test_bad_arguments(tmp_path, exact, kwargs, error, match):
    with pytest.raises(error, match=match) as exc:
        generate(Oscillators(), tmp_path / "d.h5", **{**SMALL, **kwargs})
    one_line(exc)
    assert nothing_written(tmp_path)


def test_missing_sizes_without_preset(tmp_path, exact):
    with pytest.raises(ValueError, match="n_steps is required"):
        generate(Oscillators(), tmp_path / "d.h5", n_trajectories=3, dt=0.1, progress=False)
    with pytest.raises(ValueError, match="unknown preset 'hnm'.*available presets: small"):
        generate(Oscillators(), tmp_path / "d.h5", preset="hnm", progress=False)
    assert nothing_written(tmp_path)


def test_unknown_system_lists_the_available(tmp_path):
    with pytest.raises(ValueError, match="unknown system 'pendulun'.*pendulum") as exc:
        generate("pendulun", tmp_path / "d.h5", **SMALL)
    one_line(exc)
    with pytest.raises(ValueError, match="'polymax' is a field system.*generate_fields"):
        generate("polymax", tmp_path / "d.h5", **SMALL)
    with pytest.raises(ValueError, match="'pendulum' is a dynamics system"):
        generate_fields("pendulum", tmp_path / "f.h5", n_samples=10, progress=False)
    assert nothing_written(tmp_path)


def test_unknown_and_invalid_parameters(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) gravity.*g \\(default") as exc:
        generate("pendulum", tmp_path / "d.h5", params={"gravity": 3.0}, **SMALL)
    one_line(exc)
    with pytest.raises(ValueError, match="g must be a finite number > 0, got -1"):
        generate("pendulum", tmp_path / "d.h5", params={"g": -1.0}, **SMALL)
    with pytest.raises(TypeError, match="g must be a real number"):
        generate("pendulum", tmp_path / "d.h5", params={"g": "heavy"}, **SMALL)
    with pytest.raises(TypeError, match="params= only applies"):
        generate(Oscillators(), tmp_path / "d.h5", params={"n": 3}, **SMALL)
    assert nothing_written(tmp_path)


def test_unwritable_destinations(tmp_path, exact):
    with pytest.raises(FileNotFoundError, match="does not exist") as exc:
        generate(Oscillators(), tmp_path / "no" / "such" / "d.h5", **SMALL)
    one_line(exc)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        generate(Oscillators(), blocker / "d.h5", **SMALL)
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(IsADirectoryError):
        generate(Oscillators(), tmp_path / "dir.h5", **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.h5", "file"]


def test_existing_file_is_kept_without_overwrite(tmp_path, exact):
    dest = tmp_path / "d.h5"
    dest.write_text("precious")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True") as exc:
        generate(Oscillators(), dest, **SMALL)
    one_line(exc)
    assert dest.read_text() == "precious"
    assert not partial_path(dest).exists()


def test_divergence_leaves_nothing(tmp_path, monkeypatch):
    import hamgrad.datasets.generation as generation
    from hamgrad.errors import DivergenceError

    def blows_up(system, x0, dt, n_steps):
        out = np.zeros((x0.shape[0], n_steps + 1, system.dim))
        out[-1, -1, 0] = np.inf
        import torch

        return torch.from_numpy(out)

    monkeypatch.setattr(generation, "ground_truth_simulate", blows_up)
    with pytest.raises(DivergenceError, match="diverged.*trajectories \\[3\\]") as exc:
        generate(Oscillators(), tmp_path / "d.h5", simulation_batch=4, **SMALL)
    one_line(exc)
    assert nothing_written(tmp_path)


# ---------------------------------------------------------------------------- damaged files
@pytest.fixture
def good(tmp_path, exact):
    return generate(Oscillators(), tmp_path / "good.h5", seed=1, **SMALL)


def copy(src, dst):
    shutil.copyfile(src, dst)
    return dst


def refused(path, match, split="train"):
    with pytest.raises(DataFormatError, match=match) as exc:
        load_trajectories(path, split)
    text = one_line(exc)
    assert str(path) in text
    return text


def test_missing_file(tmp_path):
    refused(tmp_path / "none.h5", "no such file")


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("just some text\n" * 100)
    refused(path, "is not an HDF5 file")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    refused(empty, "is not an HDF5 file")
    refused(tmp_path, "is a directory")


def test_foreign_hdf5(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train/q", data=np.zeros((2, 3, 1)))
    refused(path, "not a hamgrad 'hamgrad-trajectories' file \\(no 'format' attribute\\)")
    with h5py.File(path, "a") as f:
        f.attrs["format"] = "something-else"
    refused(path, "format 'something-else'")


def test_truncated(good, tmp_path):
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 1000, 9):
        path = tmp_path / f"cut{cut}.h5"
        path.write_bytes(data[:cut])
        refused(path, "truncated or corrupt|not an HDF5 file")


def test_incomplete(good, tmp_path):
    path = copy(good, tmp_path / "incomplete.h5")
    with h5py.File(path, "a") as f:
        f.attrs["complete"] = False
    refused(path, "incomplete")
    with h5py.File(path, "a") as f:
        del f.attrs["complete"]
    refused(path, "incomplete")


def test_newer_schema_version(good, tmp_path):
    path = copy(good, tmp_path / "v2.h5")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 2
    refused(path, "schema_version 2; this hamgrad reads 1")


def test_nan_and_inf_are_refused(good, tmp_path):
    for name, value in (("q", np.nan), ("energy", np.inf), ("dpdt", -np.inf)):
        path = copy(good, tmp_path / f"bad_{name}.h5")
        with h5py.File(path, "a") as f:
            where = (0, 1) if name == "energy" else (0, 1, 0)
            f["val"][name][where] = value
        refused(path, f"val/{name} holds 1 non-finite value", split="val")
        load_trajectories(path, "train")  # other splits stay readable


def test_missing_split_lists_the_available(good):
    text = refused(good, "has no split 'validation'; available: train, val, test", "validation")
    assert "Traceback" not in text


def test_wrong_shape(good, tmp_path):
    path = copy(good, tmp_path / "shape.h5")
    with h5py.File(path, "a") as f:
        del f["train/p"]
        f["train"].create_dataset("p", data=np.zeros((8, 5, 3)))
    refused(path, "train/p has shape \\(8, 5, 3\\), expected \\(8, 5, 2\\)")


def test_text_attribute_corruption_is_caught(good, tmp_path):
    """Text attributes are not checksummed by HDF5; the config cross-check catches edits."""
    path = copy(good, tmp_path / "attrs.h5")
    with h5py.File(path, "a") as f:
        f.attrs["system"] = "test-oscillatorz"
    refused(path, "attribute 'system' disagrees with config")


def test_fields_and_trajectories_are_told_apart(good, tmp_path):
    fields = generate_fields("convex-2d", tmp_path / "f.h5", n_samples=20, progress=False)
    refused(fields, "is a 'hamgrad-fields' file.*load_fields")
    with pytest.raises(
        DataFormatError, match="is a 'hamgrad-trajectories' file.*load_trajectories"
    ):
        load_fields(good, "train")


def chunk_extents(path) -> list[tuple[int, int]]:
    """Byte ranges ``[offset, offset + size)`` of every stored chunk of every dataset."""
    extents = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
            for i in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(i)
                extents.append((info.byte_offset, info.byte_offset + info.size))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return extents


def test_bit_flips_never_pass_silently(good, tmp_path):
    """A flipped bit is refused with a DataFormatError or leaves the data read back unchanged,
    and a flip inside any dataset chunk is always refused.

    Datasets carry Fletcher-32 chunk checksums and the HDF5 1.8 metadata has checksums; text
    attributes (not checksummed by HDF5) are cross-checked against ``config``.
    """
    original = {s: load_trajectories(good, s) for s in ("train", "val", "test")}
    data = good.read_bytes()
    extents = chunk_extents(good)
    assert len(extents) >= 16  # t and 5 arrays in each of 3 splits
    rng = np.random.default_rng(0)
    in_chunks = [int(rng.integers(lo, hi)) for lo, hi in extents[:: max(1, len(extents) // 20)]]
    anywhere = rng.choice(len(data), 50, replace=False).tolist()
    path = tmp_path / "flipped.h5"
    for offset in in_chunks + anywhere:
        flipped = bytearray(data)
        flipped[offset] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(flipped))
        try:
            loaded = {s: load_trajectories(path, s) for s in original}
        except DataFormatError:
            continue
        assert offset not in in_chunks, f"flip in a chunk at byte {offset} not detected"
        for s, d in loaded.items():
            for name in (*ARRAYS, "t"):
                assert np.array_equal(getattr(d, name), getattr(original[s], name)), (offset, name)
            numeric = {k: v for k, v in d.attrs.items() if not isinstance(v, str)}
            assert numeric == {k: v for k, v in original[s].attrs.items() if not isinstance(v, str)}
