"""Options of learned Hamiltonians used by the dynamics benchmarks: the output scale."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamgrad.hamiltonian import ScaledGradientNetwork, SeparableHamiltonian, build_hamiltonian
from hamgrad.models import build_model, count_params
from hamgrad.testing import assert_conservative, assert_monotone

MODELS = ("gradnet-c", "mgradnet-c", "gradnet-m", "mgradnet-m")


@pytest.mark.parametrize("name", MODELS)
def test_scaled_network_is_the_scaled_field_and_potential(name: str) -> None:
    net = build_model(name, 3, width=8, seed=1).double()
    scaled = ScaledGradientNetwork(net, 0.25)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(scaled(x), 0.25 * net(x), rtol=0, atol=1e-15)
    torch.testing.assert_close(scaled.potential(x), 0.25 * net.potential(x), rtol=0, atol=1e-14)
    assert scaled.dim == 3 and scaled.conservative
    assert scaled.monotone == net.monotone
    assert count_params(scaled) == count_params(net)


@pytest.mark.parametrize("name", ["mgradnet-c", "gradnet-c"])
def test_scaled_network_keeps_structure(name: str) -> None:
    scaled = ScaledGradientNetwork(build_model(name, 2, width=8, seed=2).double(), 0.125)
    points = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert_conservative(scaled, points)
    if name.startswith("m"):
        assert_monotone(scaled, points)


@settings(deadline=None, max_examples=10)
@given(scale=st.floats(1e-3, 10.0), seed=st.integers(0, 1000))
def test_output_scale_multiplies_a_separable_hamiltonian(scale: float, seed: int) -> None:
    kwargs = dict(separable=True, width=8, kinetic_model="mgradnet-c", dtype=torch.float64)
    plain = build_hamiltonian("gradnet-c", 1, seed=seed, **kwargs)
    scaled = build_hamiltonian("gradnet-c", 1, seed=seed, output_scale=scale, **kwargs)
    assert isinstance(scaled, SeparableHamiltonian)
    x = torch.linspace(-2.0, 2.0, 12, dtype=torch.float64).reshape(-1, 2)
    torch.testing.assert_close(scaled.grad(x), scale * plain.grad(x), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(scaled.energy(x), scale * plain.energy(x), rtol=1e-12, atol=1e-14)


def test_output_scale_sets_the_initial_slope_of_a_one_dimensional_cascade() -> None:
    # mGradNet-C on one input starts far steeper than a unit-scale field; the scale divides it
    x = torch.tensor([[-0.5], [0.5]], dtype=torch.float64)
    plain = build_hamiltonian("mgradnet-c", 1, separable=True, width=32, seed=0)
    scaled = build_hamiltonian(
        "mgradnet-c", 1, separable=True, width=32, seed=0, output_scale=0.125
    )
    with torch.no_grad():
        slope = lambda h: float(h.double().grad_p(x).diff(dim=0))  # noqa: E731
        assert slope(plain) > 5.0
        assert slope(scaled) == pytest.approx(0.125 * slope(plain), rel=1e-12)


def test_joint_hamiltonian_takes_the_scale_and_mlp_refuses_it() -> None:
    joint = build_hamiltonian("gradnet-m", 1, width=8, seed=0, output_scale=0.5)
    assert isinstance(joint.net, ScaledGradientNetwork)
    with pytest.raises(ValueError, match="output_scale"):
        build_hamiltonian("mlp", 1, width=8, output_scale=0.5)
    with pytest.raises(ValueError, match="output_scale"):
        build_hamiltonian("gradnet-c", 1, separable=True, width=8, output_scale=-1.0)


def test_scaled_network_refuses_a_field_that_is_not_conservative() -> None:
    with pytest.raises(ValueError, match="conservative"):
        ScaledGradientNetwork(build_model("mlp", 2, width=8), 1.0)


def test_training_run_with_output_scale_reloads(tmp_path, small_dataset) -> None:
    from hamgrad.train import load_trained, train_dynamics

    result = train_dynamics(
        small_dataset("spring-mass", n_trajectories=12, n_steps=20),
        tmp_path / "run",
        model="mgradnet-c",
        separable=True,
        width=8,
        steps=5,
        batch_size=20,
        model_options={"output_scale": 0.125},
        progress=False,
    )
    model, _ = load_trained(tmp_path / "run")
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model.grad(x), result.model.grad(x))
    assert isinstance(model.kinetic, ScaledGradientNetwork)
