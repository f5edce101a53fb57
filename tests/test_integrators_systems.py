"""Small Hamiltonian systems for the integrator tests (analytic gradients), checked here.

Imported by the other ``test_integrators*`` modules; kept independent of ``hamgrad.systems`` so the
integrators are tested against mathematics alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp


class HarmonicOscillator:
    """H = p²/(2m) + k q²/2 per coordinate (n independent oscillators), exact solution known."""

    separable = True

    def __init__(self, m: float = 2.0, k: float = 3.0, dof: int = 1) -> None:
        self.m, self.k, self.dof, self.dim = m, k, dof, 2 * dof
        self.omega = math.sqrt(k / m)

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[..., : self.dof], x[..., self.dof :]
        return (p * p / (2 * self.m) + self.k * q * q / 2).sum(-1)

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        return self.k * q

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        return p / self.m

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        n = self.dof
        return torch.cat((self.grad_q(x[..., :n]), self.grad_p(x[..., n:])), -1)

    def exact(self, x0: torch.Tensor, t: float) -> torch.Tensor:
        """The state at time t from x0 (..., 2n)."""
        n, w, m = self.dof, self.omega, self.m
        q0, p0 = x0[..., :n], x0[..., n:]
        c, s = math.cos(w * t), math.sin(w * t)
        return torch.cat((q0 * c + p0 / (m * w) * s, -q0 * m * w * s + p0 * c), -1)


class Pendulum:
    """H = p²/(2 m l²) + m g l (1 − cos q)."""

    dof, dim, separable = 1, 2, True

    def __init__(self, m: float = 0.5, l: float = 1.5, g: float = 3.0) -> None:
        self.inertia, self.mgl = m * l * l, m * g * l

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[..., 0], x[..., 1]
        return p * p / (2 * self.inertia) + self.mgl * (1 - torch.cos(q))

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        return self.mgl * torch.sin(q)

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        return p / self.inertia

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.grad_q(x[..., :1]), self.grad_p(x[..., 1:])), -1)

    def field_numpy(self, t, x):
        """dx/dt for scipy (the reference solutions)."""
        return [x[1] / self.inertia, -self.mgl * math.sin(x[0])]


class DoublePendulum:
    """Planar double pendulum (non-separable): angles q1, q2 from the vertical, conjugate momenta.

    H = [m2 l2² p1² + (m1+m2) l1² p2² − 2 m2 l1 l2 p1 p2 cos(q1−q2)]
        / [2 m2 l1² l2² (m1 + m2 sin²(q1−q2))] − (m1+m2) g l1 cos q1 − m2 g l2 cos q2
    with the analytic gradient below.
    """

    dof, dim, separable = 2, 4, False

    def __init__(self, m1=1.0, m2=0.7, l1=1.0, l2=0.8, g=3.0) -> None:
        self.m1, self.m2, self.l1, self.l2, self.g = m1, m2, l1, l2, g

    def _parts(self, x):
        q1, q2, p1, p2 = x.unbind(-1)
        m1, m2, l1, l2 = self.m1, self.m2, self.l1, self.l2
        d = q1 - q2
        c, s = torch.cos(d), torch.sin(d)
        num = m2 * l2**2 * p1**2 + (m1 + m2) * l1**2 * p2**2 - 2 * m2 * l1 * l2 * p1 * p2 * c
        den = 2 * m2 * l1**2 * l2**2 * (m1 + m2 * s**2)
        return q1, q2, p1, p2, c, s, num, den

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        q1, q2, p1, p2, c, s, num, den = self._parts(x)
        m1, m2, l1, l2, g = self.m1, self.m2, self.l1, self.l2, self.g
        return num / den - (m1 + m2) * g * l1 * torch.cos(q1) - m2 * g * l2 * torch.cos(q2)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        q1, q2, p1, p2, c, s, num, den = self._parts(x)
        m1, m2, l1, l2, g = self.m1, self.m2, self.l1, self.l2, self.g
        dnum_dd = 2 * m2 * l1 * l2 * p1 * p2 * s  # ∂num/∂(q1 − q2)
        dden_dd = 2 * m2 * l1**2 * l2**2 * m2 * 2 * s * c
        dkin_dd = dnum_dd / den - num * dden_dd / den**2
        dq1 = dkin_dd + (m1 + m2) * g * l1 * torch.sin(q1)
        dq2 = -dkin_dd + m2 * g * l2 * torch.sin(q2)
        dp1 = (2 * m2 * l2**2 * p1 - 2 * m2 * l1 * l2 * p2 * c) / den
        dp2 = (2 * (m1 + m2) * l1**2 * p2 - 2 * m2 * l1 * l2 * p1 * c) / den
        return torch.stack((dq1, dq2, dp1, dp2), -1)


class AutogradHamiltonian(torch.nn.Module):
    """An HNN-like learned H: a small tanh MLP, ∇H by autograd (works under no_grad too)."""

    dof, dim, separable = 1, 2, False

    def __init__(self, width: int = 16, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w1 = torch.nn.Parameter(
            0.5 * torch.randn(2, width, generator=gen, dtype=torch.float64)
        )
        self.b1 = torch.nn.Parameter(0.1 * torch.randn(width, generator=gen, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(0.5 * torch.randn(width, generator=gen, dtype=torch.float64))

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w1 + self.b1) @ self.w2 + 0.5 * (x * x).sum(-1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.hamiltonian(xg).sum(), xg, create_graph=create)
        return g if create else g.detach()


class LearnableOscillator(torch.nn.Module):
    """Separable H = p²/(2m) + k q²/2 with trainable (log m, log k): gradients to parameters."""

    dof, dim, separable = 1, 2, True

    def __init__(self, m: float = 2.0, k: float = 3.0) -> None:
        super().__init__()
        self.log_m = torch.nn.Parameter(torch.tensor(math.log(m), dtype=torch.float64))
        self.log_k = torch.nn.Parameter(torch.tensor(math.log(k), dtype=torch.float64))

    def grad_q(self, q):
        return self.log_k.exp() * q

    def grad_p(self, p):
        return p / self.log_m.exp()

    def grad(self, x):
        return torch.cat((self.grad_q(x[..., :1]), self.grad_p(x[..., 1:])), -1)


def autograd_grad(h, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(h.hamiltonian(x).sum(), x)
    return g


@pytest.mark.parametrize(
    "h", [HarmonicOscillator(dof=2), Pendulum(), DoublePendulum()], ids=lambda h: type(h).__name__
)
def test_analytic_gradients_match_autograd(h):
    x = torch.randn(16, h.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(h.grad(x), autograd_grad(h, x), rtol=1e-12, atol=1e-12)


def test_exact_oscillator_solution_satisfies_the_equations():
    h = HarmonicOscillator(m=2.0, k=3.0)
    x0 = torch.tensor([[0.7, -0.4]], dtype=torch.float64)
    eps = 1e-6
    dxdt = (h.exact(x0, 1.0 + eps) - h.exact(x0, 1.0 - eps)) / (2 * eps)
    x = h.exact(x0, 1.0)
    field = torch.cat((h.grad(x)[..., 1:], -h.grad(x)[..., :1]), -1)
    torch.testing.assert_close(dxdt, field, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(h.exact(x0, 0.0), x0)


def pendulum_reference(h: Pendulum, x0: torch.Tensor, t_end: float) -> torch.Tensor:
    """The pendulum flow at ``t_end`` from each row of ``x0`` by scipy DOP853 at round-off tolerance."""
    rows = [
        solve_ivp(
            h.field_numpy, (0.0, t_end), x.tolist(), method="DOP853", rtol=2.3e-14, atol=1e-14
        ).y[:, -1]
        for x in x0
    ]
    return torch.tensor(np.array(rows), dtype=torch.float64)
