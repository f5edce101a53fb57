"""hamgrad.systems: analytic gradients, the vector field, parameters, presets and the registry."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamgrad.systems import System, get_system, list_systems, system_class

DYNAMICS = [
    "double-pendulum",
    "henon-heiles",
    "oscillator-chain",
    "pendulum",
    "spring-mass",
    "three-body",
    "two-body",
]

# (name, non-default parameters): masses != 1 everywhere, other couplings and chain layouts.
VARIANTS = [(name, {}) for name in DYNAMICS] + [
    ("spring-mass", {"k": 3.5, "m": 0.3}),
    ("pendulum", {"m": 1.7, "l": 0.6, "g": 9.81}),
    ("two-body", {"m1": 0.4, "m2": 2.5, "G": 0.8}),
    ("three-body", {"m1": 0.7, "m2": 1.3, "m3": 2.1, "G": 1.6}),
    ("double-pendulum", {"m1": 1.3, "m2": 0.4, "l1": 0.7, "l2": 1.6, "g": 9.81}),
    ("henon-heiles", {"m": 2.5, "coupling": 0.7}),
    ("oscillator-chain", {"n": 5, "masses": "random", "stiffness": "random", "seed": 3}),
    ("oscillator-chain", {"n": 4, "ends": "free", "masses": [1.0, 2.0, 0.5, 3.0]}),
    ("oscillator-chain", {"n": 6, "ends": "periodic", "masses": 1.5, "stiffness": 0.7}),
]
IDS = [f"{n}{'-' + '-'.join(p) if p else ''}" for n, p in VARIANTS]


def random_states(system: System, seed: int, batch: tuple[int, ...] = (6,)) -> torch.Tensor:
    """States around the system's initial distribution, perturbed off it."""
    count = math.prod(batch)
    x = system.sample_initial(count, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = x * (1 + 0.2 * torch.rand(x.shape, generator=g, dtype=torch.float64))
    x = x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return x.reshape(*batch, system.dim)


def autograd_grad(system: System, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(system.hamiltonian(x).sum(), x)
    return g


# ----------------------------------------------------------------------- registry
def test_registry_lists_every_dynamics_system():
    assert set(DYNAMICS) <= set(list_systems("dynamics"))
    for name in DYNAMICS:
        cls = system_class(name)
        assert issubclass(cls, System) and cls.kind == "dynamics" and cls.name == name
        assert cls.description


def test_unknown_system_is_refused():
    with pytest.raises(ValueError, match="two-body"):
        get_system("four-body")


# ----------------------------------------------------------------------- gradients
@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 2**31 - 1))
def test_grad_matches_autograd_of_hamiltonian(name, params, seed):
    system = get_system(name, **params)
    x = random_states(system, seed)
    g = system.grad(x)
    ref = autograd_grad(system, x)
    err = torch.linalg.vector_norm(g - ref, dim=-1)
    assert bool((err <= 1e-12 * torch.linalg.vector_norm(ref, dim=-1)).all()), float(err.max())


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_vector_field_is_J_grad(name, params):
    system = get_system(name, **params)
    x = random_states(system, 1)
    n = system.dof
    eye, zero = torch.eye(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    J = torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)
    assert torch.allclose(system.vector_field(x), system.grad(x) @ J.T, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("name", "params"), [v for v in VARIANTS if v[0] != "double-pendulum"])
def test_separable_parts_agree_with_grad(name, params):
    system = get_system(name, **params)
    assert system.separable
    x = random_states(system, 2)
    n = system.dof
    g = autograd_grad(system, x)
    assert torch.allclose(system.grad_q(x[..., :n]), g[..., :n], rtol=1e-12, atol=1e-14)
    assert torch.allclose(system.grad_p(x[..., n:]), g[..., n:], rtol=1e-12, atol=1e-14)
    assert torch.equal(
        system.grad(x), torch.cat([system.grad_q(x[..., :n]), system.grad_p(x[..., n:])], -1)
    )


