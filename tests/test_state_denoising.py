"""States rebuilt from exact derivatives (``denoise_states``): quadrature order, exactness, the
noise it removes, training on it, its CLI flag and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hamgrad.cli import main
from hamgrad.systems import get_system
from hamgrad.train import TrainConfig, load_trained, load_training_data, train_dynamics
from hamgrad.training_data import integrated_states


def _smooth(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two trajectories in 2-D and their exact derivatives: (2, len(t), 2) each."""
    a, w, phase = np.array([[1.0], [0.4]]), np.array([[1.3], [2.1]]), np.array([[0.2], [1.0]])
    x = np.stack([a * np.sin(w * t + phase), a * np.cos(0.7 * w * t)], axis=-1)
    dx = np.stack([a * w * np.cos(w * t + phase), -0.7 * a * w * np.sin(0.7 * w * t)], axis=-1)
    return x, dx


def test_quadrature_is_fourth_order():
    steps, errors = [], []
    for n in (12, 24, 48, 96):
        t = np.linspace(0.0, 3.0, n + 1)
        x, dx = _smooth(t)
        errors.append(np.abs(integrated_states(x, dx, t[1] - t[0]) - x).max())
        steps.append(t[1] - t[0])
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 3.8 < slope < 4.3, (slope, errors)


@settings(max_examples=60, deadline=None)
@given(
    n_points=st.integers(3, 25),
    dim=st.integers(1, 4),
    dt=st.floats(0.01, 0.5),
    seed=st.integers(0, 2**31 - 1),
)
@example(n_points=3, dim=1, dt=0.1, seed=0)  # the three-point (quadratic) rule
@example(n_points=4, dim=2, dt=0.1, seed=1)  # first and last cubic rules only
def test_cubic_trajectories_are_rebuilt_up_to_their_mean_noise(n_points, dim, dt, seed):
    """For a cubic x(t) the quadrature is exact, so the rebuilt states differ from the clean ones
    by exactly each trajectory's mean noise: the noise is replaced by one offset of std σ/√(T+1)."""
    rng = np.random.default_rng(seed)
    t = dt * np.arange(n_points)[None, :, None]
    c = rng.normal(size=(4, 3, 1, dim))  # 3 trajectories
    clean = c[0] + c[1] * t + c[2] * t**2 + c[3] * t**3
    dxdt = c[1] + 2 * c[2] * t + 3 * c[3] * t**2
    noise = 0.1 * rng.normal(size=clean.shape)
    rebuilt = integrated_states(clean + noise, dxdt, dt)
    scale = np.abs(clean).max() + 1.0
    np.testing.assert_allclose(
        rebuilt - clean, np.broadcast_to(noise.mean(axis=1, keepdims=True), clean.shape),
        rtol=0, atol=1e-12 * scale,
    )  # fmt: skip


def test_bad_arrays_are_refused():
    x = np.zeros((2, 5, 2))
    with pytest.raises(ValueError, match=r"shape \(N, T\+1, D\)"):
        integrated_states(x, np.zeros((2, 5, 3)), 0.1)
    with pytest.raises(ValueError, match="at least 3 time points"):
        integrated_states(x[:, :2], x[:, :2], 0.1)


@pytest.fixture(scope="module")
def spring_pair(tmp_path_factory):
    """The same spring trajectories with noise 0.2 on the states and without: (noisy, clean)."""
    from hamgrad.datasets import generate

    folder = tmp_path_factory.mktemp("data")
    paths = []
    for noise in (0.2, 0.0):
        path = folder / f"spring-{noise}.h5"
        generate(
            "spring-mass", path, n_trajectories=40, n_steps=30, dt=0.1, noise_std=noise, seed=0,
            splits={"train": 0.5, "test": 0.5}, progress=False,
        )  # fmt: skip
        paths.append(path)
    return tuple(paths)


def test_loaded_states_lose_most_of_their_noise(spring_pair):
    noisy, clean = spring_pair
    truth = load_training_data(clean).x
    stored = load_training_data(noisy).x
    rebuilt = load_training_data(noisy, denoise_states=True)
    np.testing.assert_array_equal(rebuilt.dxdt, load_training_data(noisy).dxdt)
    noise_rms = np.sqrt(((stored - truth) ** 2).mean())
    rebuilt_rms = np.sqrt(((rebuilt.x - truth) ** 2).mean())
    assert 0.18 < noise_rms < 0.22
    assert rebuilt_rms < 0.3 * noise_rms, (noise_rms, rebuilt_rms)  # expected 1/√31 ≈ 0.18
    offsets = rebuilt.x - truth  # one constant per trajectory, up to the quadrature error
    assert np.abs(offsets - offsets.mean(axis=1, keepdims=True)).max() < 1e-3


def test_training_on_rebuilt_states_removes_most_of_the_noise_bias(spring_pair, tmp_path):
    """Noisy inputs (std 0.2), exact targets: the plain fit is attenuated, the fit on the rebuilt
    states is not. Measured on clean states, the field's mean squared error falls 9-25x (this
    joint GradNet-M; 25x at seed 0) and 43-46x (a separable GradNet-C) over seeds 0-3."""
    noisy, _ = spring_pair
    common = dict(model="gradnet-m", width=16, steps=500, batch_size=100_000, lr=1e-2)
    common.update(log_every=100, progress=False)
    plain = train_dynamics(noisy, tmp_path / "plain", **common).model
    rebuilt = train_dynamics(noisy, tmp_path / "rebuilt", denoise_states=True, **common).model
    system = get_system("spring-mass")
    x = system.sample_initial(400, seed=5).float()
    true = system.vector_field(x.double()).float()
    with torch.no_grad():
        errors = [float(((m.vector_field(x) - true) ** 2).mean()) for m in (plain, rebuilt)]
    assert errors[1] < errors[0] / 5, errors
    _, config = load_trained(tmp_path / "rebuilt")
    assert config["train"]["denoise_states"] is True


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"denoise_states": True, "targets": "finite-difference"}, "targets='analytic'"),
        ({"denoise_states": True, "noise_extrapolation": 0.1}, "not both"),
    ],
)
def test_config_refuses_what_it_cannot_do(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"model": "gradnet-m", **settings})
    with pytest.raises(TypeError, match="denoise_states must be True or False, got 'yes'"):
        TrainConfig(model="gradnet-m", denoise_states="yes")


def test_loader_refuses_finite_difference_targets(spring_pair):
    with pytest.raises(ValueError, match="integrates the analytic derivatives"):
        load_training_data(spring_pair[0], targets="finite-difference", denoise_states=True)


def test_cli_flag(spring_pair, tmp_path, capsys):
    args = ["train", str(spring_pair[0]), "--model", "gradnet-m", "--width", "4", "--steps", "3"]
    assert main([*args, "--denoise-states", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert load_trained(tmp_path / "a")[1]["train"]["denoise_states"] is True
    bad = [
        *args,
        "--denoise-states",
        "--targets",
        "finite-difference",
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(bad) != 0
    assert "denoise_states integrates the analytic derivatives" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
