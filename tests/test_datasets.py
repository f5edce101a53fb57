"""Trajectory datasets: schema v1, exact contents, determinism, chunking, resumption, splits, noise."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_datasets_helpers import (
    Counter,
    Oscillators,
    coupled_simulate,
    exact_flow,
    exact_simulate,
    same_arrays,
    use_solver,
)

from hamgrad.datasets import generate, load_trajectories, simulate_range
from hamgrad.datasets.generation import GenerationPlan
from hamgrad.datasets.partial import partial_path
from hamgrad.datasets.seeding import initial_state_seed
from hamgrad.datasets.splits import normalize_splits, split_counts
from hamgrad.errors import DataFormatError


@pytest.fixture
def exact(monkeypatch):
    """The closed-form flow as the ground truth."""
    use_solver(monkeypatch, exact_simulate)


SMALL = {"n_trajectories": 10, "n_steps": 6, "dt": 0.3, "progress": False}


def test_schema_attributes_and_shapes(tmp_path, exact):
    path = generate(Oscillators(n=3), tmp_path / "d.h5", seed=5, **SMALL)
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "hamgrad-trajectories"
        assert a["schema_version"] == 1
        assert isinstance(a["hamgrad_version"], str)
        assert a["system"] == "test-oscillators"
        assert json.loads(a["system_params"]) == {"n": 3, "omega": 1.0}
        assert a["dof"] == 3 and a["n_steps"] == 6 and a["seed"] == 5
        assert a["dt"] == 0.3 and a["noise_std"] == 0.0
        assert isinstance(a["integrator"], str) and isinstance(
            json.loads(a["integrator_params"]), dict
        )
        config = json.loads(a["config"])
        assert config["n_trajectories"] == 10 and config["seed"] == 5 and config["dt"] == 0.3
        assert config["splits"] == {"train": 0.8, "val": 0.1, "test": 0.1}
        assert bool(a["complete"]) is True
        assert "n_written" not in a
        np.testing.assert_array_equal(f["t"][()], 0.3 * np.arange(7))
        sizes = {}
        for split in ("train", "val", "test"):
            g = f[split]
            sizes[split] = g["q"].shape[0]
            for name in ("q", "p", "dqdt", "dpdt"):
                assert g[name].shape == (sizes[split], 7, 3) and g[name].dtype == np.float64
                assert g[name].chunks[1:] == (7, 3)  # chunks hold whole trajectories
                assert g[name].compression is None
            assert g["energy"].shape == (sizes[split], 7)
            assert "params" not in g
        assert sizes == {"train": 8, "val": 1, "test": 1}


def test_contents_match_the_mathematics(tmp_path, exact):
    """q, p follow the exact flow from the documented initial states; dqdt, dpdt = J∇H; energy = H."""
    system = Oscillators(n=2, omega=1.5)
    path = generate(system, tmp_path / "d.h5", seed=3, splits=(0.5, 0.0, 0.5), **SMALL)
    t = torch.as_tensor(0.3 * np.arange(7))
    offset = 0
    for split in ("train", "test"):
        d = load_trajectories(path, split)
        x0 = torch.cat(
            [
                system.sample_initial(1, seed=initial_state_seed(3, i))
                for i in range(offset, offset + d.n_trajectories)
            ]
        )
        expected = exact_flow(system, x0, t).numpy()
        np.testing.assert_allclose(d.x, expected, rtol=0, atol=1e-14)
        w = system.w.numpy()
        np.testing.assert_allclose(d.dqdt, d.p, rtol=0, atol=1e-15)  # ∂H/∂p = p
        np.testing.assert_allclose(d.dpdt, -(w**2) * d.q, rtol=0, atol=1e-14)
        h = 0.5 * (d.p**2 + (w * d.q) ** 2).sum(-1)
        np.testing.assert_allclose(d.energy, h, rtol=1e-14)
        np.testing.assert_allclose(d.energy, np.repeat(d.energy[:, :1], 7, 1), rtol=1e-13)
        assert d.x.shape == (5, 7, 4) and d.dxdt.shape == (5, 7, 4)
        offset += d.n_trajectories


def test_noise_is_on_stored_states_only(tmp_path, exact):
    system = Oscillators(n=2)
    args = {"n_trajectories": 40, "n_steps": 50, "dt": 0.1, "progress": False, "seed": 9}
    clean = load_trajectories(generate(system, tmp_path / "c.h5", **args), "train")
    noisy = load_trajectories(generate(system, tmp_path / "n.h5", noise_std=0.1, **args), "train")
    for name in ("dqdt", "dpdt", "energy"):
        np.testing.assert_array_equal(getattr(noisy, name), getattr(clean, name))
    eps = noisy.x - clean.x
    assert eps.size == 32 * 51 * 4
    assert abs(eps.std() - 0.1) < 0.005  # 6528 draws: sd of the estimate ~ 0.0009
    assert abs(eps.mean()) < 0.005
    assert noisy.attrs["noise_std"] == 0.1


def test_same_seed_same_bytes_other_seed_differs(tmp_path, exact):
    a = load_trajectories(generate(Oscillators(), tmp_path / "a.h5", seed=1, **SMALL), "train")
    b = load_trajectories(generate(Oscillators(), tmp_path / "b.h5", seed=1, **SMALL), "train")
    c = load_trajectories(generate(Oscillators(), tmp_path / "c.h5", seed=2, **SMALL), "train")
    assert same_arrays(a, b)
    assert not np.array_equal(a.q, c.q)


@settings(deadline=None, max_examples=6)
@given(chunk=st.integers(1, 12), batch=st.sampled_from([1, 2, 4]))
def test_chunk_size_never_changes_the_data(tmp_path_factory, chunk, batch):
    """Even with a ground truth coupling the trajectories of a batch, chunking changes nothing."""
    tmp = tmp_path_factory.mktemp("chunks")
    args = {**SMALL, "n_trajectories": 11, "simulation_batch": batch, "seed": 4}
    with pytest.MonkeyPatch.context() as mp:
        use_solver(mp, coupled_simulate)
        ref = generate(Oscillators(), tmp / "ref.h5", chunk_size=batch, **args)
        other = generate(Oscillators(), tmp / "other.h5", chunk_size=chunk, **args)
    for split in ("train", "val", "test"):
        assert same_arrays(load_trajectories(ref, split), load_trajectories(other, split))


def test_simulation_batch_matters_for_a_coupled_ground_truth(tmp_path, monkeypatch):
    """The control for the test above: with batch coupling, the batch size does change the data."""
    use_solver(monkeypatch, coupled_simulate)
    a = generate(Oscillators(), tmp_path / "a.h5", simulation_batch=1, **SMALL)
    b = generate(Oscillators(), tmp_path / "b.h5", simulation_batch=4, **SMALL)
    assert not same_arrays(load_trajectories(a, "train"), load_trajectories(b, "train"))


def test_shards_equal_rows_of_the_whole(tmp_path, monkeypatch):
    use_solver(monkeypatch, coupled_simulate)
    path = generate(Oscillators(), tmp_path / "d.h5", simulation_batch=4, seed=7, **SMALL)
    whole = np.concatenate([load_trajectories(path, s).q for s in ("train", "val", "test")])
    plan = GenerationPlan(
        n_trajectories=10,
        n_steps=6,
        dt=0.3,
        seed=7,
        noise_std=0.0,
        splits=normalize_splits((0.8, 0.1, 0.1)),
        counts=split_counts(10, {"train": 0.8, "val": 0.1, "test": 0.1}),
        vary={},
        simulation_batch=4,
    )
    for i0, i1 in [(0, 10), (3, 5), (4, 8), (9, 10), (1, 9)]:
        shard = simulate_range(Oscillators(), plan, i0, i1, simulate=coupled_simulate)
        np.testing.assert_array_equal(shard["q"], whole[i0:i1])


def test_interrupted_generation_resumes_to_the_same_bytes(tmp_path, monkeypatch, exact):
    args = {**SMALL, "n_trajectories": 12, "simulation_batch": 2, "chunk_size": 2, "seed": 3}
    ref = generate(Oscillators(), tmp_path / "ref.h5", **args)

    dest = tmp_path / "d.h5"
    use_solver(monkeypatch, Counter(exact_simulate, stop_after=3))
    with pytest.raises(KeyboardInterrupt):
        generate(Oscillators(), dest, **args)
    assert not dest.exists()  # nothing under the final name
    tmp = partial_path(dest)
    with h5py.File(tmp, "r") as f:
        assert bool(f.attrs["complete"]) is False
        assert f.attrs["n_written"] == 6
    with pytest.raises(DataFormatError, match="incomplete"):
        load_trajectories(tmp, "train")
    with pytest.raises(DataFormatError, match="unfinished generation"):
        load_trajectories(dest, "train")

    counter = Counter(exact_simulate)
    use_solver(monkeypatch, counter)
    generate(Oscillators(), dest, **{**args, "chunk_size": 4})  # chunk size may change
    assert counter.trajectories == 6  # only the missing half was simulated
    assert not tmp.exists()
    for split in ("train", "val", "test"):
        assert same_arrays(load_trajectories(ref, split), load_trajectories(dest, split))


def test_changed_config_restarts_cleanly(tmp_path, monkeypatch, exact):
    args = {**SMALL, "n_trajectories": 12, "simulation_batch": 2, "chunk_size": 2}
    dest = tmp_path / "d.h5"
    use_solver(monkeypatch, Counter(exact_simulate, stop_after=3))
    with pytest.raises(KeyboardInterrupt):
        generate(Oscillators(), dest, seed=1, **args)
    counter = Counter(exact_simulate)
    use_solver(monkeypatch, counter)
    generate(Oscillators(), dest, seed=2, **args)
    assert counter.trajectories == 12  # nothing reused from the seed-1 partial file
    ref = generate(Oscillators(), tmp_path / "ref.h5", seed=2, **args)
    assert same_arrays(load_trajectories(ref, "train"), load_trajectories(dest, "train"))


def test_unreadable_partial_file_is_replaced(tmp_path, exact):
    dest = tmp_path / "d.h5"
    partial_path(dest).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a crash's remains
    generate(Oscillators(), dest, **SMALL)
    assert load_trajectories(dest, "train").n_trajectories == 8


def test_preset_supplies_defaults_and_arguments_override(tmp_path, exact):
    path = generate(Oscillators(), tmp_path / "p.h5", preset="small", progress=False)
    d = load_trajectories(path, "train")
    assert d.q.shape == (3, 5, 2) and d.attrs["dt"] == 0.25
    assert d.attrs["config"]["preset"] == "small"
    path = generate(Oscillators(), tmp_path / "q.h5", preset="small", n_steps=2, progress=False)
    assert load_trajectories(path, "test").q.shape == (3, 3, 2)


def test_overwrite(tmp_path, exact):
    path = generate(Oscillators(), tmp_path / "d.h5", seed=1, **SMALL)
    with pytest.raises(FileExistsError, match="already exists"):
        generate(Oscillators(), path, seed=2, **SMALL)
    assert load_trajectories(path, "train").attrs["seed"] == 1
    generate(Oscillators(), path, seed=2, overwrite=True, **SMALL)
    assert load_trajectories(path, "train").attrs["seed"] == 2


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_compression_keeps_values(tmp_path, exact, compression):
    plain = generate(Oscillators(), tmp_path / "a.h5", **SMALL)
    packed = generate(Oscillators(), tmp_path / "b.h5", compression=compression, **SMALL)
    with h5py.File(packed, "r") as f:
        assert f["train/q"].compression == compression
    assert same_arrays(load_trajectories(plain, "train"), load_trajectories(packed, "train"))


def test_varied_parameters_are_stored_per_trajectory(tmp_path, exact):
    path = generate(Oscillators(), tmp_path / "v.h5", vary={"omega": (0.5, 2.0)}, seed=2, **SMALL)
    d = load_trajectories(path, "train")
    assert d.param_names == ["omega"] and d.params.shape == (8, 1)
    omega = d.params[:, 0]
    assert ((omega >= 0.5) & (omega <= 2.0)).all() and len(set(omega)) == 8
    # each trajectory follows its own system: dp1/dt = -omega² q1
    np.testing.assert_allclose(d.dpdt[..., 0], -(omega[:, None] ** 2) * d.q[..., 0], atol=1e-13)


def test_splits_normalisation():
    assert normalize_splits((0.8, 0.1, 0.1)) == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert normalize_splits("0.5,0,0.5") == {"train": 0.5, "test": 0.5}
    assert normalize_splits({"test": 0.25, "train": 0.75}) == {"train": 0.75, "test": 0.25}
    assert split_counts(7, {"train": 0.5, "test": 0.5}) == {"train": 4, "test": 3}
    assert split_counts(6, normalize_splits((0.8, 0.1, 0.1))) == {"train": 4, "val": 1, "test": 1}
    with pytest.raises(ValueError, match="2 item\\(s\\) cannot fill 3 splits"):
        split_counts(2, normalize_splits((0.8, 0.1, 0.1)))


@settings(deadline=None, max_examples=40)
@given(
    n=st.integers(3, 10_000),
    w=st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3),
)
def test_split_counts_partition_n(n, w):
    fractions = {k: v / sum(w) for k, v in zip(("train", "val", "test"), w, strict=True)}
    counts = split_counts(n, fractions)
    assert sum(counts.values()) == n
    assert min(counts.values()) >= 1
    exact_share = min(fractions.values()) * n >= 1  # no split needed topping up
    for k, c in counts.items():
        assert abs(c - fractions[k] * n) < (1 if exact_share else 3)


def test_memory_does_not_grow_with_the_dataset(tmp_path, exact):
    """Python/numpy allocations peak at the chunk size, not the dataset size (6x more data)."""
    import tracemalloc

    def peak(n: int) -> int:
        tracemalloc.start()
        generate(
            Oscillators(n=16),
            tmp_path / f"{n}.h5",
            n_trajectories=n,
            n_steps=100,
            dt=0.01,
            chunk_size=8,
            simulation_batch=8,
            progress=False,
        )
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    peak(8)  # first use: imports and caches are allocated outside the measurement
    per_trajectory = (4 * 16 + 1) * 101 * 8
    small, large = peak(16), peak(96)
    assert small > 8 * per_trajectory  # the chunk itself is traced
    assert large < 1.25 * small  # the 80 extra trajectories (5 MB) are never held at once


KILL_CHILD = """
import sys
from hamgrad.datasets import generate
generate("spring-mass", sys.argv[1], n_trajectories=400, n_steps=50, dt=0.1, seed=5,
         simulation_batch=1, chunk_size=1, progress=False)
