"""Planar gravitational N-body problem: the shared machinery of ``two-body`` and ``three-body``.

``H = Σ_i |p_i|² / (2 m_i) − Σ_{i<j} G m_i m_j / |q_i − q_j|`` with ``q_i, p_i ∈ R²``.
State layout: ``q = (x_1, y_1, x_2, y_2, ...)``, ``p = (p_x1, p_y1, p_x2, p_y2, ...)``, so the
state has ``4N`` coordinates (``dof = 2N``). Separable.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from hamgrad.systems.base import System
from hamgrad.validation import check_positive_float

Tensor = torch.Tensor


class PlanarGravity(System):
    """``N`` point masses in the plane attracting by Newton's law (``n_bodies`` set by subclasses).

    Parameters: the masses ``m1 ... mN`` (> 0) and the gravitational constant ``G`` (> 0).
    """

    n_bodies: int = 0
    separable = True

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        out = dict(params)
        names = [f"m{i + 1}" for i in range(self.n_bodies)]
        self.masses = [check_positive_float(k, params[k]) for k in names]
        for k, v in zip(names, self.masses, strict=True):
            out[k] = v
        self.G = out["G"] = check_positive_float("G", params["G"])
        self.dof = 2 * self.n_bodies
        pairs = list(itertools.combinations(range(self.n_bodies), 2))
        incidence = np.zeros((self.n_bodies, len(pairs)))
        for k, (i, j) in enumerate(pairs):
            incidence[i, k], incidence[j, k] = 1.0, -1.0
        self._pairs = pairs
        self._incidence = incidence  # (N, P): +1 for the first body of a pair, -1 for the second
        self._pair_weight = [self.G * self.masses[i] * self.masses[j] for i, j in pairs]
        self._pair_mu = [self.G * (self.masses[i] + self.masses[j]) for i, j in pairs]
        self._inv_mass = np.repeat(1.0 / np.asarray(self.masses), 2)  # per coordinate
        return out

    # ------------------------------------------------------------- pair geometry
    def _separations(self, q: Tensor) -> Tensor:
        """``q_i − q_j`` for each pair ``i < j``: ``(..., 2N) -> (..., P, 2)``."""
        bodies = q.unflatten(-1, (self.n_bodies, 2))
        return self._constant("incidence_t", self._incidence.T, q) @ bodies

    def potential(self, q: Tensor) -> Tensor:
        """``V(q) = −Σ G m_i m_j / r_ij``: ``(..., 2N) -> (...)``."""
        r = torch.linalg.vector_norm(self._separations(q), dim=-1)
        return -(self._constant("pair_weight", self._pair_weight, q) / r).sum(-1)

    def kinetic(self, p: Tensor) -> Tensor:
        """``T(p) = Σ |p_i|²/(2 m_i)``: ``(..., 2N) -> (...)``."""
        return 0.5 * (p * p * self._constant("inv_mass", self._inv_mass, p)).sum(-1)

    def hamiltonian(self, x: Tensor) -> Tensor:
        self._check_state(x)
        n = self.dof
        return self.kinetic(x[..., n:]) + self.potential(x[..., :n])

    def grad_q(self, q: Tensor) -> Tensor:
        # Column arithmetic, pair by pair: on (B, 2N) batches this beats gathers, matrix products
        # and reductions over the tiny coordinate axis by a wide margin.
        cols = q.unbind(-1)
        grad: list[Tensor | None] = [None] * self.dof
        for (i, j), w in zip(self._pairs, self._pair_weight, strict=True):
            for axis, force in enumerate(pair_force(cols, i, j, w)):
                a, b = 2 * i + axis, 2 * j + axis
                grad[a] = force if grad[a] is None else grad[a] + force
                grad[b] = -force if grad[b] is None else grad[b] - force
        return torch.stack(grad, dim=-1)

    def grad_p(self, p: Tensor) -> Tensor:
        return p * self._constant("inv_mass", self._inv_mass, p)

    # ------------------------------------------------------------- invariants
    def momentum(self, x: Tensor) -> Tensor:
        """Total linear momentum ``(..., 2)``."""
        self._check_state(x)
        return x[..., self.dof :].unflatten(-1, (self.n_bodies, 2)).sum(-2)

    def angular_momentum(self, x: Tensor) -> Tensor:
        """Total angular momentum about the origin ``Σ (x_i p_yi − y_i p_xi)``: ``(...)``."""
        self._check_state(x)
        n = self.dof
        q, p = x[..., :n], x[..., n:]
        return (q[..., 0::2] * p[..., 1::2] - q[..., 1::2] * p[..., 0::2]).sum(-1)

    def max_substep(self, x0: Tensor) -> Tensor:
        """``STEP_FRACTION`` × the shortest pericentre time scale ``sqrt(r_p³ / G(m_i + m_j))``.

        Each pair is treated as an isolated Kepler orbit: its energy and angular momentum give the
        pericentre distance ``r_p`` (floored at 1e-3 of the current separation for head-on
        orbits). Exact for two bodies; for more bodies an estimate that ``simulate`` backs up
        by checking energy conservation.
        """
        x0 = x0.to(torch.float64)
        n = self.dof
        q, p = x0[..., :n], x0[..., n:]
        d = self._separations(q)  # (..., P, 2)
        vel = (p * self._constant("inv_mass", self._inv_mass, p)).unflatten(-1, (self.n_bodies, 2))
        dv = self._constant("incidence_t", self._incidence.T, p) @ vel
        mu = self._constant("pair_mu", self._pair_mu, p)
        r = torch.linalg.vector_norm(d, dim=-1)
        h = d[..., 0] * dv[..., 1] - d[..., 1] * dv[..., 0]
        eps = 0.5 * (dv * dv).sum(-1) - mu / r
        ecc = torch.sqrt(torch.clamp(1.0 + 2.0 * eps * h * h / (mu * mu), min=0.0))
        r_peri = torch.maximum(h * h / (mu * (1.0 + ecc)), 1e-3 * r)
        r_peri = torch.minimum(r_peri, r)
        tau = torch.sqrt(r_peri**3 / mu)
        return self.STEP_FRACTION * tau.min(-1).values

    # Internal ground-truth step as a fraction of the pericentre time scale (8th order).
    STEP_FRACTION: float = 0.05


def pair_force(cols: tuple[Tensor, ...], i: int, j: int, weight: float) -> tuple[Tensor, Tensor]:
    """``w (q_i − q_j) / |q_i − q_j|³`` as its two components (``∂V/∂q_i`` of the pair)."""
    dx = cols[2 * i] - cols[2 * j]
    dy = cols[2 * i + 1] - cols[2 * j + 1]
    inv_r = (dx * dx + dy * dy).rsqrt()
    c = inv_r * inv_r * inv_r
    if weight != 1.0:
        c = c * weight
    return dx * c, dy * c


def rotate(v: np.ndarray, angle: float) -> np.ndarray:
    """Rotate planar vectors ``(..., 2)`` counter-clockwise by ``angle`` (rad)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


__all__ = ["PlanarGravity", "rotate"]
