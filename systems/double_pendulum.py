"""Planar double pendulum (``dof = 2``, not separable).

Angles ``θ_1, θ_2`` from the downward vertical, canonical momenta ``p_1, p_2``; point masses
``m_1, m_2`` on massless rods ``l_1, l_2``. With ``Δ = θ_1 − θ_2`` and
``D = m_1 + m_2 sin²Δ``::

    H = [m_2 l_2² p_1² + (m_1 + m_2) l_1² p_2² − 2 m_2 l_1 l_2 p_1 p_2 cos Δ] / (2 m_2 l_1² l_2² D)
        + (m_1 + m_2) g l_1 (1 − cos θ_1) + m_2 g l_2 (1 − cos θ_2)

(potential measured from the hanging rest state, so ``H ≥ 0`` with ``H = 0`` only at rest).
Defaults ``m = 0.5``, ``l = 1``, ``g = 3`` are the DeepMind suite's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hamgrad.systems.base import System, check_range, uniforms, unit_directions
from hamgrad.systems.registry import register
from hamgrad.validation import check_positive_float

Tensor = torch.Tensor


@register("double-pendulum")
class DoublePendulum(System):
    """Double pendulum; ``x = (θ_1, θ_2, p_1, p_2)``.

    Parameters: masses ``m1``, ``m2``, lengths ``l1``, ``l2``, gravity ``g`` (all > 0) and
    ``radius`` the ``(low, high)`` range of the initial-state radius.

    Initial states: a point uniform in ``[-1, 1]⁴`` rescaled to radius ``r ~ U[radius]`` (default
    ``U[1.3, 2.3]``, the DeepMind suite's range; HNN's rule extended to four coordinates).
    """

    dof = 2
    separable = False
    description = "double pendulum (non-separable, chaotic at high energy)"
    defaults = {"m1": 0.5, "m2": 0.5, "l1": 1.0, "l2": 1.0, "g": 3.0, "radius": (1.3, 2.3)}
    presets: dict[str, dict[str, Any]] = {}

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        out = {k: check_positive_float(k, params[k]) for k in ("m1", "m2", "l1", "l2", "g")}
        out["radius"] = check_range("radius", params["radius"], positive=True)
        m1, m2, l1, l2, g = (out[k] for k in ("m1", "m2", "l1", "l2", "g"))
        self._m1, self._m2 = m1, m2
        self._c11 = m2 * l2 * l2  # coefficients of the kinetic numerator
        self._c22 = (m1 + m2) * l1 * l1
        self._c12 = m2 * l1 * l2
        self._den = 2.0 * m2 * l1 * l1 * l2 * l2
        self._v1 = (m1 + m2) * g * l1
        self._v2 = m2 * g * l2
        self._omega = math.sqrt(g / min(l1, l2))
        return out

    def _kinetic_parts(self, x: Tensor):
        th1, th2, p1, p2 = x.unbind(-1)
        delta = th1 - th2
        c, s = torch.cos(delta), torch.sin(delta)
        d = self._m1 + self._m2 * s * s
        num = self._c11 * p1 * p1 + self._c22 * p2 * p2 - 2.0 * self._c12 * p1 * p2 * c
        return th1, th2, p1, p2, c, s, d, num

    def hamiltonian(self, x: Tensor) -> Tensor:
        self._check_state(x)
        th1, th2, _, _, _, _, d, num = self._kinetic_parts(x)
        potential = self._v1 * (1.0 - torch.cos(th1)) + self._v2 * (1.0 - torch.cos(th2))
        return num / (self._den * d) + potential

    def grad(self, x: Tensor) -> Tensor:
        self._check_state(x)
        th1, th2, p1, p2, c, s, d, num = self._kinetic_parts(x)
        inv = 2.0 / (self._den * d)  # 1 / (m2 l1² l2² D)
        kinetic = 0.5 * num * inv
        dt_ddelta = s * (self._c12 * p1 * p2 * inv - 2.0 * self._m2 * c * kinetic / d)
        return torch.stack(
            [
                dt_ddelta + self._v1 * torch.sin(th1),
                -dt_ddelta + self._v2 * torch.sin(th2),
                (self._c11 * p1 - self._c12 * c * p2) * inv,
                (self._c22 * p2 - self._c12 * c * p1) * inv,
            ],
            dim=-1,
        )

    def sample_initial(self, n: int, seed: int = 0) -> Tensor:
        u = uniforms(n, 5, seed)
        lo, hi = self.params["radius"]
        r = lo + (hi - lo) * u[:, 4:5]
        return torch.from_numpy(np.ascontiguousarray(unit_directions(u[:, :4]) * r))

    def max_substep(self, x0: Tensor) -> Tensor:
        """A step for fixed-step methods: 1/64 of the shortest small-oscillation period scale."""
        return torch.full(x0.shape[:-1], 2.0 * math.pi / self._omega / 64, dtype=torch.float64)
