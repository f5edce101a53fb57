"""hamgrad.systems.ground_truth: accuracy of simulate() against mathematics and scipy's DOP853."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from hamgrad.errors import ConvergenceError
from hamgrad.systems import get_system, simulate
from hamgrad.systems.ground_truth import describe, relative_energy_error
from hamgrad.systems.kepler import kepler_flow, stumpff

# name -> (dt, n_steps) of the accuracy checks: the HNN grids where a preset exists
GRIDS = {
    "spring-mass": (3 / 29, 29),
    "pendulum": (3 / 44, 44),
    "two-body": (20 / 49, 49),
    "three-body": (5 / 19, 19),
    "double-pendulum": (0.1, 30),
    "henon-heiles": (0.1, 100),
    "oscillator-chain": (0.1, 100),
}


def dop853(system, x0: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
    """scipy's DOP853 at rtol = atol = 1e-12, one trajectory at a time: (B, T+1, 2n)."""

    def rhs(_t, y):
        return system.vector_field(torch.from_numpy(y)).numpy()

    t = np.arange(n_steps + 1) * dt
    out = []
    for y0 in x0.numpy():
        sol = solve_ivp(rhs, (0.0, t[-1]), y0, method="DOP853", rtol=1e-12, atol=1e-12, t_eval=t)
        assert sol.success
        out.append(sol.y.T)
    return torch.from_numpy(np.stack(out))


# ----------------------------------------------------------------------- energy conservation
@pytest.mark.parametrize("name", sorted(GRIDS))
def test_default_ground_truth_conserves_energy(name):
    """The default method and substeps meet 1e-10 on the default distribution without refining
    (three-body, whose close encounters need the refinement, with it)."""
    system = get_system(name)
    dt, n_steps = GRIDS[name]
    count = 4 if name == "double-pendulum" else 200
    x0 = system.sample_initial(count, seed=0)
    traj = simulate(system, x0, dt, n_steps, check=name == "three-body")
    assert float(relative_energy_error(system, traj).max()) <= 1e-10
    if "body" in name:
        ang = system.angular_momentum(traj)
        assert float(((ang - ang[:, :1]).abs() / ang[:, :1].abs()).max()) <= 1e-10
        mom = system.momentum(traj)
        assert float((mom - mom[:, :1]).abs().max()) <= 1e-12


@pytest.mark.parametrize("name", ["spring-mass", "two-body", "oscillator-chain"])
def test_numerical_path_of_closed_form_systems_conserves_energy(name):
    """Systems with a closed form also meet 1e-10 with the composition and default substeps."""
    system = get_system(name)
    dt, n_steps = GRIDS[name]
    x0 = system.sample_initial(200, seed=1)
    traj = simulate(system, x0, dt, n_steps, method="yoshida8", check=False)
    assert float(relative_energy_error(system, traj).max()) <= 1e-10
    exact = simulate(system, x0, dt, n_steps)
    assert float((traj - exact).abs().max()) <= 1e-9


def test_hnn_two_body_dataset_conserves_energy_and_angular_momentum():
    system = get_system("two-body")
    preset = system.preset("hnn")
    x0 = system.sample_initial(preset["n_trajectories"], seed=0)
    traj = simulate(system, x0, preset["dt"], preset["n_steps"])
    assert traj.shape == (1000, 50, 8)
    assert float(relative_energy_error(system, traj).max()) <= 1e-10
    ang = system.angular_momentum(traj)
    assert float(((ang - ang[:, :1]).abs() / ang[:, :1].abs()).max()) <= 1e-10


