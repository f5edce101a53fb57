"""Trajectory data for training and evaluation: file checks, splits, derivative targets, windows.

:func:`load_training_data` reads one split of a trajectory file (``hamgrad.datasets``) into memory
with the chosen ``dx/dt`` targets: the dataset's analytic derivatives, or finite differences of the
stored states alone (:func:`finite_difference_derivatives`); optionally each trajectory's noisy
states rebuilt from its analytic derivatives (:func:`integrated_states`).
:func:`check_trajectory_file` refuses a gradient-field file or a foreign file with a message that
says what was found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamgrad.errors import DataFormatError
from hamgrad.validation import check_choice

TARGETS = ("analytic", "finite-difference")

__all__ = [
    "TARGETS",
    "TrainingData",
    "check_denoise_targets",
    "check_trajectory_file",
    "finite_difference_derivatives",
    "integrated_states",
    "load_training_data",
    "recorded_noise_std",
    "split_names",
]


def check_trajectory_file(path: str | os.PathLike) -> dict[str, Any]:
    """Check that ``path`` is a hamgrad trajectory file; return its root attributes.

    A gradient-field file (format ``hamgrad-fields``), a foreign HDF5 file or a non-HDF5 file raise
    :class:`DataFormatError` with a message that says what was found.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise DataFormatError(f"{str(path)!r} is not a readable HDF5 file ({exc})") from exc
    fmt = attrs.get("format")
    if fmt == "hamgrad-fields":
        raise DataFormatError(
            f"{str(path)!r} is a static gradient-field dataset (format 'hamgrad-fields'); "
            "dynamics training needs a trajectory dataset (format 'hamgrad-trajectories'), "
            "train field models with `hamgrad fields`"
        )
    if fmt != "hamgrad-trajectories":
        raise DataFormatError(
            f"{str(path)!r} is not a hamgrad trajectory dataset (format {fmt!r}, "
            "expected 'hamgrad-trajectories')"
        )
    return attrs


def recorded_noise_std(path: str | os.PathLike) -> float:
    """The std of the observation noise a trajectory file records for its states (0 = clean)."""
    return float(check_trajectory_file(path).get("noise_std", 0.0) or 0.0)


def check_denoise_targets(targets: str) -> None:
    """Refuse ``denoise_states`` with targets other than the analytic derivatives it integrates."""
    if targets != "analytic":
        raise ValueError(
            f"denoise_states integrates the analytic derivatives; it needs targets='analytic', "
            f"got targets={targets!r}"
        )


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def split_names(path: str | os.PathLike) -> list[str]:
    """The non-empty split groups of a trajectory file."""
    import h5py

    with h5py.File(path, "r") as f:
        return [
            name
            for name, obj in f.items()
            if isinstance(obj, h5py.Group) and "q" in obj and obj["q"].shape[0] > 0
        ]


