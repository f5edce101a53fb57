"""Metrics for gradient fields and predicted trajectories (definitions in DESIGN.md, "Metrics").

Inputs may be numpy arrays or torch tensors; they are converted to float64 numpy arrays. A single
trajectory has shape ``(T+1, D)`` and gives Python floats; a batch ``(B, T+1, D)`` gives one value per
trajectory (numpy arrays of shape ``(B,)``), which :func:`summarize` reduces to mean and median.
Energies are ``(T+1,)`` for one trajectory or ``(B, T+1)`` for a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "field_error_db",
    "trajectory_psnr",
    "energy_drift",
    "relative_energy_error",
    "valid_prediction_time",
    "energy_mse",
    "relative_error_geomean",
    "state_error",
    "summarize",
]


def _as_numpy(name: str, value: Any) -> np.ndarray:
    """``value`` (numpy array, torch tensor or nested sequence) as a float64 numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def _scalar_or_array(values: np.ndarray) -> float | np.ndarray:
    return float(values) if values.ndim == 0 else values


def _check_same_shape(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} and {b_name} must have the same shape, got {a.shape} and {b.shape}"
        )


def _check_trajectories(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _as_numpy("pred", pred)
    x = _as_numpy("true", true)
    _check_same_shape("pred", p, "true", x)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"trajectories must have shape (T+1, D) or (B, T+1, D), got shape {x.shape}"
        )
    return p, x


def field_error_db(pred: Any, target: Any) -> float:
    """Field error in dB: ``10·log10(mean_i ‖pred_i − target_i‖²)``; lower is better.

    ``pred`` and ``target`` have shape ``(N, d)`` (any leading axes; the last one is the vector).
    """
    p = _as_numpy("pred", pred)
    g = _as_numpy("target", target)
    _check_same_shape("pred", p, "target", g)
    sq = np.sum((p - g) ** 2, axis=-1) if p.ndim > 0 else (p - g) ** 2
    mse = float(np.mean(sq))
    if mse == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(mse))


def trajectory_psnr(pred: Any, true: Any) -> float | np.ndarray:
    """Trajectory PSNR in dB, per trajectory: ``10·log10(R² / MSE)``; higher is better.

    MSE is the mean over time steps and coordinates of ``(pred − true)²`` and ``R`` the range
    (max − min) of the true trajectory over all its steps and coordinates.
    Shapes ``(T+1, D)`` -> float, ``(B, T+1, D)`` -> ``(B,)``. A perfect prediction gives ``+inf``.
    """
    p, x = _check_trajectories(pred, true)
    axes = (-2, -1)
    mse = np.mean((p - x) ** 2, axis=axes)
    rng = np.max(x, axis=axes) - np.min(x, axis=axes)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(rng**2) - 10.0 * np.log10(mse)
    return _scalar_or_array(psnr)


def relative_energy_error(energies: Any) -> np.ndarray:
    """``e(t) = |H_t − H_0| / |H_0|`` for energies of shape ``(T+1,)`` or ``(B, T+1)``."""
    h = _as_numpy("energies", energies)
    if h.ndim not in (1, 2):
        raise ValueError(f"energies must have shape (T+1,) or (B, T+1), got shape {h.shape}")
    h0 = h[..., :1]
    if np.any(h0 == 0.0):
        raise ValueError("relative energy error is undefined for an initial energy H(x_0) = 0")
    return np.abs(h - h0) / np.abs(h0)