# ----------------------------------------------------------------------- agreement with DOP853
@pytest.mark.parametrize("name", sorted(GRIDS))
def test_ground_truth_agrees_with_dop853(name):
    system = get_system(name)
    dt, n_steps = GRIDS[name]
    x0 = system.sample_initial(3, seed=2)
    ours = simulate(system, x0, dt, n_steps)
    ref = dop853(system, x0, dt, n_steps)
    assert float((ours - ref).abs().max()) <= 1e-8


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("two-body", {"m1": 0.4, "m2": 2.5, "G": 0.8}),
        ("three-body", {"m1": 0.7, "m2": 1.3, "m3": 2.1}),
        ("pendulum", {"m": 1.7, "l": 0.6, "g": 9.81}),
        ("oscillator-chain", {"n": 5, "ends": "free", "masses": "random", "stiffness": "random"}),
    ],
)
def test_ground_truth_with_non_unit_masses_agrees_with_dop853(name, params):
    system = get_system(name, **params)
    x0 = system.sample_initial(2, seed=3)
    ours = simulate(system, x0, 0.1, 30)
    assert float((ours - dop853(system, x0, 0.1, 30)).abs().max()) <= 1e-8


def test_refined_three_body_encounters_agree_with_dop853():
    """The trajectories whose default substeps miss the energy bound (close encounters) are the
    ones refined; after refinement they agree with DOP853."""
    system = get_system("three-body")
    dt, n_steps = GRIDS["three-body"]
    x0 = system.sample_initial(200, seed=0)
    rough = simulate(system, x0, dt, n_steps, check=False)
    err = relative_energy_error(system, rough).amax(-1)
    hard = torch.argsort(err, descending=True)[:2]
    assert float(err[hard].min()) > 1e-8  # these really need the refinement
    ours = simulate(system, x0[hard], dt, n_steps)
    assert float(relative_energy_error(system, ours).max()) <= 1e-10
    assert float((ours - dop853(system, x0[hard], dt, n_steps)).abs().max()) <= 1e-8


# ----------------------------------------------------------------------- closed forms
def test_stumpff_functions():
    z = torch.tensor([0.0, math.pi**2, -1.0, 1.0, 1 - 1e-12, -4.0], dtype=torch.float64)
    c, s = stumpff(z)
    expected_c = [0.5, 2 / math.pi**2, math.cosh(1) - 1, 1 - math.cos(1), 1 - math.cos(1)]
    expected_c.append((math.cosh(2) - 1) / 4)
    expected_s = [1 / 6, 1 / math.pi**2, math.sinh(1) - 1, 1 - math.sin(1), 1 - math.sin(1)]
    expected_s.append((math.sinh(2) - 2) / 8)
    assert torch.allclose(c, torch.tensor(expected_c, dtype=torch.float64), rtol=1e-14)
    assert torch.allclose(s, torch.tensor(expected_s, dtype=torch.float64), rtol=1e-14)


@pytest.mark.parametrize("speed", [0.6, 1.0, 1.9])  # bound (elliptic), bound, unbound
def test_kepler_flow_matches_a_fine_integration_forward_and_backward(speed):
    mu = 2.0
    r0 = torch.tensor([[1.0, 0.2]], dtype=torch.float64)
    v0 = torch.tensor([[0.1, speed]], dtype=torch.float64)
    t = torch.linspace(-6.0, 6.0, 13, dtype=torch.float64)
    r, v = kepler_flow(r0, v0, mu, t)

    def rhs(_t, y):
        return np.concatenate([y[2:], -mu * y[:2] / np.linalg.norm(y[:2]) ** 3])

    y0 = torch.cat([r0[0], v0[0]]).numpy()
    for sign, sel in [(1, t >= 0), (-1, t <= 0)]:
        ts = t[sel].numpy()
        ts = ts if sign > 0 else ts[::-1]
        sol = solve_ivp(rhs, (0.0, ts[-1]), y0, method="DOP853", rtol=1e-13, atol=1e-13, t_eval=ts)
        ref = torch.from_numpy(sol.y.T if sign > 0 else sol.y.T[::-1].copy())
        assert float((torch.cat([r[0, sel], v[0, sel]], -1) - ref).abs().max()) <= 1e-9


def test_two_body_exact_flow_with_a_moving_centre_of_mass():
    system = get_system("two-body", m1=0.5, m2=2.0, G=0.7)
    x0 = system.sample_initial(8, seed=4)
    x0[:, 4:] += 0.1
    exact = simulate(system, x0, 0.1, 100)
    numeric = simulate(system, x0, 0.1, 100, method="yoshida8", substeps=8, check=False)
    assert float((exact - numeric).abs().max()) <= 1e-10


