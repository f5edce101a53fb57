"""The integrators against mathematics (float64): order, symplecticity, reversibility, energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_integrators_systems import (
    DoublePendulum,
    HarmonicOscillator,
    Pendulum,
    pendulum_reference,
)

from hamgrad.integrators import rollout
from hamgrad.testing import (
    assert_convergence_order,
    assert_energy_bounded,
    assert_symplectic,
    energy_error_ratio,
)

F64 = torch.float64
X0 = torch.tensor([[1.0, 0.5], [-0.5, 1.2], [2.0, -0.3]], dtype=F64)
X0_DOUBLE = torch.tensor([[0.8, -0.4, 0.3, 0.5], [0.2, 1.0, -0.6, 0.1]], dtype=F64)
TIGHT = {"tol": 1e-15}  # implicit-midpoint iteration to round-off

# method: (expected order, steps per unit time); steps chosen in the asymptotic regime with
# errors far above round-off (yoshida8 on the oscillator approaches its order slowly: the
# leading error constant is small, so its steps are finer)
ORDERS = {
    "leapfrog": (2, [5, 10, 20, 40]),
    "yoshida4": (4, [5, 10, 20, 40]),
    "yoshida6": (6, [4, 6, 8, 10]),
    "yoshida8": (8, [6, 8, 10, 12]),
    "blanes-moan4": (4, [2, 4, 8, 16]),
    "implicit-midpoint": (2, [5, 10, 20, 40]),
    "symplectic-euler": (1, [25, 50, 100, 200]),
    "euler": (1, [100, 200, 400, 800]),
    "midpoint": (2, [20, 40, 80, 160]),
    "rk4": (4, [10, 20, 40, 80]),
}
OSCILLATOR_STEPS = {"yoshida8": [10, 12, 14, 16]}


def _final_errors(h, x0, t_end, steps_per_unit, method, reference):
    errors, sizes = [], []
    for s in steps_per_unit:
        n = round(s * t_end)
        opts = TIGHT if method == "implicit-midpoint" else {}
        final = rollout(h, x0, t_end / n, n, method=method, **opts)[:, -1]
        errors.append(float((final - reference).abs().max()))
        sizes.append(t_end / n)
    return errors, sizes


@pytest.mark.parametrize("method", list(ORDERS))
def test_convergence_order_on_the_oscillator(method):
    h = HarmonicOscillator(m=2.0, k=3.0)
    order, steps = ORDERS[method]
    t_end = 20.0 if method == "yoshida8" else 4.0
    steps = OSCILLATOR_STEPS.get(method, steps)
    errors, sizes = _final_errors(h, X0, t_end, steps, method, h.exact(X0, t_end))
    assert min(errors) > 1e-12  # above round-off
    assert_convergence_order(errors, sizes, order, tol=0.15)


@pytest.mark.parametrize("method", list(ORDERS))
def test_convergence_order_on_the_pendulum(method):
    h = Pendulum()
    order, steps = ORDERS[method]
    reference = pendulum_reference(h, X0, 4.0)
    errors, sizes = _final_errors(h, X0, 4.0, steps, method, reference)
    assert min(errors) > 1e-10  # far above the reference's own error
    assert_convergence_order(errors, sizes, order, tol=0.15)


# --- symplecticity ---------------------------------------------------------------------------

SYMPLECTIC = ["leapfrog", "symplectic-euler", "yoshida4", "yoshida6", "yoshida8", "blanes-moan4"]


@pytest.mark.parametrize("method", [*SYMPLECTIC, "implicit-midpoint"])
def test_one_step_map_is_symplectic_on_the_pendulum(method):
    opts = TIGHT if method == "implicit-midpoint" else {}
    defect = assert_symplectic((Pendulum(), method, 0.3), X0, tol=1e-12, options=opts)
    assert defect <= 1e-12


def test_implicit_midpoint_is_symplectic_on_the_double_pendulum():
    for solver in ("fixed-point", "newton"):
        step = (DoublePendulum(), "implicit-midpoint", 0.1)
        assert_symplectic(step, X0_DOUBLE, tol=1e-12, options={"solver": solver, **TIGHT})


@pytest.mark.parametrize("method", ["rk4", "midpoint", "dopri5"])
def test_runge_kutta_is_not_symplectic(method):
    """The same check at the same step rejects RK methods: the threshold discriminates."""
    with pytest.raises(AssertionError, match="not symplectic") as info:
        assert_symplectic((Pendulum(), method, 0.3), X0, tol=1e-9)
    assert "max |MᵀΩM − Ω|" in str(info.value)


def test_rk4_symplecticity_defect_is_far_above_round_off():
    with pytest.raises(AssertionError) as info:
        assert_symplectic((Pendulum(), "rk4", 0.3), X0, tol=0.0)
    defect = float(str(info.value).split("= ")[1].split(" >")[0])
    assert defect > 1e-6  # ~1e-5: seven orders of magnitude above the symplectic methods


# --- time reversibility ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "n_steps"),
    [
        ("leapfrog", 10_000),
        ("yoshida4", 2000),
        ("yoshida6", 1000),
        ("yoshida8", 500),
        ("blanes-moan4", 2000),
    ],
)
def test_forward_then_backward_returns_to_the_start(method, n_steps):
    h = Pendulum()
    forward = rollout(h, X0, 0.1, n_steps, method=method, save_every=n_steps)[:, -1]
    back = rollout(h, forward, -0.1, n_steps, method=method, save_every=n_steps)[:, -1]
    assert (forward - X0).abs().max() > 0.1  # it went somewhere
    assert (back - X0).abs().max() < 1e-11


@pytest.mark.parametrize(("h", "x0"), [(Pendulum(), X0), (DoublePendulum(), X0_DOUBLE)])
def test_implicit_midpoint_is_time_reversible(h, x0):
    forward = rollout(h, x0, 0.1, 300, method="implicit-midpoint", save_every=300, **TIGHT)[:, -1]
    back = rollout(h, forward, -0.1, 300, method="implicit-midpoint", save_every=300, **TIGHT)
    assert (back[:, -1] - x0).abs().max() < 1e-11


def test_symplectic_euler_is_not_reversible():
    h = Pendulum()
    forward = rollout(h, X0, 0.1, 100, method="symplectic-euler")[:, -1]
    back = rollout(h, forward, -0.1, 100, method="symplectic-euler")[:, -1]
    assert (back - X0).abs().max() > 1e-3


# --- energy over long rollouts ---------------------------------------------------------------

ENERGY_STEP = {
    "leapfrog": 0.1,
    "yoshida4": 0.3,
    "yoshida6": 0.5,
    "yoshida8": 0.6,
    "blanes-moan4": 0.3,
    "implicit-midpoint": 0.1,
}


def _energies(h, method, dt, n_steps, save_every, **options):
    with torch.no_grad():
        traj = rollout(h, X0, dt, n_steps, method=method, save_every=save_every, **options)
    return h.hamiltonian(traj)


@pytest.mark.parametrize(
    ("method", "n_steps"),
    [
        ("leapfrog", 20_000),
        ("yoshida4", 10_000),
        ("yoshida6", 4000),
        ("yoshida8", 2000),
        ("blanes-moan4", 10_000),
        ("implicit-midpoint", 2000),
    ],
)
def test_energy_error_stays_bounded(method, n_steps):
    energies = _energies(Pendulum(), method, ENERGY_STEP[method], n_steps, 10)
    assert (energies - energies[:, :1]).abs().max() > 1e-9  # a real oscillation, not round-off
    assert_energy_bounded(energies, max_ratio=1.2)


@pytest.mark.slow
@pytest.mark.parametrize("method", list(ENERGY_STEP))
def test_energy_error_stays_bounded_over_1e5_steps(method):
    energies = _energies(Pendulum(), method, ENERGY_STEP[method], 100_000, 100)
    assert (energies - energies[:, :1]).abs().max() > 1e-9
    assert_energy_bounded(energies, max_ratio=1.2)


@pytest.mark.parametrize(
    ("method", "dt", "n_steps", "save_every"), [("rk4", 0.3, 1000, 10), ("dopri5", 0.5, 200, 1)]
)
def test_runge_kutta_energy_drifts(method, dt, n_steps, save_every):
    """The drift is visible: the error keeps growing (ratio of halves ≈ 2, linear drift)."""
    opts = {"rtol": 1e-6, "atol": 1e-8} if method == "dopri5" else {}
    energies = _energies(Pendulum(), method, dt, n_steps, save_every, **opts)
    ratio = energy_error_ratio(energies)
    assert np.all(ratio > 1.6), ratio
    with pytest.raises(AssertionError, match="not bounded"):
        assert_energy_bounded(energies, max_ratio=1.2)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_runge_kutta_energy_drifts_over_1e5_steps(method):
    opts = {"rtol": 1e-6, "atol": 1e-8} if method == "dopri5" else {}
    energies = _energies(Pendulum(), method, 0.1, 100_000, 100, **opts)
    err = (energies - energies[:, :1]).abs()
    assert np.all(energy_error_ratio(energies) > 1.6)
    # monotone growth: every tenth of the run ends with a larger error than the previous one
    marks = err[:, :: err.shape[1] // 10]
    assert bool((marks[:, 2:] > marks[:, 1:-1]).all())