def test_double_pendulum_is_not_separable():
    system = get_system("double-pendulum")
    assert not system.separable
    with pytest.raises(NotImplementedError):
        system.grad_q(torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("name", DYNAMICS)
def test_batch_shapes_and_dtype_follow_the_input(name, dtype, tol):
    system = get_system(name)
    x64 = random_states(system, 3, batch=(2, 3))
    x = x64.to(dtype)
    assert system.hamiltonian(x).shape == (2, 3) and system.hamiltonian(x).dtype == dtype
    for f in (system.grad, system.vector_field):
        out = f(x)
        assert out.shape == (2, 3, system.dim) and out.dtype == dtype
        assert torch.allclose(out.double(), f(x64), rtol=tol * 10, atol=tol * 10)
    single = system.grad(x64[0, 0])
    assert torch.allclose(single, system.grad(x64)[0, 0], rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", DYNAMICS)
def test_wrong_state_length_is_refused(name):
    system = get_system(name)
    with pytest.raises(ValueError, match="last axis"):
        system.grad(torch.zeros(3, system.dim + 1, dtype=torch.float64))


# ----------------------------------------------------------------------- HNN Hamiltonians
def test_default_spring_and_pendulum_are_hnns():
    q = torch.linspace(-2, 2, 9, dtype=torch.float64)
    p = torch.linspace(1.5, -1.5, 9, dtype=torch.float64)
    x = torch.stack([q, p], -1)
    assert torch.allclose(get_system("spring-mass").hamiltonian(x), q**2 + p**2, atol=1e-15)
    pend = get_system("pendulum").hamiltonian(x)
    assert torch.allclose(pend, 3 * (1 - torch.cos(q)) + p**2, atol=1e-14)
    deepmind = get_system("pendulum", g=3.0).hamiltonian(x)
    assert torch.allclose(deepmind, 1.5 * (1 - torch.cos(q)) + p**2, atol=1e-14)


def test_two_body_hamiltonian_is_hnns():
    system = get_system("two-body")
    x = random_states(system, 4)
    q1, q2, p = x[:, 0:2], x[:, 2:4], x[:, 4:]
    expected = (p * p).sum(-1) / 2 - 1 / (q1 - q2).norm(dim=-1)
    assert torch.allclose(system.hamiltonian(x), expected, rtol=1e-14)


def test_three_body_hamiltonian():
    system = get_system("three-body", m1=1.0, m2=2.0, m3=3.0, G=0.5)
    x = random_states(system, 5)
    q = x[:, :6].reshape(-1, 3, 2)
    p = x[:, 6:].reshape(-1, 3, 2)
    m = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    kinetic = ((p * p).sum(-1) / (2 * m)).sum(-1)
    potential = sum(
        -0.5 * m[i] * m[j] / (q[:, i] - q[:, j]).norm(dim=-1) for i, j in [(0, 1), (0, 2), (1, 2)]
    )
    assert torch.allclose(system.hamiltonian(x), kinetic + potential, rtol=1e-14)


def test_double_pendulum_energy_from_cartesian_coordinates():
    m1, m2, l1, l2, g = 1.3, 0.4, 0.7, 1.6, 9.81
    system = get_system("double-pendulum", m1=m1, m2=m2, l1=l1, l2=l2, g=g)
    th1, th2, w1, w2 = 0.4, -1.1, 0.8, -0.3  # angles and angular velocities
    c = math.cos(th1 - th2)
    p1 = (m1 + m2) * l1**2 * w1 + m2 * l1 * l2 * c * w2  # p = M(θ) ω
    p2 = m2 * l2**2 * w2 + m2 * l1 * l2 * c * w1
    v1 = (l1 * w1 * math.cos(th1), l1 * w1 * math.sin(th1))
    v2 = (v1[0] + l2 * w2 * math.cos(th2), v1[1] + l2 * w2 * math.sin(th2))
    kinetic = 0.5 * m1 * (v1[0] ** 2 + v1[1] ** 2) + 0.5 * m2 * (v2[0] ** 2 + v2[1] ** 2)
    height1 = l1 * (1 - math.cos(th1))
    height2 = height1 + l2 * (1 - math.cos(th2))
    expected = kinetic + g * (m1 * height1 + m2 * height2)
    x = torch.tensor([th1, th2, p1, p2], dtype=torch.float64)
    assert float(system.hamiltonian(x)) == pytest.approx(expected, rel=1e-14)


def test_oscillator_chain_potential_from_springs():
    system = get_system("oscillator-chain", n=3, ends="fixed", stiffness=[1.0, 2.0, 3.0, 4.0])
    q = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    x = torch.cat([q, torch.zeros(3, dtype=torch.float64)])
    expected = 0.5 * (1 * 0.3**2 + 2 * 0.5**2 + 3 * 0.7**2 + 4 * 0.5**2)
    assert float(system.hamiltonian(x)) == pytest.approx(expected, rel=1e-14)
    free = get_system("oscillator-chain", n=3, ends="free", stiffness=[2.0, 3.0])
    assert float(free.hamiltonian(x)) == pytest.approx(0.5 * (2 * 0.5**2 + 3 * 0.7**2))
    ring = get_system("oscillator-chain", n=3, ends="periodic", stiffness=1.0)
    assert float(ring.hamiltonian(x)) == pytest.approx(0.5 * (0.5**2 + 0.7**2 + 0.2**2))


def test_large_chain_uses_the_banded_gradient():
    system = get_system("oscillator-chain", n=300, masses="random", stiffness="random")
    x = system.sample_initial(3, seed=1)
    assert torch.allclose(system.grad(x), autograd_grad(system, x), rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------- parameters
def test_parameter_overrides_and_defaults():
    assert get_system("pendulum", g=3.0).params["g"] == 3.0
    assert get_system("pendulum").params["g"] == 6.0
    system = get_system("two-body", m1=2.0)
    assert system.params["m1"] == 2.0 and system.params["m2"] == 1.0
    assert get_system("oscillator-chain", n=12).dof == 12
    assert get_system("oscillator-chain", n=12).dim == 24


@pytest.mark.parametrize("name", DYNAMICS)
def test_unknown_parameters_are_refused_with_the_allowed_ones(name):
    cls = system_class(name)
    with pytest.raises(ValueError, match="unknown parameter") as info:
        get_system(name, not_a_parameter=1.0)
    for allowed in cls.defaults:
        assert allowed in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("spring-mass", {"m": 0.0}),
        ("spring-mass", {"k": -1.0}),
        ("spring-mass", {"radius": (1.0, 0.5)}),
        ("pendulum", {"l": float("nan")}),
        ("pendulum", {"g": "6"}),
        ("two-body", {"m2": -2.0}),
        ("two-body", {"orbit_noise": -0.1}),
        ("three-body", {"G": 0.0}),
        ("double-pendulum", {"l2": 0.0}),
        ("henon-heiles", {"energy_fraction": (0.5, 1.2)}),
        ("oscillator-chain", {"n": 0}),
        ("oscillator-chain", {"ends": "loose"}),
        ("oscillator-chain", {"n": 3, "masses": [1.0, 2.0]}),
        ("oscillator-chain", {"masses": "heavy"}),
        ("oscillator-chain", {"n": 3, "stiffness": [1.0, -1.0, 1.0, 1.0]}),
    ],
)
def test_invalid_parameter_values_are_refused(name, params):
    with pytest.raises((ValueError, TypeError)):
        get_system(name, **params)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_params_round_trip_through_json_and_repr(name, params):
    system = get_system(name, **params)
    again = get_system(name, **json.loads(system.params_json()))
    assert again.params_json() == system.params_json()
    x = random_states(system, 6)
    assert torch.equal(again.grad(x), system.grad(x))
    assert type(system).__name__ in repr(system)


def test_random_chain_is_fixed_by_its_seed():
    a = get_system("oscillator-chain", masses="random", stiffness="random", seed=5)
    b = get_system("oscillator-chain", masses="random", stiffness="random", seed=5)
    c = get_system("oscillator-chain", masses="random", stiffness="random", seed=6)
    assert (a.masses == b.masses).all() and (a.stiffness == b.stiffness).all()
    assert not (a.masses == c.masses).all()
    assert a.masses.min() >= 0.5 and a.masses.max() <= 2.0


# ----------------------------------------------------------------------- presets
HNN_GRIDS = {  # name -> (t_end, points, trajectories, noise, test fraction)
    "spring-mass": (3.0, 30, 50, 0.1, 0.5),
    "pendulum": (3.0, 45, 50, 0.1, 0.5),
    "two-body": (20.0, 50, 1000, 0.0, 0.2),
    "three-body": (5.0, 20, 5000, 0.0, 0.2),
}
HNN_EVAL = {  # name -> (t_end, points)
    "spring-mass": (20.0, 100),
    "pendulum": (20.0, 100),
    "two-body": (25.0, 500),
    "three-body": (3.0, 500),
}


@pytest.mark.parametrize("name", sorted(HNN_GRIDS))
def test_hnn_presets_reproduce_the_published_protocol(name):
    preset = system_class(name).preset("hnn")
    t_end, points, count, noise, test = HNN_GRIDS[name]
    assert preset["n_steps"] == points - 1
    assert preset["dt"] * preset["n_steps"] == pytest.approx(t_end, rel=1e-14)
    assert preset["n_trajectories"] == count and preset["noise_std"] == noise
    assert preset["splits"]["test"] == test and sum(preset["splits"].values()) == 1.0
    evaluation = preset["eval"]
    t_end, points = HNN_EVAL[name]
    assert evaluation["n_trajectories"] == 15 and evaluation["n_steps"] == points - 1
    assert evaluation["dt"] * evaluation["n_steps"] == pytest.approx(t_end, rel=1e-14)
    system = system_class(name).from_preset("hnn")
    x = system.eval_initial("hnn")
    assert x.shape == (15, system.dim) and x.dtype == torch.float64
    preset["params"]["mutated"] = True  # preset() hands out a copy
    assert "mutated" not in system_class(name).preset("hnn")["params"]


def test_spring_and_pendulum_eval_states_are_hnns():
    for name in ("spring-mass", "pendulum"):
        x = get_system(name).eval_initial("hnn", seed=3)
        assert bool(((x.abs() >= 0.2) & (x.abs() <= 1.0)).all())
        assert bool((x > 0).any()) and bool((x < 0).any())
        assert torch.equal(x, get_system(name).eval_initial("hnn", seed=3))


def test_body_eval_states_are_seeds_zero_to_fourteen():
    system = get_system("two-body")
    x = system.eval_initial("hnn")
    for i in (0, 7, 14):
        assert torch.equal(x[i], system.sample_initial(1, seed=i)[0])


def test_unknown_preset_and_missing_eval_are_refused():
    with pytest.raises(ValueError, match="hnn"):
        system_class("two-body").preset("deepmind")
    with pytest.raises(ValueError):
        get_system("henon-heiles").eval_initial("hnn")
