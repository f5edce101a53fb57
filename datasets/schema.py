"""The HDF5 schema (version 1): format names, attribute names, storage options.

A trajectory file (``format = "hamgrad-trajectories"``) holds, per split group, the arrays
:data:`TRAJECTORY_ARRAYS`; a static gradient-field file (``format = "hamgrad-fields"``) holds
:data:`FIELD_ARRAYS`. ``docs/hdf5-schema.md`` documents every attribute and dataset.
"""

from __future__ import annotations

import json
import math
from typing import Any

import h5py
import numpy as np

FORMAT_TRAJECTORIES = "hamgrad-trajectories"
FORMAT_FIELDS = "hamgrad-fields"
SCHEMA_VERSION = 1
#: Schema versions this reader understands.
SUPPORTED_SCHEMA_VERSIONS = (1,)

#: Split groups, in the order trajectories are assigned to them (global trajectory index order).
SPLIT_NAMES = ("train", "val", "test")
#: Default split fractions.
DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}

#: Per-split datasets of a trajectory file: (N, T+1, n) except ``energy`` (N, T+1).
TRAJECTORY_ARRAYS = ("q", "p", "dqdt", "dpdt", "energy")
#: Per-split datasets of a field file: ``x`` and ``grad`` (N, d), ``potential`` (N,).
FIELD_ARRAYS = ("x", "grad", "potential")

#: Root attributes of a trajectory file whose values are JSON text.
JSON_ATTRS = ("system_params", "integrator_params", "config")
#: Root attribute counting the trajectories (or samples) already written; only in a partial file.
PROGRESS_ATTR = "n_written"

#: Compression filters offered (``None`` = none, the default).
COMPRESSIONS = ("gzip", "lzf")

#: Oldest HDF5 library format used when writing: 1.8 object formats carry metadata checksums, so a
#: flipped bit in the file's metadata is detected on reading rather than silently accepted.
LIBVER = ("v108", "latest")
#: Target size of one HDF5 chunk (bytes); a chunk always holds whole trajectories.
CHUNK_BYTES = 1 << 20
#: Chunk cache per open dataset (bytes), larger than one chunk so partial chunks stay cached.
CHUNK_CACHE_BYTES = 4 << 20


def to_json(value: Any) -> str:
    """Canonical JSON text of ``value`` (sorted keys); numpy/torch scalars become Python numbers."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
            return obj.item()
        if isinstance(obj, (tuple, list, np.ndarray)):
            return list(obj)
        raise TypeError(f"value {obj!r} of type {type(obj).__name__} cannot be stored as JSON")

    return json.dumps(value, sort_keys=True, default=default, allow_nan=False)


def attr_to_python(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python object (str, int, float, bool, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """All attributes of an HDF5 object as Python values; the JSON ones of :data:`JSON_ATTRS` decoded."""
    out: dict[str, Any] = {}
    for key in obj.attrs:
        value = attr_to_python(obj.attrs[key])
        if key in JSON_ATTRS and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out


def chunk_rows(row_bytes: int, n_rows: int) -> int:
    """Rows per HDF5 chunk: whole rows (trajectories or samples), about :data:`CHUNK_BYTES` each."""
    return max(1, min(n_rows, CHUNK_BYTES // max(row_bytes, 1)))


def dataset_options(
    shape: tuple[int, ...], *, compression: str | None, compression_opts: int | None
) -> dict[str, Any]:
    """``create_dataset`` keywords for a float64 array of ``shape`` whose first axis is the row axis.

    Chunks hold whole rows; every chunk carries a Fletcher-32 checksum (corruption is detected on
    reading); unwritten values read as NaN.
    """
    row_bytes = 8 * math.prod(shape[1:])
    chunks = (chunk_rows(row_bytes, shape[0]), *shape[1:])
    options: dict[str, Any] = {
        "shape": shape,
        "dtype": np.float64,
        "chunks": chunks,
        "fletcher32": True,
        "fillvalue": np.nan,
    }
    if compression is not None:
        options["compression"] = compression
        if compression_opts is not None:
            options["compression_opts"] = compression_opts
    return options


def check_compression(compression: str | None, compression_opts: int | None) -> None:
    """Validate the compression arguments of the writers."""
    if compression is None:
        if compression_opts is not None:
            raise ValueError("compression_opts given without compression; set compression='gzip'")
        return
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"unknown compression {compression!r}; choose one of: {', '.join(COMPRESSIONS)} "
            "(or None for no compression)"
        )
    if compression_opts is not None:
        if compression != "gzip":
            raise ValueError(
                f"compression_opts only applies to gzip, got compression={compression!r}"
            )
        if isinstance(compression_opts, bool) or not isinstance(compression_opts, int):
            raise TypeError(f"compression_opts must be an integer 0-9, got {compression_opts!r}")
        if not 0 <= compression_opts <= 9:
            raise ValueError(f"compression_opts must be a gzip level 0-9, got {compression_opts!r}")
