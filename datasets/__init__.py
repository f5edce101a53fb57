"""hamgrad.datasets: HDF5 trajectory datasets (schema v1), generation, loading, torch Dataset.

>>> from hamgrad.datasets import generate, load_trajectories, TrajectoryDataset
>>> generate("pendulum", "pendulum.h5", preset="hnn", seed=0)
>>> data = load_trajectories("pendulum.h5", "train")    # numpy arrays: data.x (N, T+1, 2n), ...
>>> ds = TrajectoryDataset("pendulum.h5", "train", mode="windows", window=10)

Static gradient fields: ``generate_fields("polymax", "polymax.h5", params={"dim": 32},
n_samples=12000)`` and ``load_fields(path, split)``. The schema is documented in
``docs/hdf5-schema.md``.
"""

from hamgrad.datasets.field_data import Fields, generate_fields, load_fields
from hamgrad.datasets.generation import generate, simulate_range
from hamgrad.datasets.reader import Trajectories, load_trajectories
from hamgrad.datasets.schema import FORMAT_FIELDS, FORMAT_TRAJECTORIES, SCHEMA_VERSION
from hamgrad.datasets.summary import summarize
from hamgrad.datasets.torch_dataset import TrajectoryDataset

__all__ = [
    "FORMAT_FIELDS",
    "FORMAT_TRAJECTORIES",
    "SCHEMA_VERSION",
    "Fields",
    "Trajectories",
    "TrajectoryDataset",
    "generate",
    "generate_fields",
    "load_fields",
    "load_trajectories",
    "simulate_range",
    "summarize",
]
