"""Run directories and training checkpoints.

A run directory holds ``config.json`` (format ``"hamgrad-run"``: the model and training settings and
the data it was trained on), ``checkpoint.pt`` (the latest checkpoint) and ``metrics.csv``.

A checkpoint is a dict of tensors and primitive containers only, so it loads with
``torch.load(weights_only=True)``: ``format = "hamgrad-checkpoint"``, ``version``, ``step`` (number of
optimisation steps done), ``model`` (state dict), ``optimizer`` (state dict), ``schedule`` (state of
the learning-rate schedule), ``rng`` (torch RNG state) and ``config`` (the run's configuration).
Checkpoints and ``config.json`` are written atomically (:mod:`hamgrad.atomic`).
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from hamgrad.atomic import atomic_torch_save, atomic_write_text
from hamgrad.errors import CheckpointError

RUN_FORMAT = "hamgrad-run"
CHECKPOINT_FORMAT = "hamgrad-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"

__all__ = [
    "RUN_FORMAT",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CONFIG_NAME",
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "write_run_config",
    "read_run_config",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "prepare_run_dir",
]


def write_run_config(run_dir: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Write ``RUN/config.json`` (atomically) with ``format = "hamgrad-run"`` added."""
    path = Path(run_dir) / CONFIG_NAME
    payload = {"format": RUN_FORMAT, **config}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``RUN/config.json``; :class:`CheckpointError` for a missing or foreign run."""
    run = Path(run_dir)
    if not run.exists():
        raise CheckpointError(f"run directory {str(run)!r} does not exist")
    if not run.is_dir():
        raise CheckpointError(f"run directory {str(run)!r} is not a directory")
    path = run / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{str(run)!r} is not a hamgrad run directory (no {CONFIG_NAME}); "
            "give the --out directory of `hamgrad train`"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a hamgrad run configuration (format {found!r}, "
            f"expected {RUN_FORMAT!r})"
        )
    return config


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically; ``state`` gets ``format`` and ``version`` added."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    atomic_torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a checkpoint (``torch.load(weights_only=True)``).

    Raises :class:`CheckpointError` when the file is missing, unreadable (corrupt or truncated),
    or not a hamgrad checkpoint of a known version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # the weights-only unpickler refused the data
        raise _refusal(path, exc) from exc
    except Exception as exc:  # torch raises many types for a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a torch file ({first})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a hamgrad checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {state.get('version')!r}; "
            f"this hamgrad reads version {CHECKPOINT_VERSION}"
        )
    for key in ("step", "model"):
        if key not in state:
            raise CheckpointError(f"checkpoint {str(path)!r} is incomplete (no {key!r})")
    return state


def _refusal(path: Path, exc: BaseException) -> CheckpointError:
    """One line for a pickle that ``weights_only`` refused: an object that could run code, or junk."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return CheckpointError(
            f"checkpoint {str(path)!r} holds a pickled object ({found.group(1)}), not only "
            "tensors and plain containers; refused (loading it could run code): "
            "it is not a hamgrad checkpoint"
        )
    detail = text.partition("WeightsUnpickler error:")[2].strip().splitlines()
    reason = detail[0] if detail else "unreadable pickle data"
    return CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a torch file ({reason})")


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """``RUN/checkpoint.pt`` if it exists, else ``None``."""
    path = Path(run_dir) / CHECKPOINT_NAME
    return path if path.is_file() else None


def prepare_run_dir(run_dir: str | os.PathLike, *, resume: bool) -> Path:
    """Check (and for a fresh run create) the run directory.

    - fresh run: the directory must not exist or be empty; an existing run is refused (pass
      ``resume``), a non-empty foreign directory too.
    - ``resume``: the directory must hold a hamgrad run (``config.json`` of format ``hamgrad-run``).
    """
    run = Path(run_dir)
    if resume:
        read_run_config(run)  # raises for a missing or foreign run
        return run
    if run.exists():
        if not run.is_dir():
            raise CheckpointError(f"--out {str(run)!r} exists and is not a directory")
        entries = [p.name for p in run.iterdir()]
        if CONFIG_NAME in entries:
            raise CheckpointError(
                f"{str(run)!r} already holds a run; pass --resume to continue it "
                "or choose another --out directory"
            )
        if entries:
            raise CheckpointError(
                f"--out {str(run)!r} is a non-empty directory that is not a hamgrad run; "
                "choose a new or empty directory"
            )
    run.mkdir(parents=True, exist_ok=True)
    return run
