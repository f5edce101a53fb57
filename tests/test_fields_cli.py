"""``hamgrad fields`` and the protocol plans behind it (tiny runs; the real ones are benchmarks)."""

from __future__ import annotations

import json

import pytest
import torch

import hamgrad.systems.fields  # noqa: F401  (registers the fields)
from hamgrad.cli import main
from hamgrad.field_protocols import PUBLISHED, apply_init, make_plan, run_plan, summarise
from hamgrad.models import build_model, count_params


def test_paper_plans_follow_the_published_protocols():
    plan = make_plan("convex-2d", "mgradnet-c")
    assert plan.train == {
        "mode": "fixed",
        "n_train": 100_000,
        "n_val": 10_000,
        "batch_size": 1000,
        "steps": 20_000,
        "val_every": 100,
        "select_best": True,
    }
    assert plan.lrs == (5e-3,) and plan.trials == 5
    assert plan.evaluation == {"kind": "grid", "points_per_axis": 100}
    pm = make_plan("polymax", "mgradnet-m", dim=256)
    assert pm.train == {"mode": "fresh", "steps": 10_000, "batch_size": 100, "n_val": 0}
    assert pm.lrs == (1e-2, 1e-3, 1e-4)
    assert pm.evaluation == {"kind": "fresh", "sets": 15, "points": 10_000}
    assert pm.model_options == {"param_budget": 256 * 1024}


@pytest.mark.parametrize(
    ("model", "params"),
    [("mgradnet-c", 100), ("mgradnet-m", 94), ("gradnet-c", 100), ("gradnet-m", 94)],
)
def test_paper_small_2d_models_have_the_published_parameter_counts(model, params):
    plan = make_plan("nonconvex-2d", model)
    assert count_params(build_model(model, 2, **plan.model_options)) == params


def test_tuned_plans_keep_budget_and_samples_seen():
    for field, dim, model in [("convex-2d", None, "mgradnet-m"), ("polymax", 32, "mgradnet-c")]:
        paper = make_plan(field, model, dim=dim, protocol="paper")
        tuned = make_plan(field, model, dim=dim, protocol="tuned")
        assert tuned.model_options == paper.model_options
        seen = lambda p: p.train["steps"] * p.train["batch_size"]  # noqa: E731
        assert seen(tuned) == seen(paper)
        assert tuned.train.get("n_train") == paper.train.get("n_train")


def test_apply_init_scales_and_fills_named_parameters():
    model = torch.nn.Linear(3, 2)
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    apply_init(model, {"scale": {"weight": 3.0}, "fill": {"bias": 0.25}})
    torch.testing.assert_close(model.weight.detach(), 3 * w)
    assert torch.all(model.bias == 0.25) and not torch.equal(b, model.bias.detach())
    with pytest.raises(ValueError, match="no parameter 'gain'"):
        apply_init(model, {"scale": {"gain": 2.0}})
    with pytest.raises(ValueError, match="unknown init keys"):
        apply_init(model, {"shift": {"bias": 1.0}})


def test_apply_init_spread_gives_evenly_spaced_directions_and_keeps_norms():
    model = torch.nn.Module()
    model.weight = torch.nn.Parameter(torch.randn(2, 3, 2, dtype=torch.float64))
    norms = model.weight.detach().norm(dim=-1)
    apply_init(model, {"spread": {"weight": 2.0}})
    w = model.weight.detach()
    torch.testing.assert_close(w.norm(dim=-1), 2 * norms)
    angles = torch.rad2deg(torch.atan2(w[..., 1], w[..., 0]))
    # six rows over half a turn, 30 degrees apart, the two blocks interleaved
    expected = torch.tensor([[15.0, 75.0, 135.0], [45.0, 105.0, 165.0]], dtype=torch.float64)
    torch.testing.assert_close(angles, expected)
    model.other = torch.nn.Parameter(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="2-D input weight"):
        apply_init(model, {"spread": {"other": 1.0}})


def test_overrides():
    plan = make_plan("convex-2d", "hnn", trials=2, lr=1e-3, steps=30)
    assert plan.trials == 2 and plan.lrs == (1e-3,) and plan.train["steps"] == 30
    assert plan.train["val_every"] == 30
    assert plan.model_options == {"param_budget": 100}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"field": "polymax", "model": "hnn", "dim": 1}, ValueError, ">= 2"),
        ({"field": "polymax", "model": "hnn"}, ValueError, "--dim"),
        ({"field": "convex-2d", "model": "hnn", "dim": 3}, ValueError, "two-dimensional"),
        ({"field": "sphere", "model": "hnn"}, ValueError, "convex-2d, nonconvex-2d, polymax"),
        ({"field": "convex-2d", "model": "resnet"}, ValueError, "mgradnet-c"),
        ({"field": "convex-2d", "model": "hnn", "protocol": "fast"}, ValueError, "paper, tuned"),
        ({"field": "convex-2d", "model": "hnn", "trials": 0}, ValueError, "trials"),
        ({"field": "convex-2d", "model": "hnn", "lr": -0.1}, ValueError, "lr"),
        ({"field": "convex-2d", "model": "hnn", "steps": 0}, ValueError, "steps"),
    ],
)
def test_bad_plans_are_refused(kwargs, error, match):
    field, model = kwargs.pop("field"), kwargs.pop("model")
    with pytest.raises(error, match=match):
        make_plan(field, model, **kwargs)


