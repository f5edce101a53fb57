"""Three bodies in the plane under Newtonian gravity (``dof = 6``, separable, chaotic).

``H = Σ_i |p_i|²/(2 m_i) − Σ_{i<j} G m_i m_j / |q_i − q_j|``; state
``(x_1, y_1, x_2, y_2, x_3, y_3, p_x1, ..., p_y3)``. Defaults: unit masses, ``G = 1`` (HNN's task).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hamgrad.systems.base import check_range, time_grid, uniforms, unit_directions
from hamgrad.systems.nbody import PlanarGravity, rotate
from hamgrad.systems.registry import register
from hamgrad.validation import check_finite_float

_HNN_STEPS, _HNN_DT = time_grid(5.0, 20)
_EVAL_STEPS, _EVAL_DT = time_grid(3.0, 500)

# HNN's "circular" speed factor: sqrt(sin(π/3) / (2 cos(π/6)³)) = sqrt(2/3). (The exact circular
# speed of the equilateral configuration is 3^(-1/4) / sqrt(r); HNN's is 7.5 % larger.)
_HNN_SPEED = math.sqrt(math.sin(math.pi / 3) / (2.0 * math.cos(math.pi / 6) ** 3))


@register("three-body")
class ThreeBody(PlanarGravity):
    """Planar three-body problem.

    Parameters: masses ``m1``, ``m2``, ``m3`` (> 0), ``G`` (> 0), ``radius`` the ``(low, high)``
    range of the initial distance of the bodies from the origin, ``velocity_noise`` the relative
    perturbation of each velocity component.

    Initial states (HNN's rule): body 1 at a point uniform in ``[-1, 1]²`` rescaled to radius
    ``r ~ U[radius]`` (default ``U[0.9, 1.2]``), bodies 2 and 3 at its rotations by 120° and 240°;
    body 1's velocity is its position turned by 90° with speed ``sqrt(2/3) · sqrt(G m̄ / r)``
    (``m̄`` the mean mass; HNN's factor for unit masses), bodies 2 and 3 the same turned by 120°
    and 240°; every velocity component is then multiplied by ``1 + velocity_noise · U[−1, 1]``
    (default 0.2). Momenta ``p_i = m_i v_i``.
    """

    n_bodies = 3
    dof = 6
    description = "three bodies in the plane under Newtonian gravity (chaotic)"
    defaults = {
        "m1": 1.0,
        "m2": 1.0,
        "m3": 1.0,
        "G": 1.0,
        "radius": (0.9, 1.2),
        "velocity_noise": 0.2,
    }
    presets = {
        "hnn": {
            "params": {"m1": 1.0, "m2": 1.0, "m3": 1.0, "G": 1.0},
            "n_trajectories": 5000,
            "n_steps": _HNN_STEPS,  # t in [0, 5], 20 points
            "dt": _HNN_DT,
            "noise_std": 0.0,
            "splits": {"train": 0.8, "test": 0.2},
            "eval": {
                "n_trajectories": 15,
                "n_steps": _EVAL_STEPS,  # t in [0, 3], 500 points
                "dt": _EVAL_DT,
                "initial": {"kind": "per-seed", "seeds": list(range(15))},
            },
        }
    }

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        out = super()._validate(params)
        out["radius"] = check_range("radius", params["radius"], positive=True)
        noise = check_finite_float("velocity_noise", params["velocity_noise"])
        if noise < 0:
            raise ValueError(f"velocity_noise must be >= 0, got {params['velocity_noise']!r}")
        out["velocity_noise"] = noise
        return out

    def sample_initial(self, n: int, seed: int = 0) -> torch.Tensor:
        u = uniforms(n, 9, seed)
        lo, hi = self.params["radius"]
        r = lo + (hi - lo) * u[:, 2:3]
        unit = unit_directions(u[:, :2])
        third = 2.0 * math.pi / 3.0
        pos1 = unit * r
        speed = _HNN_SPEED * np.sqrt(self.G * float(np.mean(self.masses)) / r)
        vel1 = rotate(unit, math.pi / 2) * speed
        positions = [rotate(pos1, k * third) for k in range(3)]
        velocities = [rotate(vel1, k * third) for k in range(3)]
        noise = self.params["velocity_noise"]
        momenta = [
            m * v * (1.0 + noise * (2.0 * u[:, 3 + 2 * k : 5 + 2 * k] - 1.0))
            for k, (m, v) in enumerate(zip(self.masses, velocities, strict=True))
        ]
        return torch.from_numpy(np.concatenate(positions + momenta, axis=-1))
