"""``rollout()``: the one entry point to every integration method."""

from __future__ import annotations

from typing import Any

import torch

from hamgrad.integrators.base import Integrator, get_integrator, list_integrators
from hamgrad.integrators.field import check_hamiltonian
from hamgrad.validation import check_finite_float, check_last_dim, check_positive_int


def _as_float(name: str, value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _check_state(x0: Any, dim: int) -> torch.Tensor:
    if not isinstance(x0, torch.Tensor):
        x0 = torch.as_tensor(x0)
    if not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got dtype {x0.dtype}")
    check_last_dim("x0", x0, dim)
    if x0.numel() == 0:
        raise ValueError(f"x0 must hold at least one state, got shape {tuple(x0.shape)}")
    finite = torch.isfinite(x0.detach()).reshape(-1, dim).all(dim=-1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"x0 must be finite; non-finite states at (flat) indices {bad[:10]}")
    return x0


def rollout(
    h: Any,
    x0: torch.Tensor,
    dt: float,
    n_steps: int,
    method: str | Integrator = "leapfrog",
    save_every: int = 1,
    **options: Any,
) -> torch.Tensor:
    """Integrate ``dx/dt = J ∇H(x)`` from ``x0`` for ``n_steps`` steps of ``dt``.

    Args:
        h: any object with the Hamiltonian protocol (``dof``, ``separable``, ``grad(x)``, and
            ``grad_q``/``grad_p`` when separable): a system or a learned Hamiltonian.
        x0: initial states, shape (B, 2n) (q first, then p); any leading batch axes (…, 2n) work,
            and a single state (2n,) gives a (T+1, 2n) result. The output has x0's dtype/device.
        dt: step in time units; negative integrates backward; must be finite and non-zero.
        n_steps: number of steps (> 0).
        method: a registered name (``list_integrators()``) or an ``Integrator`` instance.
        save_every: keep every ``save_every``-th state (must divide ``n_steps``); the steps in
            between are taken but not stored, so memory stays bounded (ground truth with substeps).
        **options: method options, e.g. ``tol``/``max_iter`` (implicit-midpoint),
            ``step_size``/``rtol``/``atol``/``adjoint`` (torchdiffeq methods).

    Returns:
        (…, n_steps // save_every + 1, 2n): saved states at t = k · save_every · dt; index 0 is
        ``x0``. Differentiable with respect to ``x0`` and ``h``'s parameters.

    Raises:
        ValueError / TypeError: a bad argument (unknown method, non-separable ``h`` for an
            explicit splitting method, non-positive ``n_steps``, zero or non-finite ``dt``, wrong
            last axis of ``x0``, ``save_every`` not dividing ``n_steps``, unknown option).
        DivergenceError: a non-finite state appeared (the message gives step and trajectories).
        ConvergenceError: an implicit solve did not reach its tolerance.
    """
    if isinstance(method, Integrator):
        if options:
            raise TypeError("pass options to the Integrator instance, not to rollout()")
        integrator = method
    else:
        integrator = get_integrator(method, **options)
    separable = bool(getattr(h, "separable", False))
    dof = check_hamiltonian(h, need_separable_parts=integrator.separable_only and separable)
    if integrator.separable_only and not separable:
        fitting = [i.name for i in list_integrators() if not i.separable_only]
        raise ValueError(
            f"method {integrator.name!r} needs a separable Hamiltonian H = T(p) + V(q) "
            f"(separable=True with grad_q and grad_p); {type(h).__name__} is not separable. "
            f"Methods for any H: {', '.join(fitting)}"
        )
    dim = 2 * dof
    x0 = _check_state(x0, dim)
    dt = check_finite_float("dt", _as_float("dt", dt), nonzero=True)
    n_steps = check_positive_int("n_steps", n_steps)
    save_every = check_positive_int("save_every", save_every)
    if n_steps % save_every:
        raise ValueError(
            f"save_every must divide n_steps, got save_every={save_every} and n_steps={n_steps}"
        )
    batch_shape = x0.shape[:-1]
    traj = integrator.integrate(h, x0.reshape(-1, dim), dt, n_steps, save_every)
    return traj.reshape(*batch_shape, traj.shape[-2], dim)
