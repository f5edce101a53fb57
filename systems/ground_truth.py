"""Exact-enough ground-truth trajectories: ``simulate(system, x0, dt, n_steps)``.

All trajectories are integrated together (vectorised over the batch) in float64.

* Systems with a closed-form solution (``system.exact_flow(x0, t)``: spring-mass, the two-body
  Kepler problem, the oscillator chain) use it: exact up to round-off, and fast.
* Separable systems: the 8th-order symplectic composition ``yoshida8`` with ``s`` internal steps
  per stored step, through ``hamgrad.integrators.rollout(system, x0, dt/s, n_steps*s,
  save_every=s)``. The number of substeps comes from the system: ``s = ceil(dt / max_substep)``
  per trajectory (``System.max_substep(x0)``, e.g. a fraction of the pericentre time of a Kepler
  orbit); trajectories needing similar ``s`` run as one group.
* Non-separable systems: the adaptive Dormand–Prince 8(7) method (``dopri8``) of torchdiffeq
  with ``rtol = atol = 1e-12`` under the max norm (every coordinate of every trajectory within
  tolerance), stepping exactly onto the stored times (no interpolation: torchdiffeq's dense
  output is far less accurate than its steps).

Every trajectory is then checked (``check=True``): its largest relative energy error
``max_t |H(x_t) − H(x_0)| / |H(x_0)|`` must stay under ``energy_rtol`` (default 1e-11). The
trajectories that miss it (e.g. three bodies passing close to each other) are integrated again
with adaptive step doubling: each trajectory advances by segments of ``dt / 2^L``, each computed
with ``s`` and ``2s`` substeps; the ``2s`` result is kept once the two agree to ``state_tol``
(relative to ``1 + |x|``) and its energy is within ``energy_rtol / 2`` of ``H(x_0)``, otherwise
the segment is halved (at most ``max_refinements`` times); segments grow again once the motion is
easy. The segments tile the stored intervals, so stored states are computed, never interpolated.
Adaptive methods instead repeat with tolerances 10× tighter (down to 1e-15); closed forms that
miss the bound (round-off on near-collision orbits) fall back to the numerical path. Trajectories
that still miss ``energy_rtol`` raise ``ConvergenceError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hamgrad.errors import ConvergenceError
from hamgrad.validation import check_finite_float, check_positive_float, check_positive_int

Tensor = torch.Tensor

#: method name of a system's closed-form solution (``system.exact_flow``)
EXACT = "exact"
#: default method of each kind of system without a closed form
SEPARABLE_METHOD = "yoshida8"
GENERAL_METHOD = "dopri8"
#: tolerances of the adaptive method for non-separable systems
ADAPTIVE_TOL = 1e-12
#: tightest tolerance a refinement of an adaptive method goes down to
MIN_ADAPTIVE_TOL = 1e-15
#: relative energy error a ground-truth trajectory must stay under
ENERGY_RTOL = 1e-11
#: agreement of the s- and 2s-substep results of an interval during refinement
STATE_TOL = 1e-10
#: most substeps per stored step before the state is declared singular
MAX_SUBSTEPS = 2**22


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
    state_tol: float = STATE_TOL,
    max_refinements: int = 16,
    **options: Any,
) -> Tensor:
    """Ground-truth trajectories of ``system`` from the initial states ``x0``.

    Args:
        system: a :class:`~hamgrad.systems.base.System` (anything with the Hamiltonian protocol,
            ``hamiltonian`` and, for the default substeps, ``max_substep``).
        x0: initial states ``(B, 2n)`` (a single state ``(2n,)`` is treated as ``B = 1``).
        dt: time between stored states (time units, finite, non-zero; negative runs backward).
        n_steps: number of stored steps ``T``.
        method: ``"exact"`` (the system's closed form ``exact_flow``, the default where one
            exists) or an integration method of ``hamgrad.integrators`` (default ``"yoshida8"``
            for separable systems, ``"dopri8"`` otherwise).
        substeps: internal steps per stored step for fixed-step methods (default: from
            ``system.max_substep(x0)``, per trajectory).
        check: verify energy conservation and refine the trajectories that miss ``energy_rtol``.
        energy_rtol: bound on each trajectory's largest relative energy error.
        state_tol: agreement required of the ``s``- and ``2s``-substep results during refinement.
        max_refinements: how many times a stored interval may be halved during refinement.
        **options: passed to the method (e.g. ``rtol``/``atol`` for adaptive ones).

    Returns:
        ``(B, n_steps + 1, 2n)`` float64 states at ``t = k·dt``, ``k = 0..n_steps``; index 0 is ``x0``.

    Raises:
        ValueError / TypeError: bad arguments.
        ConvergenceError: some trajectories still miss ``energy_rtol`` after refinement.
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
    state_tol = check_positive_float("state_tol", state_tol)
    max_refinements = check_positive_int("max_refinements", max_refinements, allow_zero=True)
    if method is None:
        if callable(getattr(system, "exact_flow", None)):
            method = EXACT
        else:
            method = SEPARABLE_METHOD if system.separable else GENERAL_METHOD
    if method == EXACT:
        if not callable(getattr(system, "exact_flow", None)):
            raise ValueError(f"{type(system).__name__} has no exact solution (method='exact')")
        if substeps is not None or options:
            raise ValueError("method='exact' takes neither substeps nor integrator options")
        with torch.no_grad():
            t = torch.arange(n_steps + 1, dtype=torch.float64) * dt
            traj = system.exact_flow(x0, t).to(torch.float64)
            traj[:, 0] = x0
            todo = _failing(system, traj, energy_rtol) if check else torch.zeros(0)
        if todo.numel() == 0:
            return traj
        # round-off of the closed form (e.g. near-collision orbits): integrate those numerically
        traj[todo] = simulate(
            system, x0[todo], dt, n_steps, method=SEPARABLE_METHOD if system.separable
            else GENERAL_METHOD, energy_rtol=energy_rtol, state_tol=state_tol,
            max_refinements=max_refinements,
        )  # fmt: skip
        return traj
    adaptive = get_integrator(method, **options).adaptive
    if adaptive:
        if substeps is not None:
            raise ValueError(f"substeps does not apply to the adaptive method {method!r}")
        options = {"rtol": ADAPTIVE_TOL, "atol": ADAPTIVE_TOL, **options}
    elif substeps is not None:
        counts = torch.full((x0.shape[0],), check_positive_int("substeps", substeps))
    else:
        counts = default_substeps(system, x0, dt)

    with torch.no_grad():
        if adaptive:
            traj = _integrate_adaptive(system, x0, dt, n_steps, method, options)
        else:
            traj = _advance(system, x0, dt, n_steps, method, counts, options)
        if not check:
            return traj
        todo = _failing(system, traj, energy_rtol)
        if adaptive:
            while todo.numel() and min(options["rtol"], options["atol"]) >= 10 * MIN_ADAPTIVE_TOL:
                options = {k: v / 10 if k in ("rtol", "atol") else v for k, v in options.items()}
                traj[todo] = _integrate_adaptive(system, x0[todo], dt, n_steps, method, options)
                todo = todo[_failing(system, traj[todo], energy_rtol)]
        elif todo.numel():
            traj[todo] = _integrate_refined(
                system, x0[todo], dt, n_steps, method, counts[todo], options,
                state_tol, energy_rtol, max_refinements,
            )  # fmt: skip
            todo = todo[_failing(system, traj[todo], energy_rtol)]
        if todo.numel() == 0:
            return traj
        worst = float(relative_energy_error(system, traj[todo]).amax())
        raise ConvergenceError(
            f"ground truth of {getattr(system, 'name', type(system).__name__)!r} with method "
            f"{method!r}: {todo.numel()} trajectories (indices {todo[:10].tolist()}) still have "
            f"relative energy error {worst:.3g} > energy_rtol={energy_rtol:g} after refinement"
        )


