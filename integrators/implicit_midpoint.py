"""Implicit midpoint rule: symplectic and symmetric for any Hamiltonian (order 2).

One step solves for the midpoint ``y = (x_k + x_{k+1})/2``::

    y = x_k + (dt/2) · J ∇H(y),        x_{k+1} = 2y − x_k

by fixed-point iteration (``solver="fixed-point"``, converges when dt/2 · Lip(J∇H) < 1) or Newton's
method (``solver="newton"``, Jacobian of J∇H by autograd: 2n backward passes per iteration). The
iteration stops when every coordinate of every trajectory satisfies ``|Δy| ≤ tol · max(1, |y|)``; a
step that does not get there within ``max_iter`` iterations raises ``ConvergenceError`` naming the step and the
trajectories, and a non-finite iterate raises ``DivergenceError``.

Gradients (implicit function theorem): the solve runs without autograd; then one differentiable
update ``y = x_k + (dt/2) f(y*)`` is recorded at the converged ``y*`` and a hook on ``y`` replaces
its incoming gradient ``g`` by ``w = (I − (dt/2) ∂f/∂y)^{-T} g`` (fixed-point iteration on the
vector-Jacobian products, or a direct solve with the Jacobian for Newton). This gives the exact
derivative of the converged map with respect to ``x_k`` and to the parameters of H, at the cost of
a few vector-Jacobian products per step, without recording the iterations.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from hamgrad.errors import ConvergenceError
from hamgrad.integrators.base import Integrator, register_integrator
from hamgrad.integrators.field import has_trainable_tensors, vector_field
from hamgrad.integrators.recorder import TrajectoryRecorder, _format_indices, divergence_error
from hamgrad.validation import check_choice, check_positive_float, check_positive_int

#: default iteration tolerance per dtype (relative to max(1, ‖y‖_∞))
DEFAULT_TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def _jacobian(f: torch.Tensor, y: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """Batched Jacobian ∂f/∂y, (B, d) × (B, d) -> (B, d, d), rows by vector-Jacobian products."""
    d = f.shape[-1]
    rows = []
    for i in range(d):
        v = torch.zeros_like(f)
        v[:, i] = 1
        (row,) = torch.autograd.grad(f, y, v, retain_graph=True, create_graph=create_graph)
        rows.append(row)
    return torch.stack(rows, dim=1)


@register_integrator("implicit-midpoint")
class ImplicitMidpoint(Integrator):
    """Implicit midpoint rule for any H (options: ``tol``, ``max_iter``, ``solver``)."""

    order: ClassVar[int] = 2
    symplectic: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True
    separable_only: ClassVar[bool] = False
    summary: ClassVar[str] = "implicit midpoint, fixed-point or Newton solve, any H"
    option_defaults: ClassVar[dict[str, Any]] = {
        "tol": None,
        "max_iter": 100,
        "solver": "fixed-point",
    }

    def check_options(self) -> None:
        if self.options["tol"] is not None:
            self.options["tol"] = check_positive_float("tol", self.options["tol"])
        self.options["max_iter"] = check_positive_int("max_iter", self.options["max_iter"])
        check_choice("solver", self.options["solver"], ["fixed-point", "newton"])

    # -- the nonlinear solve (no autograd) -----------------------------------------------------
    def _solve(
        self, h: Any, x: torch.Tensor, y: torch.Tensor, half: float, tol: float, step: int
    ) -> torch.Tensor:
        newton = self.options["solver"] == "newton"
        for _ in range(self.options["max_iter"]):
            if newton:
                with torch.enable_grad():
                    yv = y.detach().requires_grad_(True)
                    f = vector_field(h, yv)
                    jac = _jacobian(f, yv)
                residual = y - torch.add(x, f.detach(), alpha=half)
                eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
                delta = torch.linalg.solve(eye - half * jac, residual.unsqueeze(-1)).squeeze(-1)
                y_new = y - delta
            else:
                y_new = torch.add(x, vector_field(h, y), alpha=half)
                delta = y_new - y
            ok = delta.abs() <= tol * y_new.abs().clamp_min(1.0)
            y = y_new
            if bool(ok.all()):
                return y
        finite = torch.isfinite(y).all(dim=-1)
        if not bool(finite.all()):
            raise divergence_error(self.name, 2 * half, step, 1, ~finite)
        bad = torch.nonzero(~ok.all(dim=-1)).flatten().tolist()
        raise ConvergenceError(
            f"implicit-midpoint ({self.options['solver']}) did not converge at step {step} "
            f"within max_iter={self.options['max_iter']} iterations (tol={tol:g}) for "
            f"trajectories {_format_indices(bad)}; reduce dt, raise max_iter or use "
            f"solver='newton'"
        )

    # -- the differentiable update with implicit-function gradients ----------------------------
    def _attach_gradient(
        self, h: Any, x: torch.Tensor, y_star: torch.Tensor, half: float, tol: float, step: int
    ) -> torch.Tensor:
        y0 = y_star.detach().requires_grad_(True)
        f0 = vector_field(h, y0)
        y = torch.add(x, f0, alpha=half)
        newton = self.options["solver"] == "newton"
        max_iter = self.options["max_iter"]
        name = self.name

        def implicit_gradient(g: torch.Tensor) -> torch.Tensor:
            create = torch.is_grad_enabled()
            if newton:
                jac = _jacobian(f0, y0, create_graph=create)
                eye = torch.eye(g.shape[-1], dtype=g.dtype, device=g.device)
                a = eye - half * jac.transpose(-1, -2)
                return torch.linalg.solve(a, g.unsqueeze(-1)).squeeze(-1)
            w = g
            for _ in range(max_iter):
                (vjp,) = torch.autograd.grad(f0, y0, w, retain_graph=True, create_graph=create)
                w_new = torch.add(g, vjp, alpha=half)
                delta = (w_new - w).abs().amax(dim=-1)
                ok = delta <= tol * w_new.abs().amax(dim=-1)
                w = w_new
                if bool(ok.all()):
                    return w
            bad = torch.nonzero(~ok).flatten().tolist()
            raise ConvergenceError(
                f"{name}: the implicit-function gradient iteration did not converge at step "
                f"{step} within max_iter={max_iter} (tol={tol:g}) for trajectories "
                f"{_format_indices(bad)}; reduce dt or use solver='newton'"
            )

        y.register_hook(implicit_gradient)
        return y

    def integrate(
        self, h: Any, x0: torch.Tensor, dt: float, n_steps: int, save_every: int
    ) -> torch.Tensor:
        tol = self.options["tol"] or DEFAULT_TOL.get(x0.dtype, 1e-6)
        need_grad = torch.is_grad_enabled() and (x0.requires_grad or has_trainable_tensors(h))
        half = 0.5 * dt
        n = x0.shape[-1] // 2
        recorder = TrajectoryRecorder(x0, n_steps // save_every, save_every, dt, self.name)
        x = x0
        increment = None
        for step in range(1, n_steps + 1):
            with torch.no_grad():
                xd = x.detach()
                if increment is None:  # explicit Euler half step as the first guess
                    guess = torch.add(xd, vector_field(h, xd), alpha=half)
                else:  # the previous step's increment: an O(dt^2)-accurate guess
                    guess = torch.add(xd, increment, alpha=0.5)
                y = self._solve(h, xd, guess, half, tol, step)
            if need_grad:
                y = self._attach_gradient(h, x, y, half, tol, step)
            x_new = torch.sub(2 * y, x)
            increment = (x_new - x).detach()
            x = x_new
            if step % save_every == 0:
                recorder.save(step // save_every, x[..., :n], x[..., n:])
        return recorder.result()
