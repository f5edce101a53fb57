"""General-purpose ODE solvers from torchdiffeq on the Hamiltonian vector field ``J ∇H``.

None of these is symplectic; they are here as baselines and for non-Hamiltonian comparisons.

Fixed-grid methods (euler, midpoint, heun2, heun3, rk4) take ``step_size`` (default ``dt``). When
the output interval ``save_every · dt`` is a whole number of steps, the solver steps on exactly that
grid (the saved states are solver states, not interpolations); otherwise torchdiffeq's own
``step_size`` grid is used and the saved states are linearly interpolated between solver steps.
Adaptive methods (dopri5, dopri8, bosh3, fehlberg2, adaptive_heun) take ``rtol``, ``atol``,
``max_num_steps`` and ``first_step``.

``adjoint=True`` uses ``torchdiffeq.odeint_adjoint`` (memory independent of the number of steps;
first derivatives only). Its forward pass runs without autograd, so the field enables grad itself
around ``h.grad`` (an autograd-based ∇H, as in an HNN, still works) and detaches the result.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from hamgrad.errors import ConvergenceError, DivergenceError
from hamgrad.integrators.base import Integrator, register_integrator
from hamgrad.integrators.recorder import _format_indices, first_divergence
from hamgrad.validation import check_positive_float, check_positive_int


class HamiltonianField(torch.nn.Module):
    """``f(t, x) = J ∇H(x)`` as a torchdiffeq right-hand side; ``h`` becomes a submodule when it is
    an ``nn.Module`` (so ``odeint_adjoint`` finds its parameters)."""

    def __init__(self, h: Any, enable_grad: bool = False) -> None:
        super().__init__()
        self.h = h
        self.enable_grad = enable_grad

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.enable_grad and not torch.is_grad_enabled():
            with torch.enable_grad():
                g = self.h.grad(x).detach()
        else:
            g = self.h.grad(x)
        n = g.shape[-1] // 2
        return torch.cat((g[..., n:], -g[..., :n]), dim=-1)


class TrackedHamiltonianField(HamiltonianField):
    """The field for adaptive solvers: also remembers the last accepted step (for the error
    message when the step size collapses)."""

    def __init__(self, h: Any, enable_grad: bool = False) -> None:
        super().__init__(h, enable_grad)
        self.last_accepted: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def callback_accept_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        """torchdiffeq's hook after each accepted adaptive step (kept for error messages)."""
        self.last_accepted = (t0, y0, dt)

    def suspects(self) -> tuple[float | None, list[int]]:
        """After a failure: the end time of the last accepted step and the trajectories whose
        field is non-finite at that step's start or a few explicit Euler steps further (where the
        rejected trial steps went)."""
        if self.last_accepted is None:
            return None, []
        t0, y0, dt = self.last_accepted
        with torch.no_grad():
            f0 = self(t0, y0)
            bad = ~torch.isfinite(f0).all(dim=-1)
            for c in (1.0, 2.0, 5.0, 10.0):
                if bool(bad.any()):
                    break
                bad = ~torch.isfinite(self(t0 + c * dt, y0 + c * dt * f0)).all(dim=-1)
        return abs(float(t0 + dt)), torch.nonzero(bad).flatten().tolist()