def describe(system: Any) -> dict[str, Any]:
    """How :func:`simulate` computes the ground truth of ``system`` by default (for file metadata).

    Returns a JSON-serialisable dict with ``method`` (``"exact"``, ``"yoshida8"`` or ``"dopri8"``)
    and the settings that fix the result.
    """
    info: dict[str, Any] = {"function": "hamgrad.systems.ground_truth.simulate"}
    if callable(getattr(system, "exact_flow", None)):
        info.update(method=EXACT, solution=f"{type(system).__name__}.exact_flow (closed form)")
    elif system.separable:
        info.update(
            method=SEPARABLE_METHOD,
            substeps="per trajectory: ceil(dt / system.max_substep(x0))",
            refinement="adaptive step doubling of the trajectories missing energy_rtol",
            state_tol=STATE_TOL,
        )
    else:
        info.update(
            method=GENERAL_METHOD,
            rtol=ADAPTIVE_TOL,
            atol=ADAPTIVE_TOL,
            norm="max",
            output="solver steps land on the stored times (no interpolation)",
        )
    info["energy_rtol"] = ENERGY_RTOL
    return info


def default_substeps(system: Any, x0: Tensor, dt: float) -> Tensor:
    """Internal steps per stored step ``(B,)``: ``ceil(|dt| / system.max_substep(x0))``, at least 1."""
    if not callable(getattr(system, "max_substep", None)):
        raise ValueError(
            f"{type(system).__name__} has no max_substep(x0): pass substeps= to simulate()"
        )
    step = torch.as_tensor(system.max_substep(x0), dtype=torch.float64).reshape(x0.shape[0])
    if not bool((step > 0).all()):
        raise ValueError(f"{type(system).__name__}.max_substep must be > 0")
    ratio = torch.ceil(abs(dt) / step * (1 - 1e-12)).clamp(min=1, max=MAX_SUBSTEPS)
    return ratio.to(torch.int64)


