"""Mass on a linear spring: ``H = p²/(2m) + k q²/2`` (one degree of freedom, separable).

The defaults ``k = 2``, ``m = 0.5`` give ``H = q² + p²``, the "ideal mass-spring" of HNN
(Greydanus et al. 2019) and of the DeepMind Hamiltonian dynamics suite.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hamgrad.systems.base import (
    System,
    check_range,
    hnn_oscillator_preset,
    uniforms,
    unit_directions,
)
from hamgrad.systems.registry import register
from hamgrad.validation import check_positive_float


@register("spring-mass")
class SpringMass(System):
    """Harmonic oscillator ``H = p²/(2m) + k q²/2``.

    Parameters: ``k`` spring stiffness (> 0), ``m`` mass (> 0), ``radius`` the ``(low, high)``
    range of the initial-state radius ``|x0|`` in the (q, p) plane.

    Initial states (HNN's rule): a point uniform in ``[-1, 1]²`` rescaled to radius
    ``r ~ U[radius]`` (default ``U[0.1, 1.0]``).
    """

    dof = 1
    separable = True
    description = "mass on a linear spring, H = p²/(2m) + k q²/2"
    defaults = {"k": 2.0, "m": 0.5, "radius": (0.1, 1.0)}
    presets = {"hnn": hnn_oscillator_preset({"k": 2.0, "m": 0.5}, n_points=30)}

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        self.k = check_positive_float("k", params["k"])
        self.m = check_positive_float("m", params["m"])
        radius = check_range("radius", params["radius"], positive=True)
        return {"k": self.k, "m": self.m, "radius": radius}

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        self._check_state(x)
        q, p = x[..., 0], x[..., 1]
        return p * p / (2.0 * self.m) + 0.5 * self.k * q * q

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        return self.k * q

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        return p / self.m

    def exact_flow(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The exact solution ``(B, T, 2)`` at times ``t`` ``(T,)`` from states ``x0`` ``(B, 2)``:
        ``q = q_0 cos ωt + p_0 sin ωt/(mω)``, ``p = p_0 cos ωt − mω q_0 sin ωt``, ``ω = sqrt(k/m)``."""
        self._check_state(x0)
        x0 = x0.to(torch.float64)
        omega = math.sqrt(self.k / self.m)
        wt = omega * torch.as_tensor(t, dtype=torch.float64).reshape(1, -1)
        c, s = torch.cos(wt), torch.sin(wt)
        q0, p0 = x0[:, 0:1], x0[:, 1:2]
        mw = self.m * omega
        return torch.stack([q0 * c + p0 * s / mw, p0 * c - mw * q0 * s], dim=-1)

    def sample_initial(self, n: int, seed: int = 0) -> torch.Tensor:
        u = uniforms(n, 3, seed)
        lo, hi = self.params["radius"]
        r = lo + (hi - lo) * u[:, 2:3]
        return torch.from_numpy(np.ascontiguousarray(unit_directions(u[:, :2]) * r))

    def max_substep(self, x0: torch.Tensor) -> torch.Tensor:
        period = 2.0 * math.pi * math.sqrt(self.m / self.k)
        return torch.full(x0.shape[:-1], _STEP_FRACTION * period, dtype=torch.float64)


# Internal ground-truth step as a fraction of the oscillation period (8th-order composition).
_STEP_FRACTION = 1.0 / 64