def _subdivided_grid(substeps: int):
    """A torchdiffeq ``grid_constructor`` placing ``substeps`` equal steps between output times."""

    def grid(func: Any, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        frac = torch.arange(substeps, dtype=t.dtype, device=t.device) / substeps
        inner = t[:-1, None] + (t[1:] - t[:-1])[:, None] * frac[None, :]
        return torch.cat((inner.reshape(-1), t[-1:]))

    return grid


class TorchdiffeqIntegrator(Integrator):
    """Base of the torchdiffeq bridge: ``solver`` is torchdiffeq's method name."""

    symplectic: ClassVar[bool] = False
    symmetric: ClassVar[bool] = False
    separable_only: ClassVar[bool] = False
    solver: ClassVar[str]

    def solver_options(self, dt: float, save_every: int) -> dict[str, Any]:
        raise NotImplementedError

    def solver_tolerances(self) -> dict[str, Any]:
        return {}

    def integrate(
        self, h: Any, x0: torch.Tensor, dt: float, n_steps: int, save_every: int
    ) -> torch.Tensor:
        import torchdiffeq

        adjoint = bool(self.options["adjoint"])
        field = (TrackedHamiltonianField if self.adaptive else HamiltonianField)(h, adjoint)
        n_saves = n_steps // save_every
        t = torch.arange(n_saves + 1, dtype=x0.dtype, device=x0.device) * (save_every * dt)
        solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
        kwargs: dict[str, Any] = {
            "method": self.solver,
            "options": self.solver_options(dt, save_every),
        }
        kwargs.update(self.solver_tolerances())
        if adjoint and not isinstance(h, torch.nn.Module):
            kwargs["adjoint_params"] = ()
        try:
            traj = solve(field, x0, t, **kwargs)
        except (AssertionError, RuntimeError) as err:
            text = str(err)
            if "underflow" in text or "nan" in text.lower():
                t_last, rows = field.suspects()
                where = (
                    ""
                    if t_last is None
                    else f" after t = {t_last:g} (about step {t_last / abs(dt):.0f})"
                )
                who = f" in trajectories {_format_indices(rows)}" if rows else ""
                raise DivergenceError(
                    f"rollout with method {self.name!r} (dt={dt:g}) diverged: the adaptive step "
                    f"size collapsed ({text}){where}{who}; the field is non-finite or too stiff"
                ) from err
            if "max_num_steps" in text:
                raise ConvergenceError(
                    f"adaptive method {self.name!r} exceeded max_num_steps="
                    f"{self.options.get('max_num_steps')}: {text}"
                ) from err
            raise
        traj = traj.transpose(0, 1).contiguous()  # (S+1, B, 2n) -> (B, S+1, 2n)
        first_divergence(traj, self.name, dt, save_every)
        return traj


class FixedGridIntegrator(TorchdiffeqIntegrator):
    adaptive: ClassVar[bool] = False
    option_defaults: ClassVar[dict[str, Any]] = {"step_size": None, "adjoint": False}

    def check_options(self) -> None:
        if self.options["step_size"] is not None:
            self.options["step_size"] = check_positive_float("step_size", self.options["step_size"])

    def solver_options(self, dt: float, save_every: int) -> dict[str, Any]:
        interval = abs(dt) * save_every
        step = self.options["step_size"] or abs(dt)
        substeps = round(interval / step)
        if substeps >= 1 and abs(substeps * step - interval) <= 1e-9 * interval:
            return {"grid_constructor": _subdivided_grid(substeps)}
        return {"step_size": step}


class AdaptiveIntegrator(TorchdiffeqIntegrator):
    adaptive: ClassVar[bool] = True
    option_defaults: ClassVar[dict[str, Any]] = {
        "rtol": 1e-7,
        "atol": 1e-9,
        "max_num_steps": 2**31 - 1,
        "first_step": None,
        "adjoint": False,
    }

    def check_options(self) -> None:
        self.options["rtol"] = check_positive_float("rtol", self.options["rtol"])
        self.options["atol"] = check_positive_float("atol", self.options["atol"])
        self.options["max_num_steps"] = check_positive_int(
            "max_num_steps", self.options["max_num_steps"]
        )
        if self.options["first_step"] is not None:
            self.options["first_step"] = check_positive_float(
                "first_step", self.options["first_step"]
            )

    def solver_options(self, dt: float, save_every: int) -> dict[str, Any]:
        opts: dict[str, Any] = {"max_num_steps": self.options["max_num_steps"]}
        if self.options["first_step"] is not None:
            opts["first_step"] = self.options["first_step"]
        return opts

    def solver_tolerances(self) -> dict[str, Any]:
        return {"rtol": self.options["rtol"], "atol": self.options["atol"]}


@register_integrator("euler")
class Euler(FixedGridIntegrator):
    """torchdiffeq explicit Euler, fixed step (not symplectic)."""

    order = 1
    solver = "euler"
    summary = "torchdiffeq explicit Euler, fixed step"


@register_integrator("midpoint")
class Midpoint(FixedGridIntegrator):
    """torchdiffeq explicit midpoint (RK2), fixed step (not symplectic)."""

    order = 2
    solver = "midpoint"
    summary = "torchdiffeq explicit midpoint (RK2), fixed step"


@register_integrator("heun2")
class Heun2(FixedGridIntegrator):
    """torchdiffeq Heun's RK2, fixed step (not symplectic)."""

    order = 2
    solver = "heun2"
    summary = "torchdiffeq Heun's RK2, fixed step"


@register_integrator("heun3")
class Heun3(FixedGridIntegrator):
    """torchdiffeq Heun's RK3, fixed step (not symplectic)."""

    order = 3
    solver = "heun3"
    summary = "torchdiffeq Heun's RK3, fixed step"


@register_integrator("rk4")
class RK4(FixedGridIntegrator):
    """torchdiffeq classical RK4 (3/8 rule), fixed step (not symplectic)."""

    order = 4
    solver = "rk4"
    summary = "torchdiffeq classical RK4 (3/8 rule), fixed step"


@register_integrator("dopri5")
class Dopri5(AdaptiveIntegrator):
    """torchdiffeq Dormand–Prince 5(4), adaptive step (not symplectic)."""

    order = 5
    solver = "dopri5"
    summary = "torchdiffeq Dormand–Prince 5(4), adaptive step"


@register_integrator("dopri8")
class Dopri8(AdaptiveIntegrator):
    """torchdiffeq Dormand–Prince 8(7), adaptive step (not symplectic)."""

    order = 8
    solver = "dopri8"
    summary = "torchdiffeq Dormand–Prince 8(7), adaptive step"


@register_integrator("bosh3")
class Bosh3(AdaptiveIntegrator):
    """torchdiffeq Bogacki–Shampine 3(2), adaptive step (not symplectic)."""

    order = 3
    solver = "bosh3"
    summary = "torchdiffeq Bogacki–Shampine 3(2), adaptive step"


@register_integrator("fehlberg2")
class Fehlberg2(AdaptiveIntegrator):
    """torchdiffeq Runge–Kutta–Fehlberg 2(1), adaptive step (not symplectic)."""

    order = 2
    solver = "fehlberg2"
    summary = "torchdiffeq Runge–Kutta–Fehlberg 2(1), adaptive step"


@register_integrator("adaptive-heun")
class AdaptiveHeun(AdaptiveIntegrator):
    """torchdiffeq Heun–Euler 2(1), adaptive step (not symplectic)."""

    order = 2
    solver = "adaptive_heun"
    summary = "torchdiffeq Heun–Euler 2(1), adaptive step"