def relative_energy_error(system: Any, traj: Tensor) -> Tensor:
    """``|H(x_t) − H(x_0)| / |H(x_0)|`` of trajectories ``(B, T+1, 2n)``: ``(B, T+1)``."""
    energy = system.hamiltonian(traj)
    e0 = energy[:, :1]
    scale = e0.abs().clamp(min=torch.finfo(energy.dtype).tiny)
    return (energy - e0).abs() / scale


def _failing(system: Any, traj: Tensor, energy_rtol: float) -> Tensor:
    """Indices of the trajectories whose relative energy error exceeds ``energy_rtol`` (or is NaN)."""
    err = relative_energy_error(system, traj).amax(-1)
    return torch.nonzero(~(err <= energy_rtol)).flatten()


def _advance(
    system: Any, x: Tensor, dt: float, n_steps: int, method: str, counts: Tensor, options: dict
) -> Tensor:
    """``(B, n_steps + 1, 2n)``: each trajectory with ``counts[b]`` substeps per stored step.

    Trajectories whose counts share a power-of-two bracket ``[2^k, 2^(k+1))`` run together with
    the largest count of the bracket. A group that diverges (non-finite state) comes back as NaN,
    for the energy check and the refinement to handle.
    """
    from hamgrad.errors import DivergenceError
    from hamgrad.integrators import rollout

    out = torch.empty(x.shape[0], n_steps + 1, x.shape[-1], dtype=torch.float64)
    bracket = torch.floor(torch.log2(counts.to(torch.float64))).to(torch.int64)
    for b in torch.unique(bracket).tolist():
        idx = torch.nonzero(bracket == b).flatten()
        s = int(counts[idx].max())
        try:
            out[idx] = rollout(
                system, x[idx], dt / s, n_steps * s, method=method, save_every=s, **options
            )
        except DivergenceError:
            out[idx] = float("nan")
    return out


