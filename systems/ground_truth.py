"""Exact-enough ground-truth trajectories: ``simulate(system, x0, dt, n_steps)``.

All trajectories are integrated together (vectorised over the batch) in float64.

* Separable systems: the 8th-order symplectic composition ``yoshida8`` with ``s`` internal steps
  per stored step, through ``hamgrad.integrators.rollout(system, x0, dt/s, n_steps*s,
  save_every=s)``. The number of substeps comes from the system: ``s = ceil(dt / max_substep)``
  per trajectory (``System.max_substep(x0)``, e.g. a fraction of the pericentre time of a Kepler
  orbit), and trajectories needing similar ``s`` are integrated as one group.
* Non-separable systems: the adaptive Dormand–Prince 8(7) method (``dopri8``) with
  ``rtol = atol = 1e-13``.

Every trajectory is then checked: its largest relative energy error ``max_t |H(x_t) − H(x_0)| /
|H(x_0)|`` must stay under ``energy_rtol`` (default 1e-11). Trajectories that miss it are
integrated again with twice the substeps (fixed-step methods) or tolerances 100× tighter
(adaptive ones), up to ``max_refinements`` times; if some still miss it, ``ConvergenceError``
says which. Pass ``check=False`` to skip the check.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hamgrad.errors import ConvergenceError
from hamgrad.validation import check_finite_float, check_positive_float, check_positive_int

Tensor = torch.Tensor

#: default method of each kind of system
SEPARABLE_METHOD = "yoshida8"
GENERAL_METHOD = "dopri8"
#: tolerances of the adaptive method for non-separable systems
ADAPTIVE_TOL = 1e-13
#: relative energy error a ground-truth trajectory must stay under
ENERGY_RTOL = 1e-11


def simulate(
    system: Any,
    x0: Tensor | np.ndarray,
    dt: float,
    n_steps: int,
    *,
    method: str | None = None,
    substeps: int | None = None,
    check: bool = True,
    energy_rtol: float = ENERGY_RTOL,
    max_refinements: int = 8,
    **options: Any,
) -> Tensor:
    """Ground-truth trajectories of ``system`` from the initial states ``x0``.

    Args:
        system: a :class:`~hamgrad.systems.base.System` (anything with the Hamiltonian protocol,
            ``hamiltonian`` and, for the default substeps, ``max_substep``).
        x0: initial states ``(B, 2n)`` (a single state ``(2n,)`` is treated as ``B = 1``).
        dt: time between stored states (time units, finite, non-zero; negative runs backward).
        n_steps: number of stored steps ``T``.
        method: an integration method of ``hamgrad.integrators`` (default ``"yoshida8"`` for
            separable systems, ``"dopri8"`` otherwise).
        substeps: internal steps per stored step for fixed-step methods (default: from
            ``system.max_substep(x0)``, per trajectory).
        check: verify energy conservation and refine the trajectories that miss ``energy_rtol``.
        energy_rtol: bound on each trajectory's largest relative energy error.
        max_refinements: how many times a failing trajectory is refined before giving up.
        **options: passed to the method (e.g. ``rtol``/``atol`` for adaptive ones).

    Returns:
        ``(B, n_steps + 1, 2n)`` float64 states at ``t = k·dt``, ``k = 0..n_steps``; index 0 is ``x0``.

    Raises:
        ValueError / TypeError: bad arguments.
        ConvergenceError: some trajectories still miss ``energy_rtol`` after the refinements.
    """
    from hamgrad.integrators import get_integrator

    x0 = torch.as_tensor(x0).to(torch.float64)
    if x0.ndim == 1:
        x0 = x0.unsqueeze(0)
    dim = 2 * system.dof
    if x0.ndim != 2 or x0.shape[-1] != dim:
        raise ValueError(f"x0 must have shape (B, {dim}), got {tuple(x0.shape)}")
    dt = check_finite_float("dt", dt, nonzero=True)
    n_steps = check_positive_int("n_steps", n_steps)
    energy_rtol = check_positive_float("energy_rtol", energy_rtol)
    max_refinements = check_positive_int("max_refinements", max_refinements, allow_zero=True)
    if method is None:
        method = SEPARABLE_METHOD if system.separable else GENERAL_METHOD
    adaptive = get_integrator(method, **options).adaptive
    if adaptive:
        if substeps is not None:
            raise ValueError(f"substeps does not apply to the adaptive method {method!r}")
        options = {"rtol": ADAPTIVE_TOL, "atol": ADAPTIVE_TOL, **options}
        counts = torch.ones(x0.shape[0], dtype=torch.int64)
    elif substeps is not None:
        counts = torch.full((x0.shape[0],), check_positive_int("substeps", substeps))
    else:
        counts = default_substeps(system, x0, dt)

    with torch.no_grad():
        traj = _integrate_groups(system, x0, dt, n_steps, method, counts, options, adaptive)
        if not check:
            return traj
        todo = torch.arange(x0.shape[0])
        for _ in range(max_refinements + 1):
            err = relative_energy_error(system, traj[todo]).amax(-1)
            todo = todo[~(err <= energy_rtol)]  # NaN counts as failing
            if todo.numel() == 0:
                return traj
            if adaptive:
                options = {k: v / 100 if k in ("rtol", "atol") else v for k, v in options.items()}
            else:
                counts[todo] *= 2
            traj[todo] = _integrate_groups(
                system, x0[todo], dt, n_steps, method, counts[todo], options, adaptive
            )
        worst = float(relative_energy_error(system, traj[todo]).amax())
        raise ConvergenceError(
            f"ground truth of {getattr(system, 'name', type(system).__name__)!r} with method "
            f"{method!r}: {todo.numel()} trajectories (indices {todo[:10].tolist()}) still have "
            f"relative energy error {worst:.3g} > energy_rtol={energy_rtol:g} after "
            f"{max_refinements} refinements"
        )


def default_substeps(system: Any, x0: Tensor, dt: float) -> Tensor:
    """Internal steps per stored step ``(B,)``: ``ceil(|dt| / system.max_substep(x0))``, at least 1."""
    step = torch.as_tensor(system.max_substep(x0), dtype=torch.float64).reshape(x0.shape[0])
    if not bool((step > 0).all()):
        raise ValueError(f"{type(system).__name__}.max_substep must be > 0")
    ratio = torch.ceil(abs(dt) / step * (1 - 1e-12)).clamp(min=1, max=2**31 - 1)
    return ratio.to(torch.int64)


def relative_energy_error(system: Any, traj: Tensor) -> Tensor:
    """``|H(x_t) − H(x_0)| / |H(x_0)|`` of trajectories ``(B, T+1, 2n)``: ``(B, T+1)``."""
    energy = system.hamiltonian(traj)
    e0 = energy[:, :1]
    scale = e0.abs().clamp(min=torch.finfo(energy.dtype).tiny)
    return (energy - e0).abs() / scale


def _integrate_groups(
    system: Any,
    x0: Tensor,
    dt: float,
    n_steps: int,
    method: str,
    counts: Tensor,
    options: dict[str, Any],
    adaptive: bool,
) -> Tensor:
    """Integrate groups of trajectories of similar substep counts; ``counts`` (B,) per trajectory.

    Trajectories whose counts share a power-of-two bracket ``[2^k, 2^(k+1))`` run together with
    the largest count of the bracket.
    """
    from hamgrad.integrators import rollout

    if adaptive:
        return rollout(system, x0, dt, n_steps, method=method, **options)
    out = torch.empty(x0.shape[0], n_steps + 1, x0.shape[-1], dtype=torch.float64)
    bracket = torch.floor(torch.log2(counts.to(torch.float64))).to(torch.int64)
    for b in torch.unique(bracket).tolist():
        idx = torch.nonzero(bracket == b).flatten()
        s = int(counts[idx].max())
        if s > 2**24 or s * n_steps > 2**31:
            raise ValueError(
                f"ground truth would need {s} substeps per stored step (dt={dt:g}); the initial "
                f"states at indices {idx[:10].tolist()} are too close to a singularity"
            )
        out[idx] = rollout(
            system, x0[idx], dt / s, n_steps * s, method=method, save_every=s, **options
        )
    return out


__all__ = ["default_substeps", "relative_energy_error", "simulate"]
