"""Hénon–Heiles system (``dof = 2``, separable, chaotic at energies near escape).

``H = (p_x² + p_y²)/(2m) + (x² + y²)/2 + λ (x² y − y³/3)``. For ``λ > 0`` the motion stays bounded
below the escape energy ``E_esc = 1/(6λ²)``; the default ``λ = 1`` is the classical system.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hamgrad.systems.base import System, check_range, uniforms
from hamgrad.systems.registry import register
from hamgrad.validation import check_positive_float

Tensor = torch.Tensor


@register("henon-heiles")
class HenonHeiles(System):
    """Hénon–Heiles; ``x = (x, y, p_x, p_y)``.

    Parameters: ``m`` mass (> 0), ``coupling`` λ (> 0), ``energy_fraction`` the ``(low, high)``
    range of the initial energy as a fraction of the escape energy ``1/(6λ²)`` (``0 < low <= high
    < 1``; default ``(0.3, 0.9)``, regular to strongly chaotic).

    Initial states: energy ``E = f / (6λ²)`` with ``f ~ U[energy_fraction]``; a share
    ``u ~ U[0, 1)`` of it is potential: the position lies on the ray at angle ``φ ~ U[0, 2π)``
    where ``V = uE`` inside the bounded well (``V = r²/2 + λ r³ sin(3φ)/3`` along the ray, solved by
    bisection); the momentum has magnitude ``sqrt(2m(1 − u)E)`` and direction ``ψ ~ U[0, 2π)``.
    """

    dof = 2
    separable = True
    description = "Hénon–Heiles potential (chaotic near the escape energy)"
    defaults = {"m": 1.0, "coupling": 1.0, "energy_fraction": (0.3, 0.9)}
    presets: dict[str, dict[str, Any]] = {}

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        self.m = check_positive_float("m", params["m"])
        self.coupling = check_positive_float("coupling", params["coupling"])
        frac = check_range("energy_fraction", params["energy_fraction"], positive=True)
        if frac[1] >= 1.0:
            raise ValueError(
                f"energy_fraction must lie in (0, 1) (below the escape energy), got {frac!r}"
            )
        self.escape_energy = 1.0 / (6.0 * self.coupling**2)
        return {"m": self.m, "coupling": self.coupling, "energy_fraction": frac}

    def hamiltonian(self, x: Tensor) -> Tensor:
        self._check_state(x)
        qx, qy, px, py = x.unbind(-1)
        kinetic = (px * px + py * py) / (2.0 * self.m)
        potential = 0.5 * (qx * qx + qy * qy) + self.coupling * (qx * qx * qy - qy**3 / 3.0)
        return kinetic + potential

    def grad_q(self, q: Tensor) -> Tensor:
        qx, qy = q[..., 0:1], q[..., 1:2]
        lam = self.coupling
        return torch.cat([qx * (1.0 + 2.0 * lam * qy), qy + lam * (qx * qx - qy * qy)], dim=-1)

    def grad_p(self, p: Tensor) -> Tensor:
        return p / self.m

    def sample_initial(self, n: int, seed: int = 0) -> Tensor:
        u = uniforms(n, 4, seed)
        lo, hi = self.params["energy_fraction"]
        energy = (lo + (hi - lo) * u[:, 0]) * self.escape_energy
        phi, psi = 2.0 * math.pi * u[:, 1], 2.0 * math.pi * u[:, 3]
        target = u[:, 2] * energy  # potential energy of the start
        a = self.coupling * np.sin(3.0 * phi) / 3.0  # V = r²/2 + a r³ along the ray
        # Bracket: V is increasing on [0, r*) with r* = 1/(3|a|) when a < 0, V(r*) >= E_esc > target.
        with np.errstate(divide="ignore"):
            r_hi = np.where(a < 0, 1.0 / (3.0 * np.abs(a)), np.sqrt(2.0 * target))
        r_hi = np.minimum(r_hi, np.sqrt(2.0 * target) * 3.0 + 1.0)
        r_lo = np.zeros_like(r_hi)
        for _ in range(80):
            mid = 0.5 * (r_lo + r_hi)
            below = 0.5 * mid * mid + a * mid**3 < target
            r_lo = np.where(below, mid, r_lo)
            r_hi = np.where(below, r_hi, mid)
        r = 0.5 * (r_lo + r_hi)
        speed = np.sqrt(2.0 * self.m * np.maximum(energy - target, 0.0))
        return torch.from_numpy(
            np.stack(
                [r * np.cos(phi), r * np.sin(phi), speed * np.cos(psi), speed * np.sin(psi)],
                axis=-1,
            )
        )

    def max_substep(self, x0: Tensor) -> Tensor:
        period = 2.0 * math.pi * math.sqrt(self.m)  # harmonic part's period
        return torch.full(x0.shape[:-1], period / 64, dtype=torch.float64)