def _integrate_refined(
    system: Any,
    x0: Tensor,
    dt: float,
    n_steps: int,
    method: str,
    counts: Tensor,
    options: dict,
    state_tol: float,
    energy_rtol: float,
    max_refinements: int,
) -> Tensor:
    """Adaptive dyadic step doubling (see the module docstring): ``(B, n_steps + 1, 2n)``.

    Each trajectory advances by segments of ``dt / 2^L`` (level ``L``), each computed with
    ``counts[b]`` and ``2 counts[b]`` substeps. A segment is accepted when the two results agree
    to ``state_tol`` and the finer one keeps the energy within ``energy_rtol / 2``; otherwise it is
    halved (``L + 1``, at most ``max_refinements``). After an easy segment (agreement 256× better
    than needed) the level drops again when the segment boundary allows. Segments always tile
    the stored intervals exactly, so every stored state is a segment end.
    """
    batch = x0.shape[0]
    resolution = 1 << max_refinements  # positions within an interval in units of dt / 2^max
    out = torch.empty(batch, n_steps + 1, x0.shape[-1], dtype=torch.float64)
    out[:, 0] = x0
    x = x0.clone()
    h0 = system.hamiltonian(x0)
    interval = torch.zeros(batch, dtype=torch.int64)  # stored interval being filled
    pos = torch.zeros(batch, dtype=torch.int64)  # position inside it
    level = torch.zeros(batch, dtype=torch.int64)
    while True:
        active = torch.nonzero(interval < n_steps).flatten()
        if active.numel() == 0:
            return out
        for lev in torch.unique(level[active]).tolist():
            idx = active[level[active] == lev]
            h = dt / (1 << lev)
            coarse = _advance(system, x[idx], h, 1, method, counts[idx], options)[:, -1]
            fine = _advance(system, x[idx], h, 1, method, 2 * counts[idx], options)[:, -1]
            err = (fine - coarse).abs().amax(-1) / (1.0 + fine.abs().amax(-1))
            energy_err = (system.hamiltonian(fine) - h0[idx]).abs() / h0[idx].abs()
            ok = (err <= state_tol) & (energy_err <= energy_rtol / 2)
            done, bad = idx[ok], idx[~ok]
            x[done] = fine[ok]
            pos[done] += resolution >> lev
            finished = done[pos[done] == resolution]
            out[finished, interval[finished] + 1] = x[finished]
            interval[finished] += 1
            pos[finished] = 0
            # coarsen after an easy segment if the doubled segment stays aligned
            easy = done[(err[ok] <= state_tol / 256) & (level[done] > 0)]
            aligned = pos[easy] % (resolution >> (level[easy] - 1)) == 0
            level[easy[aligned]] -= 1
            level[bad] += 1
            if bool((level[bad] > max_refinements).any()):
                worst = bad[level[bad] > max_refinements]
                raise ConvergenceError(
                    f"ground truth of {getattr(system, 'name', type(system).__name__)!r}: "
                    f"trajectories {worst[:10].tolist()} do not converge near t = "
                    f"{float(interval[worst[0]]) * dt:g} even with segments of dt/2^"
                    f"{max_refinements} (state_tol={state_tol:g}); a near-collision?"
                )


def _integrate_adaptive(
    system: Any, x0: Tensor, dt: float, n_steps: int, method: str, options: dict[str, Any]
) -> Tensor:
    """torchdiffeq's adaptive ``method`` stepping onto every stored time, max-norm error control."""
    import torchdiffeq

    from hamgrad.integrators.base import integrator_class

    extra = sorted(set(options) - {"rtol", "atol"})
    if extra:
        raise TypeError(f"ground truth with {method!r} accepts only rtol and atol, got {extra}")
    solver = integrator_class(method).solver
    t = torch.arange(n_steps + 1, dtype=torch.float64) * dt

    def field(_t: Tensor, x: Tensor) -> Tensor:
        return system.vector_field(x)

    traj = torchdiffeq.odeint(
        field,
        x0,
        t,
        method=solver,
        rtol=options["rtol"],
        atol=options["atol"],
        options={"step_t": t, "norm": _max_norm},
    )
    return traj.transpose(0, 1).contiguous()


def _max_norm(v: Tensor) -> Tensor:
    return v.abs().max()


__all__ = ["default_substeps", "describe", "relative_energy_error", "simulate"]
