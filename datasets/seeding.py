"""Per-item random streams derived from one root seed (numpy ``SeedSequence`` spawn keys).

Trajectory ``i`` of a dataset with root seed ``s`` draws from ``SeedSequence(s, spawn_key=(i, k))``
with one stream ``k`` per purpose (:data:`STREAM_INITIAL`, :data:`STREAM_NOISE`,
:data:`STREAM_PARAMS`). The spawn key ``(i,)`` is what ``SeedSequence(s).spawn(...)`` gives its
``i``-th child, so these are the children (and grandchildren) of the root seed. Trajectory ``i`` thus
depends on ``(s, i)`` only: not on the chunk size, on resumption, on the number of trajectories or
on which process generates it, so any shard ``[i0, i1)`` can be generated on its own.

Static gradient-field samples are drawn in fixed blocks of :data:`FIELD_BLOCK` samples; block ``b``
of split number ``j`` (its position in ``SPLIT_NAMES``) uses ``SeedSequence(s, spawn_key=(j, b))``.
"""

from __future__ import annotations

import numpy as np
import torch

STREAM_INITIAL = 0
STREAM_NOISE = 1
STREAM_PARAMS = 2

#: Samples per independently seeded block of a static gradient-field split.
FIELD_BLOCK = 4096

#: Seeds are non-negative integers below this bound (they are stored as int64 attributes).
SEED_BOUND = 2**63


def seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    """The child of root ``seed`` with spawn key ``key``."""
    return np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key))


def derived_seed(seed: int, *key: int) -> int:
    """A 63-bit non-negative integer seed for child ``key`` of root ``seed``."""
    return int(seed_sequence(seed, *key).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def numpy_generator(seed: int, *key: int) -> np.random.Generator:
    """A numpy ``Generator`` on child ``key`` of root ``seed``."""
    return np.random.default_rng(seed_sequence(seed, *key))


def torch_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from child ``key`` of root ``seed``."""
    return torch.Generator().manual_seed(derived_seed(seed, *key))


def initial_state_seed(seed: int, index: int) -> int:
    """Seed passed to ``system.sample_initial(1, seed=...)`` for trajectory ``index``."""
    return derived_seed(seed, index, STREAM_INITIAL)


def noise_generator(seed: int, index: int) -> np.random.Generator:
    """The numpy generator drawing the observation noise of trajectory ``index``."""
    return numpy_generator(seed, index, STREAM_NOISE)


def params_generator(seed: int, index: int) -> np.random.Generator:
    """The numpy generator drawing the varied system parameters of trajectory ``index``."""
    return numpy_generator(seed, index, STREAM_PARAMS)
