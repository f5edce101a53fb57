"""The gradient-field trainer: both data regimes, best-weights restore, determinism, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hamgrad.systems.fields  # noqa: F401  (registers the fields)
from hamgrad.errors import DivergenceError
from hamgrad.field_training import (
    evaluate_field_error_db,
    fit_gradient_field,
    learning_rate_at,
    predict_field,
)
from hamgrad.systems import get_system
from hamgrad.train import fit_gradient_field as reexported

# A linear target field ∇F(x) = A x + b (F quadratic): an nn.Linear can fit it exactly.
A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
B = torch.tensor([0.3, -0.2], dtype=torch.float64)


def linear_grad(x: torch.Tensor) -> torch.Tensor:
    return x @ A.T.to(x.dtype) + B.to(x.dtype)


def unit_box(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 2, generator=generator, dtype=torch.float64)


def fit_linear(model: nn.Module, sample=unit_box, **options):
    """``fit_gradient_field`` on the linear target field (``sample`` defaults to the unit box)."""
    return fit_gradient_field(model, linear_grad, sample, **options)


def linear_model(seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(2, 2).to(dtype)


class Recorder(nn.Module):
    """A linear model that remembers the inputs of its training-mode forward calls."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2, dtype=torch.float64)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        if self.training:
            self.seen.append(x.detach().clone())
        return self.lin(x)


