"""Dynamics training: learning, exact resume, divergence, targets, batching, bad input."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from hamgrad.checkpoints import load_checkpoint
from hamgrad.cli import main
from hamgrad.errors import CheckpointError, DataFormatError, DivergenceError
from hamgrad.models import build_model
from hamgrad.train import (
    EpochSampler,
    TrainConfig,
    finite_difference_derivatives,
    learning_rate,
    load_trained,
    load_training_data,
    train_dynamics,
)


@pytest.fixture(scope="module")
def spring_data(small_dataset):
    return small_dataset("spring-mass", n_trajectories=16, n_steps=30)


@pytest.fixture(scope="module")
def fields_file(tmp_path_factory):
    from hamgrad.datasets import generate_fields

    path = tmp_path_factory.mktemp("data") / "fields.h5"
    generate_fields("convex-2d", path, n_samples=50, seed=0, progress=False)
    return path


def _state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_derivative_training_learns(spring_data, tmp_path):
    result = train_dynamics(
        spring_data,
        tmp_path / "run",
        model="mgradnet-c",
        separable=True,
        width=16,
        steps=300,
        batch_size=64,
        lr=1e-2,
        log_every=50,
        progress=False,
    )
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.05 * losses[0], losses
    assert result.history[-1]["val_loss"] < 0.05 * losses[0]
    run = tmp_path / "run"
    assert (run / "config.json").is_file() and (run / "checkpoint.pt").is_file()
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,loss,lr,val_loss,elapsed_s" and len(lines) == 1 + 6
    model, config = load_trained(run)
    assert _state_dicts_equal(model.state_dict(), result.model.state_dict())
    assert config["train"]["model"] == "mgradnet-c" and config["data"]["dof"] == 1


@pytest.mark.parametrize(
    "settings",
    [
        {"model": "gradnet-c", "separable": True, "input_noise": 0.05, "batch_size": 50},
        {"model": "hnn", "loss": "rollout", "rollout_steps": 3, "batch_size": 40},
        {"model": "gradnet-m", "noise_extrapolation": 0.05, "batch_size": 50},
        {"model": "gradnet-c", "separable": True, "denoise_states": True, "batch_size": 50},
    ],
    ids=["derivative-noise", "rollout-hnn", "noise-extrapolation", "denoise-states"],
)
def test_resume_is_bit_identical(spring_data, tmp_path, settings):
    common = dict(width=8, steps=40, lr=3e-3, checkpoint_every=10, log_every=5, seed=3)
    straight = train_dynamics(spring_data, tmp_path / "a", progress=False, **common, **settings)

    def interrupt(step, loss):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_dynamics(
            spring_data, tmp_path / "b", progress=False, callback=interrupt, **common, **settings
        )
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 20
    resumed = train_dynamics(spring_data, tmp_path / "b", resume=True, progress=False)
    assert resumed.steps_done == 40
    assert _state_dicts_equal(straight.model.state_dict(), resumed.model.state_dict())
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert _state_dicts_equal(a["model"], b["model"])
    assert [r["step"] for r in resumed.history] == list(range(5, 45, 5))
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_resume_through_the_cli(spring_data, tmp_path, capsys):
    run = str(tmp_path / "run")
    args = [
        "train", str(spring_data), "--model", "gradnet-m", "--width", "4", "--steps", "12",
        "--checkpoint-every", "6", "--out", run, "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    assert main(["train", str(spring_data), "--out", run, "--resume", "--quiet"]) == 0
    assert "12 steps" in capsys.readouterr().out
    assert main(args) == 2  # a second fresh run into the same directory is refused
    assert "--resume" in capsys.readouterr().err


def test_divergence_keeps_last_good_checkpoint(spring_data, tmp_path):
    run = tmp_path / "run"
    lrs = {}

    def boom(step, loss):
        lrs[step] = loss
        if step == 7:  # wreck the weights: the next loss is not finite
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(float("nan"))

    model = build_model("mlp", 2, width=8)
    from hamgrad.hamiltonian import VectorFieldModel

    model = VectorFieldModel(model)
    with pytest.raises(DivergenceError, match="step 8.*last good checkpoint"):
        train_dynamics(
            spring_data,
            run,
            module=model,
            model="mlp",
            width=8,
            steps=20,
            checkpoint_every=2,
            progress=False,
            callback=boom,
        )
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 6
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_finite_difference_targets_match_analytic(spring_data):
    analytic = load_training_data(spring_data, "train", "analytic")
    fd = load_training_data(spring_data, "train", "finite-difference")
    scale = np.abs(analytic.dxdt).max()
    err = np.abs(fd.dxdt - analytic.dxdt).max() / scale
    assert err < 2e-2  # second-order differences at dt = 0.1 on a unit-frequency oscillator
    t = np.linspace(0.0, 1.0, 11)
    x = np.stack([t**2, 3 * t - 1], axis=-1)[None]  # exact for quadratics
    d = finite_difference_derivatives(x, t)
    np.testing.assert_allclose(d[0, :, 0], 2 * t, atol=1e-12)
    np.testing.assert_allclose(d[0, :, 1], 3.0, atol=1e-12)


def test_training_from_trajectories_alone(spring_data, tmp_path):
    losses = []
    train_dynamics(
        spring_data, tmp_path / "run", model="hnn", width=16, steps=150, batch_size=64,
        lr=1e-2, targets="finite-difference", progress=False,
        callback=lambda step, loss: losses.append(loss),
    )  # fmt: skip
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


def test_epoch_sampler_visits_every_sample_once_per_epoch():
    s = EpochSampler(10, 3, seed=1)
    epoch0 = torch.cat([s.indices(k) for k in range(3)])
    assert len(set(epoch0.tolist())) == 9
    again = EpochSampler(10, 3, seed=1)
    assert torch.equal(again.indices(4), s.indices(4))  # a function of (seed, step) only
    assert not torch.equal(
        EpochSampler(10, 3, seed=2).indices(0), EpochSampler(10, 3, 1).indices(0)
    )
    full = EpochSampler(5, 100, seed=0)
    assert torch.equal(full.indices(7), torch.arange(5))


def test_learning_rate_schedules():
    c = TrainConfig(model="hnn", steps=100, lr=1.0, schedule="cosine", lr_final_factor=0.0)
    assert learning_rate(0, c) == 1.0
    assert learning_rate(50, c) == pytest.approx(0.5)
    assert learning_rate(100, c) == pytest.approx(0.0, abs=1e-15)
    s = TrainConfig(model="hnn", steps=100, lr=1.0, schedule="step")
    assert [learning_rate(k, s) for k in (0, 49, 50, 75)] == pytest.approx([1, 1, 0.1, 0.01])
    w = TrainConfig(model="hnn", steps=100, lr=1.0, schedule="constant", warmup_steps=4)
    assert [learning_rate(k, w) for k in (0, 3, 4, 99)] == [0.25, 1.0, 1.0, 1.0]
    assert math.isclose(learning_rate(10, TrainConfig(model="hnn", schedule="constant")), 1e-3)


def test_bad_config_values():
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(model="hnn", loss="adjoint")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(model="hnn", steps=0)
    with pytest.raises(ValueError, match="mlp"):
        TrainConfig(model="mlp", separable=True)


def test_fields_file_is_refused(fields_file, tmp_path, capsys):
    with pytest.raises(DataFormatError, match="gradient-field dataset"):
        train_dynamics(fields_file, tmp_path / "run", model="hnn", steps=2, progress=False)
    code = main(["train", str(fields_file), "--model", "hnn", "--out", str(tmp_path / "r2")])
    err = capsys.readouterr().err
    assert code == 2 and "gradient-field" in err and len(err.strip().splitlines()) == 1


def test_foreign_and_missing_files(tmp_path, spring_data):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataFormatError, match="not a hamgrad trajectory dataset"):
        train_dynamics(foreign, tmp_path / "run", model="hnn", progress=False)
    with pytest.raises(FileNotFoundError):
        train_dynamics(tmp_path / "nope.h5", tmp_path / "run", model="hnn", progress=False)


def test_model_dimension_must_match_data(spring_data, tmp_path):
    from hamgrad.hamiltonian import build_hamiltonian

    wrong = build_hamiltonian("hnn", 2, width=8)  # dof 2, the spring has dof 1
    with pytest.raises(ValueError, match="dimension 4 does not match"):
        train_dynamics(spring_data, tmp_path / "run", module=wrong, model="hnn", progress=False)


def test_missing_foreign_and_corrupt_runs(spring_data, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="does not exist"):
        train_dynamics(spring_data, tmp_path / "missing", resume=True, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a hamgrad run"):
        load_trained(foreign)
    with pytest.raises(CheckpointError, match="non-empty directory"):
        train_dynamics(spring_data, foreign, model="hnn", progress=False)

    run = tmp_path / "run"
    train_dynamics(spring_data, run, model="hnn", width=4, steps=3, progress=False)
    (run / "checkpoint.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_trained(run)
    with pytest.raises(CheckpointError, match="corrupt"):
        train_dynamics(spring_data, run, resume=True, steps=6, progress=False)
    code = main(["evaluate", str(run), "--data", str(spring_data)])
    err = capsys.readouterr().err
    assert code == 2 and "corrupt" in err and len(err.strip().splitlines()) == 1
    code = main(["evaluate", str(tmp_path / "missing"), "--data", str(spring_data)])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_resume_with_contradicting_settings_is_refused(spring_data, tmp_path):
    run = tmp_path / "run"
    train_dynamics(spring_data, run, model="hnn", width=4, steps=3, progress=False)
    with pytest.raises(CheckpointError, match="model='hnn'"):
        train_dynamics(spring_data, run, resume=True, model="mlp", progress=False)
