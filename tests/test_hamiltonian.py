"""Learned Hamiltonians: the protocol, energies whose gradients are the fields, the MLP wrapper."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamgrad.hamiltonian import (
    JointHamiltonian,
    SeparableHamiltonian,
    VectorFieldModel,
    apply_J,
    apply_J_inverse,
    build_hamiltonian,
    default_kinetic_model,
    split_budget,
)
from hamgrad.integrators import rollout
from hamgrad.metrics import energy_drift
from hamgrad.models import build_model, count_params


def autograd_grad(fn, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


@pytest.mark.parametrize("name", ["gradnet-c", "gradnet-m", "mgradnet-m", "hnn"])
def test_joint_hamiltonian_protocol_and_energy(name):
    torch.manual_seed(0)
    h = JointHamiltonian(build_model(name, 4, width=8)).double()
    assert (h.dof, h.dim, h.separable) == (2, 4, False)
    x = torch.randn(6, 4, dtype=torch.float64)
    g = h.grad(x)
    torch.testing.assert_close(g, h.net(x), rtol=0, atol=0)
    torch.testing.assert_close(autograd_grad(h.energy, x), g, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(h.vector_field(x), torch.cat([g[:, 2:], -g[:, :2]], -1))
    assert h.hamiltonian(x).shape == (6,)


def test_separable_hamiltonian_parts(dtype, tol):
    torch.manual_seed(1)
    kinetic = build_model("mgradnet-c", 3, width=6)
    potential = build_model("gradnet-m", 3, width=6)
    h = SeparableHamiltonian(kinetic, potential).to(dtype)
    assert (h.dof, h.dim, h.separable) == (3, 6, True)
    x = torch.randn(5, 6, dtype=dtype)
    q, p = x[:, :3], x[:, 3:]
    torch.testing.assert_close(h.grad_q(q), h.potential(q), rtol=0, atol=0)
    torch.testing.assert_close(h.grad_p(p), h.kinetic(p), rtol=0, atol=0)
    torch.testing.assert_close(h.grad(x), torch.cat([h.grad_q(q), h.grad_p(p)], -1))
    assert h.grad(x).dtype == dtype and h.energy(x).dtype == dtype
    torch.testing.assert_close(
        autograd_grad(h.energy, x), h.grad(x), rtol=100 * tol, atol=100 * tol
    )


def test_separable_kinetic_energy_is_convex():
    torch.manual_seed(2)
    h = build_hamiltonian("gradnet-m", 2, separable=True, width=8, dtype=torch.float64)
    assert h.kinetic.monotone
    for p in torch.randn(20, 2, dtype=torch.float64):
        jac = torch.autograd.functional.jacobian(h.grad_p, p)
        torch.testing.assert_close(jac, jac.T, rtol=0, atol=1e-12)
        assert torch.linalg.eigvalsh(jac).min() >= -1e-12


def test_separable_rejects_mismatched_parts():
    with pytest.raises(ValueError, match="same number of degrees of freedom"):
        SeparableHamiltonian(
            build_model("mgradnet-c", 2, width=4), build_model("gradnet-c", 3, width=4)
        )
    with pytest.raises(ValueError, match="conservative"):
        SeparableHamiltonian(build_model("mgradnet-c", 2, width=4), build_model("mlp", 2, width=4))
    with pytest.raises(ValueError, match="even"):
        JointHamiltonian(build_model("gradnet-c", 3, width=4))


@settings(deadline=None, max_examples=20)
@given(st.lists(st.floats(-10, 10), min_size=6, max_size=6))
def test_J_inverse_undoes_J(values):
    g = torch.tensor(values, dtype=torch.float64)
    assert torch.equal(apply_J(apply_J_inverse(g)), g)
    assert torch.equal(apply_J_inverse(apply_J(g)), g)


def test_vector_field_model_grad_rotates_to_field():
    torch.manual_seed(3)
    m = VectorFieldModel(build_model("mlp", 4, width=8)).double()
    assert not m.separable and not m.conservative and m.dof == 2
    x = torch.randn(7, 4, dtype=torch.float64)
    assert torch.equal(apply_J(m.grad(x)), m.vector_field(x))


class _LinearField(torch.nn.Module):
    """f(x) = A x, a damped (non-Hamiltonian) linear field."""

    dim = 2
    conservative = False

    def __init__(self):
        super().__init__()
        self.A = torch.tensor([[-0.1, 1.0], [-1.0, -0.1]], dtype=torch.float64)

    def forward(self, x):
        return x @ self.A.T


def test_vector_field_model_rolls_out_with_rk4():
    m = VectorFieldModel(_LinearField())
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    traj = rollout(m, x0, 0.01, 300, method="rk4")
    t = 3.0
    exact = math.exp(-0.1 * t) * torch.tensor([math.cos(t), -math.sin(t)], dtype=torch.float64)
    torch.testing.assert_close(traj[0, -1], exact, rtol=0, atol=1e-9)


def test_joint_model_refused_by_leapfrog():
    h = build_hamiltonian("gradnet-c", 1, width=4, dtype=torch.float64)
    with pytest.raises(ValueError, match="separable"):
        rollout(h, torch.zeros(1, 2, dtype=torch.float64), 0.1, 3, method="leapfrog")


def test_separable_learned_hamiltonian_leapfrog_energy_bounded():
    """Leapfrog on a learned separable H conserves the learned energy (no drift)."""
    h = build_hamiltonian("mgradnet-m", 2, separable=True, width=8, dtype=torch.float64, seed=4)
    x0 = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        traj = rollout(h, x0, 0.1, 1000, method="leapfrog")
        energies = h.energy(traj)
    drift = energy_drift(energies)
    assert (drift["max"] < 1e-2).all()
    assert (drift["half_ratio"] <= 1.2).all(), drift["half_ratio"]


def test_build_hamiltonian_budget_and_names():
    h = build_hamiltonian("gradnet-m", 2, separable=True, param_budget=3000)
    assert isinstance(h, SeparableHamiltonian)
    assert h.kinetic.name == "mgradnet-m" and h.potential.name == "gradnet-m"
    kin, pot = split_budget(3000)
    assert count_params(h.kinetic) <= kin and count_params(h.potential) <= pot
    assert count_params(h) <= 3000
    joint = build_hamiltonian("hnn", 2, param_budget=3000)
    assert isinstance(joint, JointHamiltonian) and count_params(joint) <= 3000
    mlp = build_hamiltonian("mlp", 2, width=16)
    assert isinstance(mlp, VectorFieldModel)
    assert default_kinetic_model("gradnet-c") == "mgradnet-c"
    assert default_kinetic_model("hnn") == "hnn"


def test_build_hamiltonian_bad_arguments():
    with pytest.raises(ValueError, match="either param_budget or width"):
        build_hamiltonian("hnn", 1, width=4, param_budget=100)
    with pytest.raises(ValueError, match="mlp"):
        build_hamiltonian("mlp", 1, separable=True, width=4)
    with pytest.raises(ValueError, match="unknown model"):
        build_hamiltonian("resnet", 1)


def test_build_hamiltonian_seed_is_reproducible_and_local():
    state = torch.get_rng_state()
    a = build_hamiltonian("gradnet-c", 2, separable=True, width=5, seed=7)
    b = build_hamiltonian("gradnet-c", 2, separable=True, width=5, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
