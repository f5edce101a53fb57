"""Evaluation: an exact model scores perfectly, the CLI writes metrics and figures, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from hamgrad.cli import main
from hamgrad.evaluation import eval_protocol, evaluate_model
from hamgrad.systems import get_system
from hamgrad.train import train_dynamics


class ExactHamiltonian(nn.Module):
    """A 'learned' separable Hamiltonian that is the true system (for checking the pipeline)."""

    separable = True
    conservative = True

    def __init__(self, system):
        super().__init__()
        self.system = system
        self.dof, self.dim = system.dof, system.dim
        self.dummy = nn.Parameter(torch.zeros(()))

    def grad_q(self, q):
        return self.system.grad_q(q)

    def grad_p(self, p):
        return self.system.grad_p(p)

    def grad(self, x):
        return self.system.grad(x)

    def energy(self, x):
        return self.system.hamiltonian(x)


@pytest.fixture(scope="module")
def spring_data(small_dataset):
    return small_dataset("spring-mass", n_trajectories=12, n_steps=20)


@pytest.fixture(scope="module")
def spring_run(spring_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    train_dynamics(
        spring_data, run, model="mgradnet-c", separable=True, width=8, steps=60, lr=1e-2,
        progress=False,
    )  # fmt: skip
    return run


def test_exact_model_scores_perfectly():
    system = get_system("two-body")
    x0 = system.sample_initial(3, seed=5)
    result = evaluate_model(
        ExactHamiltonian(system), system, x0, 0.05, 200, substeps=4, model_energy=True
    )
    m = result.metrics
    assert m["psnr_db"]["min"] > 100
    assert m["energy_mse"]["max"] < 1e-16
    assert m["valid_fraction"]["min"] == 1.0
    assert m["energy_drift_max"]["max"] < 1e-8
    assert m["model_energy_drift_max"]["max"] < 1e-8
    assert result.pred.shape == result.true.shape == (3, 201, 8)
    assert result.integrator == "yoshida4"


def test_joint_model_uses_adaptive_integrator(spring_data):
    from hamgrad.hamiltonian import build_hamiltonian

    model = build_hamiltonian("hnn", 1, width=8, seed=0)
    system, x0, dt, n = eval_protocol(spring_data, n_eval=2, horizon=1.0)
    result = evaluate_model(model, system, x0, dt, n)
    assert result.integrator == "dopri5"
    assert result.pred.dtype == np.float64
    assert result.pred.shape == (2, n + 1, 2)


def test_eval_protocols(spring_data, tmp_path):
    from hamgrad.datasets import generate

    system, x0, dt, n = eval_protocol(spring_data)
    assert x0.shape == (3, 2) and dt == pytest.approx(0.1) and n == 20
    _, x0h, dth, nh = eval_protocol(spring_data, horizon=5.0, dt=0.25, n_eval=2)
    assert x0h.shape == (2, 2) and dth == 0.25 and nh == 20
    path = tmp_path / "tb.h5"
    generate("two-body", path, preset="hnn", n_trajectories=5, seed=0, progress=False)
    system, x0, dt, n = eval_protocol(path, protocol="preset")
    assert x0.shape == (15, 8) and n == 499 and dt * n == pytest.approx(25.0)
    with pytest.raises(ValueError, match="not generated from a preset"):
        eval_protocol(spring_data, protocol="preset")


def test_evaluate_cli_writes_metrics_and_figures(spring_run, spring_data, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(
        ["evaluate", str(spring_run), "--data", str(spring_data), "--horizon", "3",
         "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "trajectory PSNR" in printed and "energy MSE" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"]["n_trajectories"] == 3
    assert metrics["metrics"]["horizon"] == pytest.approx(3.0)
    assert len(metrics["per_trajectory"]["psnr_db"]) == 3
    for name in ("phase_portraits.png", "energy_error.png", "state_error.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("horizon", ["0", "-1"])
def test_nonpositive_horizon_is_refused(spring_run, spring_data, horizon, capsys):
    code = main(["evaluate", str(spring_run), "--data", str(spring_data), "--horizon", horizon])
    err = capsys.readouterr().err
    assert code == 2 and "horizon" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="horizon"):
        eval_protocol(spring_data, horizon=float(horizon))


def test_dimension_mismatch_is_refused(spring_run, tmp_path, capsys):
    from hamgrad.datasets import generate

    path = tmp_path / "tb.h5"
    generate("two-body", path, n_trajectories=10, n_steps=5, dt=0.1, seed=0, progress=False)
    code = main(["evaluate", str(spring_run), "--data", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "dimension 2" in err and "dimension 8" in err
