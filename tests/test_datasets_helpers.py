"""Shared pieces of the dataset tests (no tests here): a small analytic system and stand-in solvers.

``Oscillators`` is H = ½ Σ (p_i² + ω_i² q_i²) with ω_i = omega·(i+1); ``exact_simulate`` is its
closed-form flow, so stored arrays can be checked against mathematics at round-off.
``coupled_simulate`` deliberately lets every trajectory depend on the others of its batch (as a
ground truth with shared step-size decisions does), to test that chunking never changes the data.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import hamgrad.datasets.generation as generation


class Oscillators:
    """n independent harmonic oscillators (not registered: passed to ``generate`` as an instance)."""

    kind: ClassVar[str] = "dynamics"
    name: ClassVar[str] = "test-oscillators"
    separable: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"n": 2, "omega": 1.0}
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {
            "params": {"n": 2, "omega": 1.0},
            "n_trajectories": 6,
            "n_steps": 4,
            "dt": 0.25,
            "noise_std": 0.0,
            "splits": {"train": 0.5, "test": 0.5},
        }
    }

    def __init__(self, n: int = 2, omega: float = 1.0) -> None:
        if omega <= 0:
            raise ValueError(f"omega must be > 0, got {omega}")
        self.dof = int(n)
        self.dim = 2 * self.dof
        self.params = {"n": int(n), "omega": float(omega)}
        self.w = torch.tensor([omega * (i + 1) for i in range(self.dof)], dtype=torch.float64)

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[..., : self.dof], x[..., self.dof :]
        return 0.5 * (p**2 + (self.w * q) ** 2).sum(-1)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        q, p = x[..., : self.dof], x[..., self.dof :]
        return torch.cat([self.w**2 * q, p], dim=-1)

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        g = self.grad(x)
        return torch.cat([g[..., self.dof :], -g[..., : self.dof]], dim=-1)

    def sample_initial(self, n: int, seed: int = 0) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        return torch.from_numpy(rng.uniform(-1.0, 1.0, size=(n, self.dim)))


def exact_flow(system: Oscillators, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Closed-form states ``(B, len(t), 2n)`` of the oscillators from ``x0`` ``(B, 2n)``."""
    n, w = system.dof, system.w
    q0, p0 = x0[:, None, :n], x0[:, None, n:]
    wt = w * t[None, :, None]
    q = q0 * torch.cos(wt) + p0 / w * torch.sin(wt)
    p = -w * q0 * torch.sin(wt) + p0 * torch.cos(wt)
    return torch.cat([q, p], dim=-1)


def exact_simulate(system: Any, x0: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
    """Stand-in ground truth: the exact flow on the grid ``k·dt``."""
    t = dt * torch.arange(n_steps + 1, dtype=torch.float64)
    return exact_flow(system, torch.as_tensor(x0, dtype=torch.float64), t)


def coupled_simulate(system: Any, x0: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
    """Exact flow plus a perturbation depending on the whole batch (its mean initial state)."""
    traj = exact_simulate(system, x0, dt, n_steps)
    return traj + 1e-3 * x0.mean(dim=0)


class Counter:
    """Wraps a stand-in solver, counting trajectories; raises KeyboardInterrupt after ``stop_after``."""

    def __init__(self, fn: Any, stop_after: int | None = None) -> None:
        self.fn, self.stop_after, self.trajectories, self.calls = fn, stop_after, 0, 0

    def __call__(self, system: Any, x0: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.trajectories += int(x0.shape[0])
        return self.fn(system, x0, dt, n_steps)


@pytest.fixture
def exact(monkeypatch):
    """Use the exact stand-in as the ground truth."""
    monkeypatch.setattr(generation, "ground_truth_simulate", exact_simulate)


def use_solver(monkeypatch, fn: Any) -> None:
    monkeypatch.setattr(generation, "ground_truth_simulate", fn)


ARRAYS = ("q", "p", "dqdt", "dpdt", "energy")


def same_arrays(a: Any, b: Any) -> bool:
    """Two Trajectories with byte-identical arrays."""
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ARRAYS) and np.array_equal(
        a.t, b.t
    )