class ScalarGradModel(nn.Module):
    """An HNN-like model whose forward differentiates a scalar network (needs autograd)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x):
        if not x.requires_grad:
            x = x.requires_grad_(True)
        (g,) = torch.autograd.grad(self.net(x).sum(), x, create_graph=True)
        return g


def test_train_module_reexports_the_trainer():
    assert reexported is fit_gradient_field


def test_fixed_mode_fits_an_exact_target():
    model, history = fit_linear(
        linear_model(dtype=torch.float64),
        steps=1500,
        batch_size=50,
        lr=5e-2,
        mode="fixed",
        n_train=500,
        n_val=200,
        schedule="cosine",
        progress=False,
    )
    assert history["best_val_db"] < -100
    x = unit_box(1000, torch.Generator().manual_seed(9))
    assert evaluate_field_error_db(model, linear_grad, x) < -100


def test_fixed_mode_draws_the_data_once_and_visits_each_point_once_per_epoch():
    calls = []

    def counting_sample(n, generator):
        calls.append(n)
        return unit_box(n, generator)

    model = Recorder()
    fit_linear(
        model,
        counting_sample,
        steps=4,
        batch_size=30,
        lr=1e-3,
        mode="fixed",
        n_train=100,
        n_val=50,
        progress=False,
    )
    assert sorted(calls) == [50, 100]  # validation set and training set, nothing else
    sizes = [len(s) for s in model.seen]
    assert sizes == [30, 30, 30, 10]  # one epoch = ceil(100 / 30) steps, last batch kept
    epoch = torch.cat(model.seen)
    assert len(torch.unique(epoch, dim=0)) == 100


def test_fixed_mode_reshuffles_every_epoch():
    model = Recorder()
    fit_linear(
        model,
        steps=4,
        batch_size=10,
        lr=1e-3,
        mode="fixed",
        n_train=20,
        n_val=0,
        progress=False,
    )
    first, second = torch.cat(model.seen[:2]), torch.cat(model.seen[2:])
    assert torch.equal(torch.unique(first, dim=0), torch.unique(second, dim=0))
    assert not torch.equal(first, second)


def test_fresh_mode_draws_a_new_batch_every_step():
    calls = []

    def counting_sample(n, generator):
        calls.append(n)
        return unit_box(n, generator)

    model = Recorder()
    _, history = fit_linear(
        model,
        counting_sample,
        steps=7,
        batch_size=16,
        lr=1e-3,
        n_val=40,
        val_every=3,
        progress=False,
    )
    assert calls == [40] + [16] * 7
    assert len(torch.unique(torch.cat(model.seen), dim=0)) == 7 * 16
    assert history["step"] == [3, 6, 7]  # every val_every steps and always the last one


def test_history_contents():
    _, history = fit_linear(
        linear_model(),
        steps=20,
        batch_size=8,
        lr=1e-2,
        n_val=30,
        val_every=5,
        schedule="linear",
        warmup=2,
        final_lr_ratio=0.1,
        progress=False,
    )
    n = len(history["step"])
    assert n == 4
    for key in ("train_loss", "val_loss", "val_db", "lr", "time", "train_time"):
        assert len(history[key]) == n
    for loss, db in zip(history["val_loss"], history["val_db"], strict=True):
        assert db == pytest.approx(10 * math.log10(2 * loss))  # MSE per coordinate, d = 2
    assert history["best_val_db"] == min(history["val_db"])
    assert history["lr"][-1] == pytest.approx(1e-3)
    assert history["final_val_db"] == history["val_db"][-1]
    assert history["steps_done"] == 20
    assert all(b <= a + 1e-12 for a, b in zip(history["time"], history["train_time"], strict=True))
    assert history["config"]["schedule"] == "linear" and history["config"]["n_val"] == 30


def test_best_weights_are_restored():
    x_val = unit_box(300, torch.Generator().manual_seed(11))

    def sabotage(record):
        if record["step"] == 200:  # ruin the weights right after a good validation
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(3.0)

    for select_best in (True, False):
        model = linear_model(seed=1)
        _, history = fit_linear(
            model,
            steps=260,
            batch_size=32,
            lr=2e-2,
            x_val=x_val,
            val_every=20,
            select_best=select_best,
            callback=sabotage,
            progress=False,
        )
        assert history["best_step"] == 200
        assert history["final_val_db"] > history["best_val_db"] + 10
        measured = evaluate_field_error_db(model, linear_grad, x_val)
        expected = history["best_val_db"] if select_best else history["final_val_db"]
        assert measured == pytest.approx(expected, abs=1e-4)


def test_without_validation_the_final_weights_are_kept():
    model, history = fit_linear(
        linear_model(),
        steps=10,
        batch_size=8,
        lr=1e-2,
        n_val=0,
        val_every=10,
        progress=False,
    )
    assert history["best_step"] is None and history["val_db"] == [None]
    assert history["train_loss"][0] > 0


def test_deterministic_with_a_seed():
    def run(seed):
        model, history = fit_linear(
            linear_model(seed=3),
            steps=30,
            batch_size=10,
            lr=1e-2,
            mode="fixed",
            n_train=50,
            n_val=20,
            seed=seed,
            progress=False,
        )
        return model.state_dict(), history["val_db"]

    s1, h1 = run(5)
    s2, h2 = run(5)
    s3, h3 = run(6)
    assert h1 == h2
    for k in s1:
        assert torch.equal(s1[k], s2[k])
    assert h1 != h3


def test_dtype_argument_moves_the_model():
    model = linear_model(dtype=torch.float32)
    fit_linear(
        model,
        steps=3,
        batch_size=4,
        lr=1e-3,
        n_val=5,
        dtype=torch.float64,
        progress=False,
    )
    assert next(model.parameters()).dtype == torch.float64


def test_callback_can_stop_training():
    _, history = fit_linear(
        linear_model(),
        steps=100,
        batch_size=4,
        lr=1e-3,
        n_val=5,
        val_every=10,
        callback=lambda r: r["step"] >= 30,
        progress=False,
    )
    assert history["step"] == [10, 20, 30] and history["steps_done"] == 30


def test_progress_bar_goes_to_stderr(capsys):
    fit_linear(
        linear_model(),
        steps=5,
        batch_size=4,
        lr=1e-3,
        n_val=5,
        progress=True,
        desc="unit-test-bar",
    )
    captured = capsys.readouterr()
    assert "unit-test-bar" in captured.err and captured.out == ""
    fit_linear(
        linear_model(),
        steps=5,
        batch_size=4,
        lr=1e-3,
        n_val=5,
        progress=False,
        desc="unit-test-bar",
    )
    assert "unit-test-bar" not in capsys.readouterr().err


def test_learning_rate_schedules():
    assert learning_rate_at(0, 100, 1.0) == 1.0
    assert learning_rate_at(99, 100, 1.0, schedule="constant") == 1.0
    assert learning_rate_at(0, 101, 1.0, schedule="cosine") == pytest.approx(1.0)
    assert learning_rate_at(50, 101, 1.0, schedule="cosine") == pytest.approx(0.5)
    assert learning_rate_at(100, 101, 1.0, schedule="cosine", final_lr_ratio=0.1) == pytest.approx(
        0.1
    )
    assert learning_rate_at(100, 101, 2.0, schedule="linear") == pytest.approx(0.0)
    assert learning_rate_at(
        50, 101, 1.0, schedule="exponential", final_lr_ratio=0.01
    ) == pytest.approx(0.1)
    # warm-up: linear ramp to the peak, then the decay starts from the peak
    assert [learning_rate_at(s, 20, 1.0, schedule="cosine", warmup=4) for s in range(4)] == [
        0.25,
        0.5,
        0.75,
        1.0,
    ]
    assert learning_rate_at(4, 20, 1.0, schedule="cosine", warmup=4) == pytest.approx(1.0)


def test_trains_a_model_that_differentiates_in_its_forward():
    torch.manual_seed(0)
    model = ScalarGradModel()
    _, history = fit_linear(
        model,
        steps=50,
        batch_size=32,
        lr=1e-2,
        n_val=100,
        progress=False,
    )
    assert history["val_db"][-1] < history["val_db"][0]
    x = unit_box(10, torch.Generator().manual_seed(0))
    pred = predict_field(model, x)
    assert pred.shape == (10, 2) and not pred.requires_grad


def test_evaluate_field_error_db():
    field = get_system("nonconvex-2d")
    x = field.grid(20)

    class Exact(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))

        def forward(self, x):
            return field.grad(x) + self.w

    class Zero(Exact):
        def forward(self, x):
            return 0 * x + self.w

    assert evaluate_field_error_db(Exact(), field.grad, x) == -math.inf
    expected = 10 * math.log10(float((field.grad(x) ** 2).sum(-1).mean()))
    assert evaluate_field_error_db(Zero(), field.grad, x) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="x must be"):
        evaluate_field_error_db(Zero(), field.grad, torch.zeros(0, 2))


def test_divergence_is_reported_with_the_step():
    def bad_grad(x):
        out = linear_grad(x)
        out[0, 0] = math.inf
        return out

    with pytest.raises(DivergenceError, match="step 1 "):
        fit_gradient_field(
            linear_model(),
            bad_grad,
            unit_box,
            steps=5,
            batch_size=4,
            lr=1e-3,
            n_val=0,
            progress=False,
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": math.nan}, ValueError, "lr"),
        ({"mode": "online"}, ValueError, "fresh, fixed"),
        ({"mode": "fixed"}, ValueError, "n_train is required"),
        ({"n_train": 100}, ValueError, "n_train applies"),
        ({"schedule": "cosin"}, ValueError, "cosine"),
        ({"warmup": 10}, ValueError, "warmup"),
        ({"final_lr_ratio": 2.0}, ValueError, "final_lr_ratio"),
        ({"schedule": "exponential"}, ValueError, "final_lr_ratio"),
        ({"n_val": -1}, ValueError, "n_val"),
        ({"val_every": 0}, ValueError, "val_every"),
        ({"x_val": torch.zeros(0, 2)}, ValueError, "x_val"),
        ({"dtype": torch.float16}, ValueError, "dtype"),
        ({"betas": (0.9,)}, ValueError, "betas"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"seed": -1}, ValueError, "seed"),
        ({"callback": 3}, TypeError, "callback"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    args = {"steps": 10, "batch_size": 4, "lr": 1e-3, "progress": False}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fit_gradient_field(linear_model(), linear_grad, unit_box, **args)


def test_bad_callables_are_refused():
    args = {"steps": 2, "batch_size": 4, "lr": 1e-3, "n_val": 0, "progress": False}
    with pytest.raises(TypeError, match="model"):
        fit_gradient_field(lambda x: x, linear_grad, unit_box, **args)
    with pytest.raises(TypeError, match="grad_fn"):
        fit_gradient_field(linear_model(), None, unit_box, **args)
    with pytest.raises(ValueError, match="sample_fn"):
        fit_gradient_field(linear_model(), linear_grad, lambda n, g: torch.zeros(n + 1, 2), **args)
    with pytest.raises(ValueError, match="grad_fn"):
        fit_gradient_field(linear_model(), lambda x: x[:, :1], unit_box, **args)
