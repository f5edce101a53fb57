"""Chain of ``n`` masses coupled by linear springs (any ``n``: the high-dimensional case).

``H = Σ_i p_i²/(2 m_i) + Σ_j k_j e_j²/2`` with spring extensions ``e_j``: between neighbours
``q_{i+1} − q_i``, plus, with ``ends="fixed"``, the springs to the walls ``q_1 − 0`` and ``0 − q_n``
(``n + 1`` springs), with ``ends="free"`` none (``n − 1`` springs), with ``ends="periodic"`` the
spring ``q_1 − q_n`` closing a ring (``n`` springs). Separable and linear.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hamgrad.systems.base import System, check_floats, normals, uniforms
from hamgrad.systems.registry import register
from hamgrad.validation import check_choice, check_positive_float, check_positive_int

Tensor = torch.Tensor

RANDOM_RANGE = (0.5, 2.0)  # masses / stiffnesses drawn as U[0.5, 2.0] when "random"
#: largest n for which ∇V is one product with the dense stiffness matrix (banded form above)
DENSE_MAX = 256


@register("oscillator-chain")
class OscillatorChain(System):
    """``n`` coupled masses on a line; ``x = (q_1..q_n, p_1..p_n)``.

    Parameters:
        n: number of masses (``dof = n``).
        masses: a number (all equal), a list of ``n`` numbers, or ``"random"`` (``U[0.5, 2]``).
        stiffness: a number, a list with one entry per spring, or ``"random"`` (``U[0.5, 2]``).
        ends: ``"fixed"`` (walls at both ends), ``"free"`` or ``"periodic"``.
        seed: seed of ``default_rng`` for the random masses (first ``n`` draws) and stiffnesses
            (the next draws).
        amplitude: standard deviation of the initial ``q_i`` and ``p_i``.

    Initial states: ``q_i, p_i ~ N(0, amplitude²)`` independently (default amplitude 0.5).
    """

    separable = True
    description = "n masses coupled by linear springs (fixed, free or periodic ends)"
    defaults = {
        "n": 8,
        "masses": 1.0,
        "stiffness": 1.0,
        "ends": "fixed",
        "seed": 0,
        "amplitude": 0.5,
    }
    presets: dict[str, dict[str, Any]] = {}

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        n = check_positive_int("n", params["n"])
        ends = check_choice("ends", params["ends"], ["fixed", "free", "periodic"])
        seed = check_positive_int("seed", params["seed"], allow_zero=True)
        amplitude = check_positive_float("amplitude", params["amplitude"])
        n_springs = {"fixed": n + 1, "free": n - 1, "periodic": n}[ends]
        rng = np.random.default_rng(seed)
        low, high = RANDOM_RANGE
        draws = low + (high - low) * rng.random(n + n_springs)
        masses, stiffness = params["masses"], params["stiffness"]
        if isinstance(masses, str) and masses == "random":
            self.masses = draws[:n].copy()
        else:
            self.masses = np.asarray(check_floats("masses", _plain(masses), n))
        if isinstance(stiffness, str) and stiffness == "random":
            self.stiffness = draws[n:].copy()
        else:
            self.stiffness = np.asarray(
                check_floats("stiffness", _plain(stiffness), n_springs), dtype=np.float64
            )
        self.dof = n
        self.ends = ends
        self._stiffness_matrix = self._build_stiffness_matrix()
        self._modes: tuple[Tensor, Tensor, Tensor] | None = None  # built on first exact_flow
        return {
            "n": n,
            "masses": _plain(masses),
            "stiffness": _plain(stiffness),
            "ends": ends,
            "seed": seed,
            "amplitude": amplitude,
        }

    def _build_stiffness_matrix(self) -> np.ndarray:
        """The symmetric ``(n, n)`` matrix ``K`` with ``V(q) = qᵀ K q / 2``."""
        n, k = self.dof, self.stiffness
        mat = np.zeros((n, n))
        if self.ends == "fixed":
            pairs = [
                (j - 1, j) for j in range(n + 1)
            ]  # spring j joins mass j-1 and j (walls: -1, n)
        elif self.ends == "free":
            pairs = [(j, j + 1) for j in range(n - 1)]
        else:
            pairs = [(j, (j + 1) % n) for j in range(n)]
        for kj, (a, b) in zip(k, pairs, strict=True):
            # V_j = k_j (q_b - q_a)² / 2 with q = 0 at a wall
            inside = [i for i in (a, b) if 0 <= i < n]
            for i in inside:
                mat[i, i] += kj
            if len(inside) == 2:
                mat[a, b] -= kj
                mat[b, a] -= kj
        return mat

    def _extensions(self, q: Tensor) -> Tensor:
        """Spring extensions ``e_j``: ``(..., n) -> (..., n_springs)``."""
        if self.ends == "fixed":
            return torch.diff(torch.nn.functional.pad(q, (1, 1)), dim=-1)
        if self.ends == "free":
            return torch.diff(q, dim=-1)
        return torch.roll(q, -1, dims=-1) - q

    def potential(self, q: Tensor) -> Tensor:
        """``V(q) = Σ_j k_j e_j² / 2``: ``(..., n) -> (...)``."""
        e = self._extensions(q)
        return 0.5 * (self._constant("stiffness", self.stiffness, q) * e * e).sum(-1)

    def hamiltonian(self, x: Tensor) -> Tensor:
        self._check_state(x)
        n = self.dof
        q, p = x[..., :n], x[..., n:]
        kinetic = 0.5 * (p * p / self._constant("masses", self.masses, x)).sum(-1)
        return kinetic + self.potential(q)

    def grad_q(self, q: Tensor) -> Tensor:
        if self.dof <= DENSE_MAX:  # one matrix product: ∇V = K q
            return q @ self._constant("stiffness_matrix", self._stiffness_matrix, q)
        force = self._constant("stiffness", self.stiffness, q) * self._extensions(q)  # k_j e_j
        if self.ends == "fixed":  # ∂V/∂q_i = k_i e_i − k_{i+1} e_{i+1}  (springs 0..n)
            return force[..., :-1] - force[..., 1:]
        if self.ends == "free":
            return torch.nn.functional.pad(force, (1, 0)) - torch.nn.functional.pad(force, (0, 1))
        return torch.roll(force, 1, dims=-1) - force

    def grad_p(self, p: Tensor) -> Tensor:
        return p / self._constant("masses", self.masses, p)

    def exact_flow(self, x0: Tensor, t: Tensor) -> Tensor:
        """The exact solution ``(B, T, 2n)`` at times ``t`` ``(T,)`` from states ``x0`` ``(B, 2n)``.

        Normal modes: with ``y = M^{1/2} q``, ``π = M^{-1/2} p`` and ``M^{-1/2} K M^{-1/2} =
        U diag(ω²) Uᵀ``, each modal pair ``(a, b) = (Uᵀ y, Uᵀ π)`` rotates:
        ``a(t) = a cos ωt + b sin(ωt)/ω``, ``b(t) = b cos ωt − ω a sin ωt`` (free motion for
        ``ω = 0``).
        """
        self._check_state(x0)
        x0 = x0.to(torch.float64)
        if self._modes is None:
            sqrt_m = np.sqrt(self.masses)
            omega2, vectors = np.linalg.eigh(self._stiffness_matrix / np.outer(sqrt_m, sqrt_m))
            self._modes = (
                torch.from_numpy(np.sqrt(np.clip(omega2, 0.0, None))),
                torch.from_numpy(vectors),
                torch.from_numpy(sqrt_m),
            )
        omega, vectors, sqrt_m = self._modes
        n = self.dof
        a = (x0[:, :n] * sqrt_m) @ vectors  # (B, n)
        b = (x0[:, n:] / sqrt_m) @ vectors
        t = torch.as_tensor(t, dtype=torch.float64).reshape(1, -1, 1)
        wt = omega * t  # (1, T, n)
        cos, sin = torch.cos(wt), torch.sin(wt)
        sin_over_omega = t * torch.sinc(wt / torch.pi)  # sin(ωt)/ω, = t at ω = 0
        a_t = a.unsqueeze(1) * cos + b.unsqueeze(1) * sin_over_omega
        b_t = b.unsqueeze(1) * cos - (omega * a).unsqueeze(1) * sin
        return torch.cat([(a_t @ vectors.T) / sqrt_m, (b_t @ vectors.T) * sqrt_m], dim=-1)

    def sample_initial(self, n: int, seed: int = 0) -> Tensor:
        z = normals(uniforms(n, 2 * self.dof, seed))
        return torch.from_numpy(self.params["amplitude"] * z)

    def max_substep(self, x0: Tensor) -> Tensor:
        """1/64 of the shortest period, bounded by Gershgorin: ω_max² ≤ max_i 2(k_i + k_{i+1})/m_i."""
        k = self.stiffness
        n = self.dof
        attached = np.zeros(n)
        if self.ends == "fixed":
            attached += k[:-1] + k[1:]
        elif self.ends == "free":
            attached[:-1] += k
            attached[1:] += k
        else:
            attached += k + np.roll(k, 1)
        omega = math.sqrt(float(np.max(2.0 * attached / self.masses))) if attached.any() else 0.0
        step = 2.0 * math.pi / omega / 64 if omega > 0 else math.inf
        return torch.full(x0.shape[:-1], step, dtype=torch.float64)


def _plain(value: Any) -> Any:
    """Lists (not tuples/arrays) for JSON; numbers as floats; strings unchanged."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [float(v) for v in value]
    return value
