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
