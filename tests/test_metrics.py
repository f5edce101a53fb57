"""Metrics checked on hand-computed cases and on properties that hold for all inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hamgrad.metrics import (
    energy_drift,
    energy_mse,
    field_error_db,
    relative_energy_error,
    relative_error_geomean,
    summarize,
    trajectory_psnr,
    valid_prediction_time,
)


def test_field_error_db_hand_computed():
    pred = np.array([[1.0, 0.0], [0.0, 0.0]])
    target = np.array([[0.0, 0.0], [0.0, 2.0]])
    # squared norms 1 and 4, mean 2.5
    assert field_error_db(pred, target) == pytest.approx(10 * math.log10(2.5), abs=1e-12)


def test_field_error_db_accepts_torch_and_is_minus_inf_when_exact():
    x = torch.randn(5, 3, dtype=torch.float64)
    assert field_error_db(x, x.clone()) == float("-inf")
    # error 0.1 in every coordinate of d = 3: mean squared norm 0.03
    assert field_error_db(x + 0.1, x) == pytest.approx(10 * math.log10(0.03), abs=1e-10)


def test_field_error_db_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        field_error_db(np.zeros((3, 2)), np.zeros((3, 3)))


def test_trajectory_psnr_hand_computed():
    true = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]])  # range 4
    pred = true.copy()
    pred[1, 0] += 1.0  # one error of 1 among 6 entries: MSE = 1/6
    expected = 10 * math.log10(16 / (1 / 6))
    assert trajectory_psnr(pred, true) == pytest.approx(expected, abs=1e-12)


def test_trajectory_psnr_batch_is_per_trajectory():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4, 10, 2))
    pred = true + 0.01 * rng.normal(size=true.shape)
    batch = trajectory_psnr(pred, true)
    assert batch.shape == (4,)
    for i in range(4):
        assert batch[i] == pytest.approx(trajectory_psnr(pred[i], true[i]), abs=1e-12)
    s = summarize(batch)
    assert s["mean"] == pytest.approx(batch.mean()) and s["median"] == pytest.approx(
        np.median(batch)
    )


@settings(deadline=None, max_examples=25)
@given(
    arrays(np.float64, (6, 3), elements=st.floats(-5, 5)),
    st.floats(0.01, 1.0),
    st.floats(0.1, 10.0),
)
def test_trajectory_psnr_scale_invariant_and_decreasing(true, eps, scale):
    if np.ptp(true) < 1e-3:
        return
    pred = true + eps
    base = trajectory_psnr(pred, true)
    # uniform error eps: PSNR = 20 log10(R / eps)
    assert base == pytest.approx(20 * math.log10(np.ptp(true) / eps), abs=1e-9)
    assert trajectory_psnr(scale * pred, scale * true) == pytest.approx(base, abs=1e-9)
    assert trajectory_psnr(true + 2 * eps, true) < base


def test_energy_drift_linear():
    energies = 1.0 + 0.01 * np.arange(11)  # e(t) = 0.01 k
    d = energy_drift(energies)
    assert d["max"] == pytest.approx(0.1)
    assert d["final"] == pytest.approx(0.1)
    assert d["slope"] == pytest.approx(0.01)
    assert d["half_ratio"] == pytest.approx(0.1 / 0.05)
    d_t = energy_drift(energies, t=0.5 * np.arange(11))
    assert d_t["slope"] == pytest.approx(0.02)


def test_energy_drift_bounded_oscillation_and_negative_energy():
    k = np.arange(201)
    energies = -2.0 * (1.0 + 1e-3 * np.sin(0.3 * k) ** 2)
    d = energy_drift(energies)
    assert d["max"] == pytest.approx(1e-3, rel=1e-3)
    assert 0.99 < d["half_ratio"] < 1.01
    assert abs(d["slope"]) < 1e-6


def test_energy_drift_from_trajectory_and_hamiltonian():
    traj = torch.tensor([[[1.0, 0.0], [0.0, 1.1], [0.9, 0.0]]], dtype=torch.float64)
    d = energy_drift(traj, lambda x: (x**2).sum(-1))
    # H = 1, 1.21, 0.81: e = 0, 0.21, 0.19
    assert d["max"][0] == pytest.approx(0.21)
    assert d["final"][0] == pytest.approx(0.19)
    assert d["half_ratio"][0] == pytest.approx(0.19 / 0.21)


def test_energy_drift_zero_initial_energy_is_an_error():
    with pytest.raises(ValueError, match="H\\(x_0\\) = 0"):
        relative_energy_error(np.array([0.0, 1.0]))


def test_energy_drift_exact_conservation():
    d = energy_drift(np.full((2, 5), 3.0))
    assert np.all(d["max"] == 0.0) and np.all(d["half_ratio"] == 1.0)


def test_valid_prediction_time_hand_computed():
    t = np.linspace(0.0, 4.0, 5)
    true = np.ones((5, 2))  # mean_t |x|^2 = 2
    pred = true.copy()
    pred[3] += np.array([0.3, 0.0])  # 0.09 / 2 = 0.045 > 0.025 at t = 3
    pred[2] += np.array([0.2, 0.0])  # 0.04 / 2 = 0.02 <= 0.025
    time, frac = valid_prediction_time(pred, true, t)
    assert time == pytest.approx(3.0) and frac == pytest.approx(0.75)
    time, frac = valid_prediction_time(true, true, t)
    assert time == pytest.approx(4.0) and frac == pytest.approx(1.0)
    times, fracs = valid_prediction_time(np.stack([pred, true]), np.stack([true, true]), t)
    assert times.tolist() == [3.0, 4.0] and fracs.tolist() == [0.75, 1.0]


def test_valid_prediction_time_threshold_and_time_offset():
    t = np.array([10.0, 11.0, 12.0])
    true = np.ones((3, 1))
    pred = true + np.array([[0.0], [0.1], [0.2]])  # errors 0, 0.01, 0.04
    assert valid_prediction_time(pred, true, t, threshold=0.005)[0] == pytest.approx(1.0)
    assert valid_prediction_time(pred, true, t, threshold=0.02)[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="threshold"):
        valid_prediction_time(pred, true, t, threshold=0.0)


def test_energy_mse_hand_computed():
    assert energy_mse([1.0, 2.0, 3.0], [1.0, 2.5, 2.0]) == pytest.approx((0.25 + 1.0) / 3)
    batch = energy_mse(np.ones((2, 4)), np.array([[1.0] * 4, [3.0] * 4]))
    assert batch.tolist() == [0.0, 4.0]


def test_relative_error_geomean_hand_computed():
    true = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    pred = np.array([[1.0, 0.0], [1.5, 0.0], [3.0, 0.0]])
    # t=1: 0.5/2.5 = 0.2, t=2: 2/4 = 0.5, geometric mean sqrt(0.1)
    assert relative_error_geomean(pred, true) == pytest.approx(math.sqrt(0.1))
    assert relative_error_geomean(pred, true, skip_initial=False) == 0.0


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        trajectory_psnr(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        energy_mse(np.zeros(3), np.zeros(4))
