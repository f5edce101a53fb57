"""Ideal pendulum: ``H = p²/(2 m l²) + m g l (1 − cos q)`` (one degree of freedom, separable).

``q`` is the angle from the downward vertical (rad) and ``p = m l² dq/dt`` the angular momentum.
The defaults ``m = 0.5``, ``l = 1``, ``g = 6`` give ``m l² = 1/2`` and ``m g l = 3``, i.e.
``H = 3(1 − cos q) + p²``: exactly the pendulum of HNN's data generator. (The DeepMind suite's
``m = 0.5, g = 3, l = 1`` is ``H = 1.5(1 − cos q) + p²``: pass ``g=3.0`` for it.)
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


@register("pendulum")
class Pendulum(System):
    """Pendulum ``H = p²/(2 m l²) + m g l (1 − cos q)``.

    Parameters: ``m`` bob mass (> 0), ``l`` rod length (> 0), ``g`` gravity (> 0), ``radius`` the
    ``(low, high)`` range of the initial-state radius ``|x0|`` in the (q, p) plane.

    Initial states (HNN's rule): a point uniform in ``[-1, 1]²`` rescaled to radius
    ``r ~ U[radius]`` (default ``U[1.3, 2.3]``).
    """

    dof = 1
    separable = True
    description = "ideal pendulum, H = p²/(2 m l²) + m g l (1 − cos q)"
    defaults = {"m": 0.5, "l": 1.0, "g": 6.0, "radius": (1.3, 2.3)}
    presets = {"hnn": hnn_oscillator_preset({"m": 0.5, "l": 1.0, "g": 6.0}, n_points=45)}

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        self.m = check_positive_float("m", params["m"])
        self.l = check_positive_float("l", params["l"])
        self.g = check_positive_float("g", params["g"])
        radius = check_range("radius", params["radius"], positive=True)
        self._inertia = self.m * self.l * self.l
        self._mgl = self.m * self.g * self.l
        return {"m": self.m, "l": self.l, "g": self.g, "radius": radius}

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        self._check_state(x)
        q, p = x[..., 0], x[..., 1]
        return p * p / (2.0 * self._inertia) + self._mgl * (1.0 - torch.cos(q))

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        return self._mgl * torch.sin(q)

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        return p / self._inertia

    def sample_initial(self, n: int, seed: int = 0) -> torch.Tensor:
        u = uniforms(n, 3, seed)
        lo, hi = self.params["radius"]
        r = lo + (hi - lo) * u[:, 2:3]
        return torch.from_numpy(np.ascontiguousarray(unit_directions(u[:, :2]) * r))

    def max_substep(self, x0: torch.Tensor) -> torch.Tensor:
        period = 2.0 * math.pi * math.sqrt(self.l / self.g)  # small-oscillation period
        return torch.full(x0.shape[:-1], _STEP_FRACTION * period, dtype=torch.float64)


# Internal ground-truth step as a fraction of the small-oscillation period (8th-order composition).
_STEP_FRACTION = 1.0 / 100
