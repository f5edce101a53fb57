"""Evaluation of learned dynamics: rollouts from initial states, compared with the exact ground truth.

:func:`evaluate_model` rolls a trained model out (in float64) from initial states over a horizon,
simulates the true system from the same states with :func:`hamgrad.systems.ground_truth.simulate`,
and computes the metrics of :mod:`hamgrad.metrics`: trajectory PSNR, HNN's energy MSE, energy drift
of the true H along the prediction, valid prediction time, the geometric-mean relative error, and
(for conservative models) the drift of the model's own energy along its rollout.

Default integrators: separable learned Hamiltonians are rolled out with the symplectic ``yoshida4``
with substeps; joint Hamiltonians (HNN, joint GradNets) and the unconstrained MLP with ``dopri5`` at
tight tolerances (HNN's own evaluation integrated its learned field with an adaptive RK45 at
rtol 1e-12).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hamgrad.metrics import (
    energy_drift,
    energy_mse,
    relative_energy_error,
    relative_error_geomean,
    state_error,
    summarize,
    trajectory_psnr,
    valid_prediction_time,
)
from hamgrad.validation import check_positive_float, check_positive_int

__all__ = [
    "EvalResult",
    "default_eval_integrator",
    "predict",
    "evaluate_model",
    "system_from_attrs",
    "eval_protocol",
]

#: Tolerances of the adaptive integrator used for non-separable models.
ADAPTIVE_TOL = {"rtol": 1e-10, "atol": 1e-10}
#: Substeps per output step of the default symplectic integrator (yoshida4 at the HNN two-body
#: step 0.05 is within 1e-7 of the exact flow: PSNR ~150 dB, far below any model error).
DEFAULT_SUBSTEPS = 1


@dataclass
class EvalResult:
    """Rollouts and metrics of one model.

    ``t`` (T+1,) times; ``true``, ``pred`` (B, T+1, 2n) states; ``true_energy`` and ``pred_energy``
    (B, T+1): the true H along the true and the predicted trajectories; ``model_energy`` (B, T+1) the
    model's own H along its prediction (conservative models, else ``None``); ``metrics`` the summary
    (JSON-serialisable); ``per_trajectory`` the per-trajectory values.
    """

    t: np.ndarray
    true: np.ndarray
    pred: np.ndarray
    true_energy: np.ndarray
    pred_energy: np.ndarray
    model_energy: np.ndarray | None
    integrator: str
    integrator_options: dict[str, Any]
    metrics: dict[str, Any]
    per_trajectory: dict[str, list[float]] = field(default_factory=dict)

    @property
    def relative_energy_error(self) -> np.ndarray:
        """|H(x̂_t) − H(x_0)| / |H(x_0)| with the true H, (B, T+1)."""
        return relative_energy_error(self.pred_energy)

    @property
    def state_error(self) -> np.ndarray:
        """‖x̂_t − x_t‖² / mean_t ‖x_t‖², (B, T+1)."""
        return state_error(self.pred, self.true)


def default_eval_integrator(model: nn.Module) -> tuple[str, dict[str, Any], int]:
    """``(method, options, substeps)`` used to roll a model out when none is given."""
    if getattr(model, "separable", False):
        return "yoshida4", {}, DEFAULT_SUBSTEPS
    return "dopri5", dict(ADAPTIVE_TOL), 1


def _float64_copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.double()


def predict(
    model: nn.Module,
    x0: torch.Tensor,
    dt: float,
    n_steps: int,
    *,
    method: str | None = None,
    substeps: int | None = None,
    **options: Any,
) -> tuple[torch.Tensor, str, dict[str, Any], int]:
    """Roll ``model`` out in float64 from ``x0`` (B, 2n): states every ``dt`` for ``n_steps`` steps.

    ``substeps`` integrator steps are taken per output step (default :data:`DEFAULT_SUBSTEPS` for
    the symplectic default, 1 otherwise). Returns ``(trajectory (B, n_steps+1, 2n), method, options, substeps)``.
    """
    from hamgrad.integrators import rollout

    d_method, d_options, d_substeps = default_eval_integrator(model)
    if method is None:
        method, options = d_method, {**d_options, **options}
    if substeps is None:
        substeps = d_substeps if method == d_method else 1
    substeps = check_positive_int("substeps", substeps)
    m = _float64_copy(model)
    x0 = torch.as_tensor(x0).to(torch.float64)
    with torch.no_grad():
        traj = rollout(
            m,
            x0,
            dt / substeps,
            n_steps * substeps,
            method=method,
            save_every=substeps,
            **options,
        )
    return traj, method, options, substeps


def _energy(fn: Any, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return fn(x).detach().double().numpy()


def evaluate_model(
    model: nn.Module,
    system: Any,
    x0: torch.Tensor,
    dt: float,
    n_steps: int,
    *,
    method: str | None = None,
    substeps: int | None = None,
    true: torch.Tensor | None = None,
    model_energy: bool = False,
    **options: Any,
) -> EvalResult:
    """Roll ``model`` and ``system`` out from ``x0`` (B, 2n) and score the prediction.

    ``dt`` (time units) is the output interval, ``n_steps`` the number of output steps (horizon
    ``n_steps·dt``). ``true`` may pass a precomputed ground truth (B, n_steps+1, 2n) to share it
    between models. ``model_energy=True`` also evaluates the model's own energy along its rollout
    (for cascade GradNets this is a quadrature and can be slow).
    """
    from hamgrad.systems.ground_truth import simulate

    dt = check_positive_float("dt", dt)
    n_steps = check_positive_int("n_steps", n_steps)
    x0 = torch.as_tensor(x0).to(torch.float64)
    if x0.ndim != 2 or x0.shape[-1] != model.dim:
        raise ValueError(
            f"initial states must have shape (B, {model.dim}) for this model, got {tuple(x0.shape)}"
        )
    if true is None:
        true = simulate(system, x0, dt, n_steps)
    true = torch.as_tensor(true).to(torch.float64)
    pred, method, options, substeps = predict(
        model, x0, dt, n_steps, method=method, substeps=substeps, **options
    )
    t = dt * np.arange(n_steps + 1, dtype=np.float64)
    true_np, pred_np = true.numpy(), pred.numpy()
    h_true = _energy(system.hamiltonian, true)
    h_pred = _energy(system.hamiltonian, pred)
    own_energy = None
    if model_energy and getattr(model, "conservative", False) and hasattr(model, "energy"):
        own_energy = _energy(_float64_copy(model).energy, pred)

    psnr = np.asarray(trajectory_psnr(pred_np, true_np))
    e_mse = np.asarray(energy_mse(h_true, h_pred))
    drift = energy_drift(h_pred, t=t)
    vpt_time, vpt_frac = valid_prediction_time(pred_np, true_np, t)
    geo = np.asarray(relative_error_geomean(pred_np, true_np))
    per = {
        "psnr_db": psnr.tolist(),
        "energy_mse": e_mse.tolist(),
        "energy_drift_max": np.asarray(drift["max"]).tolist(),
        "energy_drift_final": np.asarray(drift["final"]).tolist(),
        "energy_drift_half_ratio": np.asarray(drift["half_ratio"]).tolist(),
        "valid_time": np.asarray(vpt_time).tolist(),
        "valid_fraction": np.asarray(vpt_frac).tolist(),
        "relative_error_geomean": geo.tolist(),
    }
    metrics: dict[str, Any] = {
        "n_trajectories": int(x0.shape[0]),
        "horizon": float(t[-1]),
        "dt": dt,
        "n_steps": n_steps,
        "integrator": method,
        "integrator_options": _jsonable(options),
        "substeps": substeps,
        "psnr_db": summarize(psnr),
        "energy_mse": summarize(e_mse),
        "energy_drift_max": summarize(drift["max"]),
        "energy_drift_final": summarize(drift["final"]),
        "energy_drift_slope": summarize(drift["slope"]),
        "energy_drift_half_ratio": summarize(drift["half_ratio"]),
        "valid_time": summarize(vpt_time),
        "valid_fraction": summarize(vpt_frac),
        "relative_error_geomean": summarize(geo),
    }
    if own_energy is not None:
        own = energy_drift(own_energy, t=t)
        metrics["model_energy_drift_max"] = summarize(own["max"])
        metrics["model_energy_drift_half_ratio"] = summarize(own["half_ratio"])
    return EvalResult(
        t=t,
        true=true_np,
        pred=pred_np,
        true_energy=h_true,
        pred_energy=h_pred,
        model_energy=own_energy,
        integrator=method,
        integrator_options=options,
        metrics=metrics,
        per_trajectory=per,
    )


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool, type(None)))}


def system_from_attrs(attrs: dict[str, Any]) -> Any:
    """The system a trajectory file was generated from (its ``system`` and ``system_params``)."""
    from hamgrad.systems import get_system

    name = attrs.get("system")
    params = attrs.get("system_params") or "{}"
    if isinstance(params, bytes):
        params = params.decode()
    if isinstance(params, str):
        params = json.loads(params)
    if not name:
        raise ValueError("the data file does not name its system (root attribute 'system')")
    return get_system(name, **params)


def eval_protocol(
    data: str | os.PathLike,
    *,
    protocol: str = "test",
    n_eval: int | None = None,
    horizon: float | None = None,
    dt: float | None = None,
) -> tuple[Any, torch.Tensor, float, int]:
    """``(system, x0 (B, 2n), dt, n_steps)`` of an evaluation on ``data``.

    ``protocol="test"``: the initial states of the file's test split (the held-out trajectories),
    by default over the file's own time span and step. ``protocol="preset"``: the evaluation
    protocol of the preset the file was generated from (e.g. HNN's 15 two-body orbits over
    t ∈ [0, 25] at 500 points). ``horizon`` (time units, > 0) and ``dt`` override the time grid;
    ``n_eval`` keeps the first ``n_eval`` initial states.
    """
    import h5py

    from hamgrad.training_data import check_trajectory_file
    from hamgrad.validation import check_choice

    check_choice("protocol", protocol, ["test", "preset"])
    if horizon is not None:
        horizon = float(horizon)
        if not np.isfinite(horizon) or horizon <= 0:
            raise ValueError(f"horizon must be a finite number > 0 (time units), got {horizon!r}")
    if dt is not None:
        dt = check_positive_float("dt", dt)
    attrs = check_trajectory_file(data)
    system = system_from_attrs(attrs)
    file_dt = float(attrs["dt"])
    file_steps = int(attrs["n_steps"])
    if protocol == "test":
        with h5py.File(data, "r") as f:
            split = "test" if "test" in f and f["test"]["q"].shape[0] > 0 else None
            if split is None:
                raise ValueError(f"{str(data)!r} has no non-empty test split to evaluate on")
            if "params" in f[split]:
                raise ValueError(
                    "evaluation of datasets with per-trajectory parameters is not supported"
                )
            x0 = torch.from_numpy(
                np.concatenate([f[split]["q"][:, 0, :], f[split]["p"][:, 0, :]], axis=-1)
            )
        # with observation noise the stored (noisy) initial state is taken as the true start
        step = dt or file_dt
        span = horizon if horizon is not None else file_dt * file_steps
    else:
        config = attrs.get("config") or "{}"
        config = json.loads(config) if isinstance(config, str) else config
        preset = config.get("preset")
        if not preset:
            raise ValueError(
                f"{str(data)!r} was not generated from a preset; use protocol 'test' instead"
            )
        spec = type(system).preset(preset).get("eval")
        if spec is None:
            raise ValueError(f"preset {preset!r} of {attrs['system']!r} has no evaluation protocol")
        x0 = system.eval_initial(preset)
        step = dt or float(spec["dt"])
        span = horizon if horizon is not None else float(spec["dt"]) * int(spec["n_steps"])
    n_steps = max(1, int(round(span / step)))
    if n_eval is not None:
        n_eval = check_positive_int("n_eval", n_eval)
        x0 = x0[:n_eval]
    return system, x0.to(torch.float64), step, n_steps
