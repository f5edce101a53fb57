"""hamgrad.systems: the initial-state distributions (determinism and the HNN rules)."""

from __future__ import annotations

import math

import pytest
import torch

from hamgrad.systems import get_system

DYNAMICS = [
    "double-pendulum",
    "henon-heiles",
    "oscillator-chain",
    "pendulum",
    "spring-mass",
    "three-body",
    "two-body",
]


@pytest.mark.parametrize("name", DYNAMICS)
def test_sample_initial_is_deterministic_and_prefix_stable(name):
    system = get_system(name)
    a = system.sample_initial(64, seed=11)
    assert a.shape == (64, system.dim) and a.dtype == torch.float64
    assert bool(torch.isfinite(a).all())
    assert torch.equal(a, system.sample_initial(64, seed=11))
    assert torch.equal(a[:5], system.sample_initial(5, seed=11))
    assert not torch.equal(a, system.sample_initial(64, seed=12))


@pytest.mark.parametrize("name", DYNAMICS)
def test_sample_initial_refuses_bad_counts_and_seeds(name):
    system = get_system(name)
    for n, seed in [(0, 0), (3, -1)]:
        with pytest.raises(ValueError):
            system.sample_initial(n, seed=seed)
    with pytest.raises(TypeError):
        system.sample_initial(2.5)


@pytest.mark.parametrize(
    ("name", "low", "high"), [("spring-mass", 0.1, 1.0), ("pendulum", 1.3, 2.3)]
)
def test_spring_and_pendulum_radius_is_uniform_in_hnns_range(name, low, high):
    x = get_system(name).sample_initial(4000, seed=0)
    r = x.norm(dim=-1)
    assert float(r.min()) >= low and float(r.max()) <= high
    # uniform: mean and spread of U[low, high]
    assert float(r.mean()) == pytest.approx((low + high) / 2, abs=0.02)
    assert float(r.std()) == pytest.approx((high - low) / math.sqrt(12), abs=0.02)
    # direction of a uniform point of the square [-1, 1]² (not a uniform angle): the share of
    # directions within π/8 of a diagonal is 2 − √2 (0.5 for uniform angles)
    angle = torch.atan2(x[:, 1], x[:, 0]).remainder(math.pi / 2)
    diagonal = ((angle - math.pi / 4).abs() < math.pi / 8).double().mean()
    assert float(diagonal) == pytest.approx(2 - math.sqrt(2), abs=0.03)


def _kepler_elements(system, x):
    """Eccentricity and speed factor of the relative orbit of two bodies."""
    m1, m2 = system.masses
    r = x[:, 0:2] - x[:, 2:4]
    v = x[:, 4:6] / m1 - x[:, 6:8] / m2
    mu = system.G * (m1 + m2)
    dist = r.norm(dim=-1)
    energy = 0.5 * (v * v).sum(-1) - mu / dist
    h = r[:, 0] * v[:, 1] - r[:, 1] * v[:, 0]
    ecc = torch.sqrt((1 + 2 * energy * h * h / mu**2).clamp(min=0))
    factor = v.norm(dim=-1) / torch.sqrt(mu / dist)  # speed / circular speed
    return ecc, factor, h, energy, dist


def test_two_body_states_follow_hnns_rule():
    system = get_system("two-body")
    x = system.sample_initial(4000, seed=1)
    q1, q2, p1, p2 = x[:, 0:2], x[:, 2:4], x[:, 4:6], x[:, 6:8]
    assert torch.equal(q2, -q1) and torch.equal(p2, -p1)  # mirror pair, zero momentum
    assert float(q1.min()) >= 0.5 and float(q1.max()) <= 1.5
    assert float((q1 * p1).sum(-1).abs().max()) < 1e-15  # perpendicular to the position
    r = q1.norm(dim=-1)
    factor = p1.norm(dim=-1) / (1 / (2 * r.sqrt()))  # HNN's circular speed 1/(2 sqrt r)
    assert float(factor.mean()) == pytest.approx(1.0, abs=0.005)
    assert float(factor.std()) == pytest.approx(0.05, abs=0.004)
    assert bool(((q1[:, 0] * p1[:, 1] - q1[:, 1] * p1[:, 0]) > 0).all())  # counter-clockwise
    # near-circular orbits: energy and angular momentum give e = |f² − 1| for speed factor f
    ecc, f, h, energy, dist = _kepler_elements(system, x)
    assert torch.allclose(ecc, (f * f - 1).abs(), atol=1e-7)
    assert torch.allclose(f, factor, rtol=1e-13)
    # and for f = 1 exactly: E = -μ/(2 d), h² = μ d (circular)
    circular = get_system("two-body", orbit_noise=0.0).sample_initial(50, seed=2)
    ecc, f, h, energy, dist = _kepler_elements(system, circular)
    assert torch.allclose(f, torch.ones_like(f), rtol=1e-14)
    assert torch.allclose(energy, -2.0 / (2 * dist), rtol=1e-13)
    assert torch.allclose(h * h, 2.0 * dist, rtol=1e-13)