def finite_difference_derivatives(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """dx/dt estimated from stored states alone: second-order central differences inside,
    second-order one-sided differences at both ends (``numpy.gradient``, ``edge_order=2``).

    ``x`` (N, T+1, D), ``t`` (T+1,) -> (N, T+1, D). Needs at least 3 time points.
    """
    if x.shape[-2] < 3:
        raise ValueError(
            f"finite-difference targets need at least 3 time points per trajectory, got {x.shape[-2]}"
        )
    return np.gradient(x, t, axis=-2, edge_order=2)


def _interval_integrals(f: np.ndarray, h: float) -> np.ndarray:
    """∫ over each interval [t_k, t_k+1] of a function sampled at uniform points, from the cubic
    through the four nearest samples (the quadratic through three when there are only three):
    ``f`` (N, T+1, D) -> (N, T, D), error O(h⁵) per interval."""
    if f.shape[1] == 3:
        first = 5 * f[:, 0] + 8 * f[:, 1] - f[:, 2]
        last = -f[:, 0] + 8 * f[:, 1] + 5 * f[:, 2]
        return np.stack([first, last], axis=1) * (h / 12)
    inner = -f[:, :-3] + 13 * f[:, 1:-2] + 13 * f[:, 2:-1] - f[:, 3:]
    first = 9 * f[:, 0] + 19 * f[:, 1] - 5 * f[:, 2] + f[:, 3]
    last = f[:, -4] - 5 * f[:, -3] + 19 * f[:, -2] + 9 * f[:, -1]
    return np.concatenate([first[:, None], inner, last[:, None]], axis=1) * (h / 24)


def integrated_states(x: np.ndarray, dxdt: np.ndarray, dt: float) -> np.ndarray:
    """Each trajectory's states rebuilt from its derivatives: x̂(t) = c + ∫₀ᵗ ẋ ds.

    ``x``, ``dxdt`` (N, T+1, D) on a uniform time grid of step ``dt`` -> (N, T+1, D). The integral
    is the cumulative sum of piecewise-cubic quadratures of ``dxdt`` (error O(dt⁴)); the offset
    ``c`` of each trajectory is the least-squares fit of x̂ to the stored states (the mean of
    x − ∫ẋ over its points). When the derivatives are exact and the stored states carry
    independent noise of std σ (the HNN protocols), x̂ differs from the clean trajectory by one
    constant of std σ/√(T+1) instead of by fresh noise at every point. Needs T+1 ≥ 3.
    """
    if x.shape != dxdt.shape or x.ndim != 3:
        raise ValueError(
            f"x and dxdt must both have shape (N, T+1, D), got {x.shape} and {dxdt.shape}"
        )
    if x.shape[1] < 3:
        raise ValueError(
            f"integrated states need at least 3 time points per trajectory, got {x.shape[1]}"
        )
    steps = _interval_integrals(dxdt, dt)
    integral = np.concatenate([np.zeros_like(steps[:, :1]), np.cumsum(steps, axis=1)], axis=1)
    return integral + (x - integral).mean(axis=1, keepdims=True)


@dataclass
class TrainingData:
    """One split of a trajectory dataset in memory: states ``x`` and targets ``dxdt`` (N, T+1, 2n)
    as float64 numpy arrays, times ``t`` (T+1,), and the file's root attributes."""

    x: np.ndarray
    dxdt: np.ndarray
    t: np.ndarray
    attrs: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.x.shape[-1])

    @property
    def dt(self) -> float:
        steps = np.diff(self.t)
        if not np.allclose(steps, steps[0], rtol=1e-9, atol=0):
            raise DataFormatError(
                "the dataset's time grid is not uniform; rollout loss and denoise_states need one"
            )
        return float(steps[0])

    def states(self) -> np.ndarray:
        """All states as (N·(T+1), 2n)."""
        return self.x.reshape(-1, self.dim)

    def derivatives(self) -> np.ndarray:
        """All targets as (N·(T+1), 2n)."""
        return self.dxdt.reshape(-1, self.dim)

    def windows(self, k: int) -> np.ndarray:
        """Every window of ``k + 1`` consecutive states: (N·(T+1−k), k+1, 2n)."""
        n_points = self.x.shape[1]
        if k >= n_points:
            raise ValueError(
                f"rollout_steps must be smaller than the number of time points per trajectory "
                f"({n_points}), got {k}"
            )
        view = np.lib.stride_tricks.sliding_window_view(self.x, k + 1, axis=1)
        # (N, T+1-k, 2n, k+1) -> (N, T+1-k, k+1, 2n)
        return np.ascontiguousarray(np.moveaxis(view, -1, -2)).reshape(-1, k + 1, self.dim)


def load_training_data(
    path: str | os.PathLike,
    split: str = "train",
    targets: str = "analytic",
    denoise_states: bool = False,
) -> TrainingData:
    """Load one split of a trajectory file with the chosen derivative targets.

    ``denoise_states=True`` replaces the stored states by :func:`integrated_states` of the
    analytic derivatives (needs ``targets="analytic"``: finite differences integrate back to the
    stored states).
    """
    from hamgrad.datasets import load_trajectories

    check_choice("targets", targets, TARGETS)
    if denoise_states:
        check_denoise_targets(targets)
    attrs = check_trajectory_file(path)
    available = split_names(path)
    if split not in available:
        raise DataFormatError(
            f"{str(path)!r} has no (non-empty) split {split!r}; it has: {', '.join(available)}"
        )
    traj = load_trajectories(path, split)
    x = np.asarray(traj.x, dtype=np.float64)
    t = np.asarray(traj.t, dtype=np.float64)
    if targets == "analytic":
        dxdt = np.asarray(traj.dxdt, dtype=np.float64)
    else:
        dxdt = finite_difference_derivatives(x, t)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(dxdt))):
        raise DataFormatError(f"{str(path)!r} split {split!r} holds non-finite values")
    data = TrainingData(x=x, dxdt=dxdt, t=t, attrs=attrs)
    if denoise_states:
        data.x = integrated_states(x, dxdt, data.dt)
    return data
