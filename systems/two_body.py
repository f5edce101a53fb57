"""Two bodies in the plane under Newtonian gravity (``dof = 4``, separable).

``H = |p_1|²/(2 m_1) + |p_2|²/(2 m_2) − G m_1 m_2 / |q_1 − q_2|``; state
``(x_1, y_1, x_2, y_2, p_x1, p_y1, p_x2, p_y2)``. Defaults: unit masses, ``G = 1`` (HNN's task).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hamgrad.systems.base import check_range, normals, time_grid, uniforms
from hamgrad.systems.kepler import kepler_flow
from hamgrad.systems.nbody import PlanarGravity, pair_force, rotate
from hamgrad.systems.registry import register
from hamgrad.validation import check_finite_float

_HNN_STEPS, _HNN_DT = time_grid(20.0, 50)
_EVAL_STEPS, _EVAL_DT = time_grid(25.0, 500)


@register("two-body")
class TwoBody(PlanarGravity):
    """Planar two-body problem.

    Parameters: masses ``m1``, ``m2`` (> 0), ``G`` (> 0), ``position`` the ``(low, high)`` box of
    body 1's initial coordinates, ``orbit_noise`` the relative spread of the initial speed.

    Initial states (HNN's rule, generalised to any masses): ``s ~ U[position]²`` (default
    ``[0.5, 1.5]²``); the bodies start at ``q_1 = 2 m_2 s / M``, ``q_2 = −2 m_1 s / M``
    (``M = m_1 + m_2``; centre of mass at the origin, separation ``2s``; equal masses give HNN's
    mirror pair ``q_2 = −q_1 = −s``), moving perpendicular to ``s`` (counter-clockwise) with the
    circular-orbit relative speed ``sqrt(G M / (2|s|))`` scaled by ``1 + orbit_noise · N(0, 1)``
    (one factor per orbit), shared as ``v_1 = m_2 v / M``, ``v_2 = −m_1 v / M`` (zero total
    momentum). For unit masses and ``G = 1`` each body's speed is HNN's ``1/(2 sqrt(r))``,
    ``r = |q_1|``. Momenta ``p_i = m_i v_i``.
    """

    n_bodies = 2
    dof = 4
    description = "two bodies in the plane under Newtonian gravity"
    defaults = {"m1": 1.0, "m2": 1.0, "G": 1.0, "position": (0.5, 1.5), "orbit_noise": 0.05}
    presets = {
        "hnn": {
            "params": {"m1": 1.0, "m2": 1.0, "G": 1.0},
            "n_trajectories": 1000,
            "n_steps": _HNN_STEPS,  # t in [0, 20], 50 points
            "dt": _HNN_DT,
            "noise_std": 0.0,
            "splits": {"train": 0.8, "test": 0.2},
            "eval": {
                "n_trajectories": 15,
                "n_steps": _EVAL_STEPS,  # t in [0, 25], 500 points
                "dt": _EVAL_DT,
                "initial": {"kind": "per-seed", "seeds": list(range(15))},
            },
        }
    }

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        out = super()._validate(params)
        out["position"] = check_range("position", params["position"])
        out["orbit_noise"] = check_finite_float("orbit_noise", params["orbit_noise"])
        if out["orbit_noise"] < 0:
            raise ValueError(f"orbit_noise must be >= 0, got {params['orbit_noise']!r}")
        return out

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        fx, fy = pair_force(q.unbind(-1), 0, 1, self._pair_weight[0])
        return torch.stack([fx, fy, -fx, -fy], dim=-1)

    def exact_flow(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The exact solution ``(B, T, 8)`` at times ``t`` ``(T,)`` from states ``x0`` ``(B, 8)``.

        The centre of mass moves uniformly; the relative motion is the Kepler flow
        (:func:`hamgrad.systems.kepler.kepler_flow`), exact up to round-off.
        """
        self._check_state(x0)
        x0 = x0.to(torch.float64)
        t = torch.as_tensor(t, dtype=torch.float64)
        m1, m2 = self.masses
        total = m1 + m2
        q1, q2, p1, p2 = x0[:, 0:2], x0[:, 2:4], x0[:, 4:6], x0[:, 6:8]
        centre = (m1 * q1 + m2 * q2) / total
        momentum = p1 + p2
        r, v = kepler_flow(q1 - q2, p1 / m1 - p2 / m2, self.G * total, t)
        c = centre.unsqueeze(1) + t.reshape(1, -1, 1) * (momentum / total).unsqueeze(1)
        pc = momentum.unsqueeze(1)
        return torch.cat(
            [
                c + (m2 / total) * r,
                c - (m1 / total) * r,
                (m1 / total) * pc + (m1 * m2 / total) * v,
                (m2 / total) * pc - (m1 * m2 / total) * v,
            ],
            dim=-1,
        )

    def sample_initial(self, n: int, seed: int = 0) -> torch.Tensor:
        u = uniforms(n, 3, seed)
        lo, hi = self.params["position"]
        s = lo + (hi - lo) * u[:, :2]
        dist = np.linalg.norm(s, axis=-1, keepdims=True)
        m1, m2 = self.masses
        total = m1 + m2
        speed = np.sqrt(self.G * total / (2.0 * dist))
        speed = speed * (1.0 + self.params["orbit_noise"] * normals(u[:, 2:3]))
        v = rotate(s / dist, math.pi / 2) * speed  # relative velocity v_1 - v_2
        q = np.concatenate([2.0 * m2 / total * s, -2.0 * m1 / total * s], axis=-1)
        p = np.concatenate([m1 * m2 / total * v, -m1 * m2 / total * v], axis=-1)
        return torch.from_numpy(np.concatenate([q, p], axis=-1))
