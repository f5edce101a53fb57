"""hamgrad.testing's integrator checks: each passes on a correct case and fails on a counterexample."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_integrators_systems import HarmonicOscillator, Pendulum

from hamgrad.testing import (
    assert_convergence_order,
    assert_energy_bounded,
    assert_symplectic,
    energy_error_ratio,
    fit_convergence_order,
)

F64 = torch.float64
X = torch.tensor([[0.3, -0.2, 0.5, 0.1], [1.0, 0.4, -0.7, 0.2]], dtype=F64)


# --- assert_symplectic -----------------------------------------------------------------------


def test_symplectic_accepts_a_rotation_and_a_shear():
    theta = 0.7
    c, s = math.cos(theta), math.sin(theta)

    def rotation(x):  # (q_i, p_i) rotated in each plane: symplectic
        q, p = x[:, :2], x[:, 2:]
        return torch.cat((c * q + s * p, -s * q + c * p), -1)

    def kick(x):  # p ← p − ∇V(q), V(q) = Σ cos q + q1 q2: symplectic and nonlinear
        q, p = x[:, :2], x[:, 2:]
        grad_v = -torch.sin(q) + q.flip(-1)
        return torch.cat((q, p - grad_v), -1)

    assert assert_symplectic(rotation, X) <= 1e-15
    assert assert_symplectic(kick, X) <= 1e-15


def test_symplectic_rejects_a_contraction_and_names_the_figure():
    def damped(x):  # p ← 0.9 p: area shrinks
        return torch.cat((x[:, :2], 0.9 * x[:, 2:]), -1)

    with pytest.raises(AssertionError, match=r"not symplectic: max \|MᵀΩM − Ω\| = 1\.000e-01"):
        assert_symplectic(damped, X)


def test_symplectic_rejects_a_non_symplectic_volume_preserving_map():
    def shear_q_by_q(x):  # q1 ← q1 + q2: det = 1 but MᵀΩM ≠ Ω in 4-D
        q, p = x[:, :2], x[:, 2:]
        return torch.cat((torch.stack((q[:, 0] + q[:, 1], q[:, 1]), -1), p), -1)

    with pytest.raises(AssertionError, match="not symplectic"):
        assert_symplectic(shear_q_by_q, X)


def test_symplectic_with_a_method_tuple():
    x = torch.tensor([[0.4, 0.3]], dtype=F64)
    assert assert_symplectic((Pendulum(), "leapfrog", 0.3), x) <= 1e-12
    with pytest.raises(AssertionError):
        assert_symplectic((Pendulum(), "euler", 0.3), x)


def test_symplectic_bad_input():
    with pytest.raises(TypeError, match="step must be"):
        assert_symplectic("leapfrog", X)
    with pytest.raises(ValueError, match="x must be"):
        assert_symplectic(lambda x: x, torch.zeros(2, 3, dtype=F64))
    with pytest.raises(TypeError, match="options"):
        assert_symplectic(lambda x: x, X, options={"tol": 1e-3})


# --- assert_convergence_order ------------------------------------------------------------------


def test_convergence_order_fits_the_slope():
    h = np.array([0.1, 0.05, 0.025, 0.0125])
    assert fit_convergence_order(3.0 * h**4, h) == pytest.approx(4.0, abs=1e-12)
    assert assert_convergence_order(3.0 * h**4 * (1 + 0.1 * h), h, 4) == pytest.approx(4, abs=0.01)


def test_convergence_order_fails_on_the_wrong_order():
    h = np.array([0.1, 0.05, 0.025, 0.0125])
    with pytest.raises(AssertionError, match=r"fitted convergence order 1\.000 differs from 2"):
        assert_convergence_order(h, h, 2)
    with pytest.raises(AssertionError):  # 1.8 is outside 2 ± 0.15
        assert_convergence_order(h**1.8, h, 2, tol=0.15)
    assert_convergence_order(h**1.9, h, 2, tol=0.15)


def test_convergence_order_of_a_real_integrator():
    osc = HarmonicOscillator()
    from hamgrad.integrators import rollout

    x0 = torch.tensor([[1.0, 0.0]], dtype=F64)
    steps = [0.1, 0.05, 0.025]
    errors = [
        float((rollout(osc, x0, dt, round(2 / dt))[:, -1] - osc.exact(x0, 2.0)).abs().max())
        for dt in steps
    ]
    assert_convergence_order(errors, steps, 2)
    with pytest.raises(AssertionError):
        assert_convergence_order(errors, steps, 4)


@pytest.mark.parametrize(
    ("errors", "steps", "pattern"),
    [
        ([1.0], [0.1], "length"),
        ([1.0, 2.0], [0.1], "length"),
        ([1.0, 0.0], [0.1, 0.05], "errors must be finite and > 0"),
        ([1.0, float("nan")], [0.1, 0.05], "errors must be finite"),
        ([1.0, 0.5], [0.1, 0.1], "step_sizes"),
        ([1.0, 0.5], [0.1, -0.05], "step_sizes"),
    ],
)
def test_convergence_order_bad_input(errors, steps, pattern):
    with pytest.raises(ValueError, match=pattern):
        assert_convergence_order(errors, steps, 2)


# --- assert_energy_bounded ---------------------------------------------------------------------


def test_energy_bounded_accepts_an_oscillating_error():
    t = np.linspace(0, 100, 10_001)
    energies = 1.0 + 1e-3 * np.sin(3 * t) ** 2
    assert assert_energy_bounded(energies) == pytest.approx(1.0, abs=1e-3)


def test_energy_bounded_fails_on_a_linear_drift():
    t = np.linspace(0, 100, 10_001)
    energies = np.stack([1.0 + 1e-3 * np.sin(3 * t) ** 2, 1.0 - 1e-4 * t])
    ratio = energy_error_ratio(energies)
    assert ratio[0] == pytest.approx(1.0, abs=1e-3) and ratio[1] == pytest.approx(2.0, abs=1e-3)
    with pytest.raises(AssertionError, match=r"not bounded: .* = 2\.000 > 1\.2 \(trajectory 1\)"):
        assert_energy_bounded(energies)


def test_energy_bounded_from_a_trajectory_and_h():
    from hamgrad.integrators import rollout

    h = Pendulum()
    x0 = torch.tensor([[1.0, 0.2], [0.3, -0.5]], dtype=F64)
    assert_energy_bounded(rollout(h, x0, 0.1, 2000, method="leapfrog"), h)
    with pytest.raises(AssertionError, match="not bounded"):
        assert_energy_bounded(rollout(h, x0, 0.1, 500, method="euler"), h)


def test_energy_bounded_round_off_floor():
    energies = np.array([1.0, 1.0, 1.0 + 1e-16, 1.0, 1.0 + 4e-16, 1.0 + 2e-16])
    with pytest.raises(AssertionError):
        assert_energy_bounded(energies)
    assert assert_energy_bounded(energies, atol=1e-15) == 1.0


def test_energy_bounded_bad_input():
    with pytest.raises(ValueError, match="shape"):
        assert_energy_bounded(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="finite"):
        assert_energy_bounded(np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(TypeError, match="hamiltonian"):
        assert_energy_bounded(np.ones((3, 2)), h=object())