def test_spring_exact_flow_is_the_harmonic_solution():
    system = get_system("spring-mass", k=3.0, m=0.7)
    x0 = system.sample_initial(5, seed=5)
    traj = simulate(system, x0, 0.25, 40)
    w, t = math.sqrt(3.0 / 0.7), 0.25 * 40
    q = x0[:, 0] * math.cos(w * t) + x0[:, 1] / (0.7 * w) * math.sin(w * t)
    assert torch.allclose(traj[:, -1, 0], q, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------- interface
def test_output_shape_dtype_and_first_state():
    system = get_system("pendulum")
    x0 = system.sample_initial(3, seed=6).float()
    traj = simulate(system, x0, 0.1, 7)
    assert traj.shape == (3, 8, 2) and traj.dtype == torch.float64
    assert torch.equal(traj[:, 0], x0.double())
    single = simulate(system, x0[0].double(), 0.1, 7)
    assert single.shape == (1, 8, 2)
    assert torch.allclose(single[0], traj[0], rtol=0, atol=1e-15)
    assert torch.allclose(
        simulate(system, np.asarray(x0.double()), 0.1, 7), traj, rtol=0, atol=1e-15
    )


@pytest.mark.parametrize("name", ["pendulum", "two-body", "henon-heiles"])
def test_backward_in_time_returns_to_the_start(name):
    system = get_system(name)
    x0 = system.sample_initial(4, seed=7)
    forward = simulate(system, x0, 0.2, 25)
    backward = simulate(system, forward[:, -1], -0.2, 25)
    assert float((backward.flip(1) - forward).abs().max()) <= 1e-9


def test_refinement_recovers_from_too_few_substeps():
    system = get_system("pendulum")
    x0 = system.sample_initial(6, seed=8)
    coarse = simulate(system, x0, 0.5, 10, substeps=1, check=False)
    assert float(relative_energy_error(system, coarse).max()) > 1e-8
    refined = simulate(system, x0, 0.5, 10, substeps=1)
    assert float(relative_energy_error(system, refined).max()) <= 1e-11
    assert float((refined - dop853(system, x0, 0.5, 10)).abs().max()) <= 1e-8


def test_failure_to_meet_the_energy_bound_is_reported():
    system = get_system("pendulum")
    x0 = system.sample_initial(3, seed=9)
    with pytest.raises(ConvergenceError, match="pendulum"):
        simulate(system, x0, 0.5, 10, substeps=1, max_refinements=0)


def test_adaptive_method_tightens_its_tolerances_until_energy_is_conserved():
    system = get_system("double-pendulum")
    x0 = system.sample_initial(2, seed=10)
    loose = simulate(system, x0, 0.1, 5, rtol=1e-6, atol=1e-6, check=False)
    assert float(relative_energy_error(system, loose).max()) > 1e-11
    tight = simulate(system, x0, 0.1, 5, rtol=1e-6, atol=1e-6)
    assert float(relative_energy_error(system, tight).max()) <= 1e-11


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dt": 0.0}, ValueError),
        ({"dt": float("nan")}, ValueError),
        ({"n_steps": 0}, ValueError),
        ({"method": "no-such-method"}, ValueError),
        ({"method": "dopri8", "substeps": 2}, ValueError),
        ({"method": "exact"}, ValueError),  # the pendulum has no closed form
        ({"substeps": 0}, ValueError),
        ({"energy_rtol": -1.0}, ValueError),
    ],
)
def test_bad_arguments_are_refused(kwargs, error):
    system = get_system("pendulum")
    args = {"dt": 0.1, "n_steps": 3, **kwargs}
    with pytest.raises(error):
        simulate(system, system.sample_initial(2), args.pop("dt"), args.pop("n_steps"), **args)


def test_wrong_state_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        simulate(get_system("two-body"), torch.zeros(3, 5, dtype=torch.float64), 0.1, 3)


def test_describe_names_the_default_method():
    assert describe(get_system("two-body"))["method"] == "exact"
    assert describe(get_system("three-body"))["method"] == "yoshida8"
    info = describe(get_system("double-pendulum"))
    assert info["method"] == "dopri8" and info["rtol"] <= 1e-12
