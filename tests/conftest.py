"""Shared fixtures: a ``dtype`` fixture running numeric tests in float32 and float64."""

from __future__ import annotations

import pytest
import torch

# Matching tolerances: relative round-off scale for each precision.
TOLERANCES = {torch.float32: 1e-4, torch.float64: 1e-10}


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture
def tol(dtype) -> float:
    return TOLERANCES[dtype]


@pytest.fixture(autouse=True)
def _single_thread():
    """Tests run under pytest-xdist with one worker per core: keep torch to one thread each."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """A factory of small trajectory files, generated once per session and argument set:
    ``small_dataset("spring-mass", n_trajectories=12, n_steps=30)`` -> path (dt 0.1, seed 0,
    splits train/val/test = 0.5/0.25/0.25)."""
    from hamgrad.datasets import generate

    made: dict[tuple, object] = {}

    def make(system: str = "spring-mass", *, n_trajectories: int = 12, n_steps: int = 30):
        key = (system, n_trajectories, n_steps)
        if key not in made:
            path = tmp_path_factory.mktemp("data") / f"{system}-{n_trajectories}-{n_steps}.h5"
            generate(
                system,
                path,
                n_trajectories=n_trajectories,
                n_steps=n_steps,
                dt=0.1,
                seed=0,
                splits={"train": 0.5, "val": 0.25, "test": 0.25},
                progress=False,
            )
            made[key] = path
        return made[key]

    return make