"""


@pytest.mark.slow
def test_killed_generation_resumes_to_the_same_bytes(tmp_path):
    """SIGKILL in the middle of writing: no file under the final name; a rerun finishes it."""
    import signal
    import subprocess
    import sys
    import time

    dest = tmp_path / "d.h5"
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(dest)])
    tmp = partial_path(dest)
    deadline = time.monotonic() + 120
    while (not tmp.exists() or tmp.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert tmp.exists() and not dest.exists()
    subprocess.run([sys.executable, "-c", KILL_CHILD, str(dest)], check=True)
    ref = tmp_path / "ref.h5"
    subprocess.run([sys.executable, "-c", KILL_CHILD, str(ref)], check=True)
    for split in ("train", "val", "test"):
        assert same_arrays(load_trajectories(ref, split), load_trajectories(dest, split))


def _dynamics_systems() -> list[str]:
    from hamgrad.systems import list_systems

    return list_systems("dynamics")


@pytest.mark.parametrize("name", _dynamics_systems())
def test_every_registered_system_generates(tmp_path, name):
    """The real ground truth, in batches of 2: chunking does not change the data, energy is kept."""
    args = {"n_trajectories": 5, "n_steps": 4, "dt": 0.1, "seed": 1, "progress": False}
    a = generate(name, tmp_path / "a.h5", simulation_batch=2, chunk_size=2, **args)
    b = generate(name, tmp_path / "b.h5", simulation_batch=2, chunk_size=5, **args)
    for split in ("train", "val", "test"):
        da, db = load_trajectories(a, split), load_trajectories(b, split)
        assert same_arrays(da, db)
        drift = np.abs(da.energy - da.energy[:, :1]) / np.abs(da.energy[:, :1])
        assert drift.max() < 1e-9


def _hnn_systems() -> list[str]:
    from hamgrad.systems import system_class

    return [n for n in _dynamics_systems() if "hnn" in getattr(system_class(n), "presets", {})]


@pytest.mark.slow
@pytest.mark.parametrize("name", _hnn_systems())
def test_hnn_preset_datasets(tmp_path, name):
    """The full HNN datasets: sizes, time grid and splits as the preset says; energy conserved."""
    from hamgrad.systems import system_class

    preset = system_class(name).presets["hnn"]
    path = generate(name, tmp_path / "hnn.h5", preset="hnn", progress=False)
    counts = split_counts(preset["n_trajectories"], normalize_splits(preset["splits"]))
    for split, count in counts.items():
        d = load_trajectories(path, split)
        assert d.q.shape[:2] == (count, preset["n_steps"] + 1)
        assert d.attrs["dt"] == preset["dt"] and d.attrs["noise_std"] == preset["noise_std"]
        drift = np.abs(d.energy - d.energy[:, :1]) / np.abs(d.energy[:, :1])
        assert drift.max() < 1e-9