def test_two_body_general_masses_start_on_circular_orbits_about_the_centre_of_mass():
    system = get_system("two-body", m1=0.5, m2=3.0, G=0.7, orbit_noise=0.0)
    x = system.sample_initial(200, seed=3)
    m1, m2 = system.masses
    centre = m1 * x[:, 0:2] + m2 * x[:, 2:4]
    assert float(centre.abs().max()) < 1e-14
    assert float((x[:, 4:6] + x[:, 6:8]).abs().max()) < 1e-15
    ecc, f, *_ = _kepler_elements(system, x)
    assert float(ecc.max()) < 1e-7 and torch.allclose(f, torch.ones_like(f), rtol=1e-14)
    separation = (x[:, 0:2] - x[:, 2:4]).norm(dim=-1)
    assert float(separation.min()) >= 2 * 0.5 * math.sqrt(2) - 1e-12


def test_three_body_states_follow_hnns_rule():
    system = get_system("three-body")
    x = system.sample_initial(2000, seed=4)
    q = x[:, :6].reshape(-1, 3, 2)
    v = x[:, 6:].reshape(-1, 3, 2)
    r = q.norm(dim=-1)
    assert torch.allclose(r, r[:, :1].expand(-1, 3), rtol=1e-14)  # same radius
    assert float(r.min()) >= 0.9 and float(r.max()) <= 1.2
    c, s = math.cos(2 * math.pi / 3), math.sin(2 * math.pi / 3)
    rot = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)  # row vectors: x @ rot = R x
    assert torch.allclose(q[:, 1], q[:, 0] @ rot, atol=1e-14)
    assert torch.allclose(q[:, 2], q[:, 1] @ rot, atol=1e-14)
    # unperturbed velocity: position turned by 90°, speed sqrt(2/3) / sqrt(r) (HNN's factor)
    base = torch.stack([-q[..., 1], q[..., 0]], -1) / r.unsqueeze(-1) * math.sqrt(2 / 3)
    base = base / r.sqrt().unsqueeze(-1)
    ratio = v / base  # each component scaled by 1 + 0.2 U[-1, 1]
    ratio = ratio[base.abs() > 1e-3]
    assert float(ratio.min()) >= 0.8 - 1e-9 and float(ratio.max()) <= 1.2 + 1e-9
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(ratio.std()) == pytest.approx(0.2 / math.sqrt(3), abs=0.01)


def test_henon_heiles_states_are_bounded_with_the_requested_energies():
    system = get_system("henon-heiles", coupling=0.5, m=2.0, energy_fraction=(0.2, 0.8))
    x = system.sample_initial(3000, seed=5)
    energy = system.hamiltonian(x) / system.escape_energy
    assert float(energy.min()) >= 0.2 - 1e-12 and float(energy.max()) <= 0.8 + 1e-12
    # inside the triangle of the bounded well (scaled by 1/λ)
    qx, qy = x[:, 0] * 0.5, x[:, 1] * 0.5
    assert bool((qy > -0.5).all() and (qy < 1 + math.sqrt(3) * qx).all())
    assert bool((qy < 1 - math.sqrt(3) * qx).all())


def test_double_pendulum_and_chain_distributions():
    x = get_system("double-pendulum").sample_initial(2000, seed=6)
    r = x.norm(dim=-1)
    assert float(r.min()) >= 1.3 and float(r.max()) <= 2.3
    chain = get_system("oscillator-chain", n=10, amplitude=0.3).sample_initial(2000, seed=7)
    assert float(chain.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(chain.std()) == pytest.approx(0.3, abs=0.01)