def test_run_plan_summarises_and_compares_with_the_published_figure():
    plan = make_plan("convex-2d", "mgradnet-c", trials=2, steps=20)
    plan.train["n_train"] = 2000
    plan.train["n_val"] = 500
    result = run_plan(plan, progress=False)
    assert result["published_mean_db"] == PUBLISHED[("convex-2d", 2, "mgradnet-c")][0]
    assert [t["seed"] for t in result["trials"]] == [0, 42]
    values = [t["error_db"] for t in result["trials"]]
    assert result["mean_db"] == pytest.approx(sum(values) / 2)
    assert result["delta_db"] == pytest.approx(result["mean_db"] + 49.05)
    assert result["beats_by_3db"] is False  # 20 steps cannot reach the published figure
    assert result["params"] == 100


def test_summarise_pools_test_sets_when_there_are_several():
    trials = [
        {"error_db": 1.5, "set_errors_db": [1.0, 2.0]},
        {"error_db": 3.5, "set_errors_db": [3.0, 4.0]},
    ]
    mean, std = summarise(trials)
    assert mean == pytest.approx(2.5) and std == pytest.approx(
        torch.tensor([1.0, 2, 3, 4]).std(correction=0).item()
    )
    mean, std = summarise(
        [{"error_db": 1.0, "set_errors_db": [1.0]}, {"error_db": 3.0, "set_errors_db": [3.0]}]
    )
    assert mean == 2.0 and std == 1.0


def test_cli_tiny_run_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "fields.json"
    code = main(
        [
            "fields",
            "--field",
            "polymax",
            "--dim",
            "3",
            "--model",
            "mgradnet-m,hnn",
            "--steps",
            "3",
            "--lr",
            "1e-3",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "mgradnet-m" in captured.out and "hnn" in captured.out and "published" in captured.out
    assert "trial 0" in captured.err
    data = json.loads(out.read_text())
    assert data["format"] == "hamgrad-fields-results"
    cells = {(r["model"], r["dim"]) for r in data["results"]}
    assert cells == {("mgradnet-m", 3), ("hnn", 3)}
    r = data["results"][0]
    assert len(r["trials"][0]["set_errors_db"]) == 15
    # the file doubles as a benchmark table: one summary row per result
    assert data["benchmark"] == "fields"
    assert [row["ours"] for row in data["rows"]] == [
        round(x["mean_db"], 2) for x in data["results"]
    ]
    assert all(row["peer"] is None and row["met"] is None for row in data["rows"])
    assert r["command"].startswith("hamgrad fields --field polymax --dim 3")

    # a second run adds its cell and keeps the others
    code = main(
        [
            "fields",
            "--field",
            "convex-2d",
            "--model",
            "mlp",
            "--steps",
            "2",
            "--trials",
            "1",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert {(r["model"], r["field"]) for r in data["results"]} == {
        ("mgradnet-m", "polymax"),
        ("hnn", "polymax"),
        ("mlp", "convex-2d"),
    }


def test_cli_refuses_to_overwrite_a_foreign_json(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text('{"something": "else"}')
    code = main(
        ["fields", "--field", "convex-2d", "--model", "mlp", "--steps", "1", "--json", str(other)]
    )
    assert code == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert other.read_text() == '{"something": "else"}'


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--field", "nope", "--model", "hnn"], "choose one of: convex-2d, nonconvex-2d, polymax"),
        (["--field", "convex-2d", "--model", "nope"], "choose one of: gradnet-c"),
        (["--field", "polymax", "--dim", "1", "--model", "hnn"], "dim must be an integer >= 2"),
        (["--field", "convex-2d", "--model", "hnn", "--protocol", "best"], "paper, tuned"),
        (["--field", "convex-2d", "--model", " , "], "at least one model"),
    ],
)
def test_cli_bad_inputs_give_one_line_and_exit_2(argv, match, capsys):
    assert main(["fields", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_paper_protocol_trial_reaches_the_published_range():
    # One full paper-protocol trial of mGradNet-C on the convex field (20,000 steps).
    plan = make_plan("convex-2d", "mgradnet-c", trials=1)
    result = run_plan(plan, progress=False)
    mean, std = PUBLISHED[("convex-2d", 2, "mgradnet-c")]
    assert result["mean_db"] < mean + 3 * std


def test_cli_threads_option_sets_torch_threads_and_refuses_zero(capsys):
    import torch

    base = ["fields", "--field", "convex-2d", "--model", "mlp", "--steps", "1", "--trials", "1"]
    before = torch.get_num_threads()
    try:
        assert main([*base, "--no-progress", "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    assert main([*base, "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--threads must be a positive integer, got 0" in err


def test_tuned_polymax_learning_rates_fall_with_dimension():
    """Three peak rates per model, three times lower from d = 1024."""
    for model, low_d, high_d in [
        ("mgradnet-m", (3e-2, 1e-2, 3e-3), (1e-2, 3e-3, 1e-3)),
        ("mgradnet-c", (1e-2, 3e-3, 1e-3), (3e-3, 1e-3, 3e-4)),
    ]:
        assert make_plan("polymax", model, dim=256, protocol="tuned").lrs == low_d
        assert make_plan("polymax", model, dim=1024, protocol="tuned").lrs == high_d