def energy_drift(
    energies: Any,
    hamiltonian: Callable[[Any], Any] | None = None,
    *,
    t: Any | None = None,
) -> dict[str, float | np.ndarray]:
    """Energy drift of a trajectory from its relative energy error ``e(t) = |H_t − H_0|/|H_0|``.

    Pass either the energies ``(T+1,)`` / ``(B, T+1)`` directly, or a trajectory ``(T+1, 2n)`` /
    ``(B, T+1, 2n)`` together with ``hamiltonian`` (a callable mapping states to energies, e.g. a
    system's ``hamiltonian``; evaluated in float64). ``t`` (``(T+1,)``, time units) sets the unit of
    the slope; without it the slope is per step.

    Returns a dict with ``max`` (max e), ``final`` (e at the last step), ``slope`` (least-squares
    slope of e against t) and ``half_ratio`` (max e over the second half of the steps divided by
    max e over the first half: about 1 when bounded, about 2 for linear drift; ``inf`` if the first
    half is exactly conserved and the second is not, 1 if both are). Floats for one trajectory,
    ``(B,)`` arrays for a batch.
    """
    if hamiltonian is not None:
        import torch

        states = energies
        if not isinstance(states, torch.Tensor):
            states = torch.as_tensor(np.asarray(states, dtype=np.float64))
        with torch.no_grad():
            energies = hamiltonian(states.to(torch.float64))
    e = relative_energy_error(energies)
    n_points = e.shape[-1]
    if n_points < 2:
        raise ValueError(f"energy drift needs at least 2 time points, got {n_points}")
    if t is None:
        tt = np.arange(n_points, dtype=np.float64)
    else:
        tt = _as_numpy("t", t)
        if tt.shape != (n_points,):
            raise ValueError(f"t must have shape ({n_points},), got shape {tt.shape}")
    tc = tt - tt.mean()
    slope = np.sum((e - e.mean(axis=-1, keepdims=True)) * tc, axis=-1) / np.sum(tc**2)
    last = n_points - 1
    first_half = e[..., : last // 2 + 1]
    second_half = e[..., last // 2 + 1 :]
    m1 = first_half.max(axis=-1)
    m2 = second_half.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(m1 > 0, m2 / np.where(m1 > 0, m1, 1.0), np.where(m2 > 0, np.inf, 1.0))
    return {
        "max": _scalar_or_array(e.max(axis=-1)),
        "final": _scalar_or_array(e[..., -1]),
        "slope": _scalar_or_array(slope),
        "half_ratio": _scalar_or_array(ratio),
    }


def state_error(pred: Any, true: Any) -> np.ndarray:
    """Normalised squared state error per time step: ``‖x̂_t − x_t‖² / mean_t ‖x_t‖²``.

    Shapes ``(T+1, D)`` -> ``(T+1,)``, ``(B, T+1, D)`` -> ``(B, T+1)``.
    """
    p, x = _check_trajectories(pred, true)
    num = np.sum((p - x) ** 2, axis=-1)
    den = np.mean(np.sum(x**2, axis=-1), axis=-1, keepdims=True)
    if np.any(den == 0.0):
        raise ValueError("state error is undefined for a true trajectory that is identically zero")
    return num / den


def valid_prediction_time(
    pred: Any, true: Any, t: Any, threshold: float = 0.025
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Valid prediction time: the first ``t`` with ``‖x̂_t − x_t‖² / mean_t ‖x_t‖² > threshold``.

    ``t`` has shape ``(T+1,)`` (time units). Returns ``(time, fraction)``: the time elapsed from
    ``t[0]`` to the first step over the threshold (the whole horizon ``t[-1] − t[0]`` if none is),
    and that time as a fraction of the horizon. Floats for one trajectory, ``(B,)`` arrays for a batch.
    """
    from hamgrad.validation import check_positive_float

    threshold = check_positive_float("threshold", threshold)
    err = state_error(pred, true)
    tt = _as_numpy("t", t)
    if tt.shape != (err.shape[-1],):
        raise ValueError(f"t must have shape ({err.shape[-1]},), got shape {tt.shape}")
    horizon = tt[-1] - tt[0]
    if horizon <= 0:
        raise ValueError(f"t must increase (horizon t[-1] - t[0] > 0), got horizon {horizon}")
    over = err > threshold
    first = np.where(over.any(axis=-1), over.argmax(axis=-1), err.shape[-1] - 1)
    time = tt[first] - tt[0]
    return _scalar_or_array(time), _scalar_or_array(time / horizon)


def energy_mse(true_energy: Any, pred_energy: Any) -> float | np.ndarray:
    """HNN's energy MSE: the mean over time of ``(H(x_t) − H(x̂_t))²``.

    Energies of shape ``(T+1,)`` -> float or ``(B, T+1)`` -> ``(B,)`` (one value per trajectory;
    HNN's tables report the mean over trajectories).
    """
    a = _as_numpy("true_energy", true_energy)
    b = _as_numpy("pred_energy", pred_energy)
    _check_same_shape("true_energy", a, "pred_energy", b)
    if a.ndim not in (1, 2):
        raise ValueError(f"energies must have shape (T+1,) or (B, T+1), got shape {a.shape}")
    return _scalar_or_array(np.mean((a - b) ** 2, axis=-1))


def relative_error_geomean(
    pred: Any, true: Any, *, skip_initial: bool = True
) -> float | np.ndarray:
    """Geometric mean over time of ``‖x̂_t − x_t‖ / ‖x̂_t + x_t‖`` (Finzi et al. 2020).

    With ``skip_initial`` (default) the first step is left out: a rollout starts from the true state,
    where the error is exactly 0 and the geometric mean would collapse to 0.
    Shapes ``(T+1, D)`` -> float, ``(B, T+1, D)`` -> ``(B,)``.
    """
    p, x = _check_trajectories(pred, true)
    if skip_initial:
        p, x = p[..., 1:, :], x[..., 1:, :]
        if p.shape[-2] == 0:
            raise ValueError("relative_error_geomean needs at least 2 time points")
    num = np.linalg.norm(p - x, axis=-1)
    den = np.linalg.norm(p + x, axis=-1)
    if np.any(den == 0.0):
        raise ValueError("relative error is undefined where x̂_t + x_t = 0")
    with np.errstate(divide="ignore"):
        logs = np.log(num / den)
    return _scalar_or_array(np.exp(np.mean(logs, axis=-1)))


def summarize(values: Any) -> dict[str, float]:
    """Mean, median, min and max of per-trajectory values (``nan`` entries are ignored)."""
    v = np.atleast_1d(_as_numpy("values", values)).ravel()
    finite_or_inf = v[~np.isnan(v)]
    if finite_or_inf.size == 0:
        return {
            "mean": float("nan"),
            "median": float("nan"),
            "min": float("nan"),
            "max": float("nan"),
        }
    return {
        "mean": float(np.mean(finite_or_inf)),
        "median": float(np.median(finite_or_inf)),
        "min": float(np.min(finite_or_inf)),
        "max": float(np.max(finite_or_inf)),
    }
