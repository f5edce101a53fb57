"""Comparison: every model trained and evaluated alike, table and figures written."""

from __future__ import annotations

import json

import pytest

from hamgrad.cli import main
from hamgrad.comparison import ModelSpec, compare_models, parse_model_spec
from hamgrad.train import load_trained


@pytest.fixture(scope="module")
def pendulum_data(small_dataset):
    return small_dataset("pendulum", n_trajectories=12, n_steps=20)


def test_parse_model_spec():
    assert parse_model_spec("gradnet-m") == ModelSpec("gradnet-m", False)
    assert parse_model_spec("gradnet-m", separable=True) == ModelSpec("gradnet-m", True)
    assert parse_model_spec("gradnet-c:joint", separable=True) == ModelSpec("gradnet-c", False)
    assert parse_model_spec("hnn", separable=True) == ModelSpec("hnn", False)
    assert parse_model_spec("hnn:separable").label == "hnn"
    assert parse_model_spec("mgradnet-c:separable").label == "mgradnet-c-separable"
    with pytest.raises(ValueError, match="unknown model structure"):
        parse_model_spec("gradnet-m:diagonal")
    with pytest.raises(ValueError, match="mlp"):
        parse_model_spec("mlp:separable")
    with pytest.raises(ValueError, match="unknown model"):
        parse_model_spec("transformer")


def test_compare_models_same_settings_and_outputs(pendulum_data, tmp_path):
    report = compare_models(
        pendulum_data,
        ["gradnet-c", "hnn", "mlp"],
        tmp_path / "cmp",
        separable=True,
        param_budget=600,
        steps=15,
        lr=3e-3,
        horizon=2.0,
        n_eval=2,
        progress=False,
        log=None,
    )
    rows = {r["label"]: r for r in report["rows"]}
    assert list(rows) == ["gradnet-c-separable", "hnn", "mlp"]
    for r in rows.values():
        assert r["n_params"] <= 600 and r["steps"] == 15
        s = r["settings"]
        assert (s["param_budget"], s["lr"], s["steps"], s["batch_size"]) == (600, 3e-3, 15, 200)
        assert r["test_loss"] is not None and r["psnr_mean"] == r["metrics"]["psnr_db"]["mean"]
    assert rows["gradnet-c-separable"]["integrator"] == "yoshida4"
    assert rows["hnn"]["integrator"] == rows["mlp"]["integrator"] == "dopri5"
    out = tmp_path / "cmp"
    stored = json.loads((out / "compare.json").read_text())
    assert stored["evaluation"]["n_trajectories"] == 2
    assert "| gradnet-c-separable |" in (out / "compare.md").read_text()
    for name in ("phase_portraits.png", "energy_error.png", "state_error.png", "psnr.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

    # a second call reuses the finished runs (no retraining) and gives the same numbers
    again = compare_models(
        pendulum_data, ["gradnet-c", "hnn", "mlp"], out, separable=True, param_budget=600,
        steps=15, lr=3e-3, horizon=2.0, n_eval=2, progress=False, log=None, figures=False,
    )  # fmt: skip
    assert [r["psnr_mean"] for r in again["rows"]] == [r["psnr_mean"] for r in report["rows"]]

    # runs written before a setting existed (absent from their config.json) count as its default
    for run in (out / "runs").iterdir():
        config = json.loads((run / "config.json").read_text())
        del config["train"]["noise_extrapolation"]
        (run / "config.json").write_text(json.dumps(config))
    older = compare_models(
        pendulum_data, ["gradnet-c", "hnn", "mlp"], out, separable=True, param_budget=600,
        steps=15, lr=3e-3, horizon=2.0, n_eval=2, progress=False, log=None, figures=False,
    )  # fmt: skip
    assert [r["psnr_mean"] for r in older["rows"]] == [r["psnr_mean"] for r in report["rows"]]


def test_compare_cli(pendulum_data, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        ["compare", str(pendulum_data), "--models", "mgradnet-m:separable,mlp", "--width", "4",
         "--steps", "5", "--horizon", "1", "--n-eval", "2", "--out", str(out), "--quiet"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "mgradnet-m-separable" in printed and "PSNR" in printed
    assert (out / "compare.md").is_file()
    code = main(["compare", str(pendulum_data), "--models", "hnn,hnn", "--out", str(out)])
    assert code == 2 and "distinct" in capsys.readouterr().err
    denoised = tmp_path / "denoised"
    code = main(
        ["compare", str(pendulum_data), "--models", "hnn,mlp", "--width", "4", "--steps", "2",
         "--horizon", "1", "--n-eval", "2", "--denoise-states", "--out", str(denoised), "--quiet"]
    )  # fmt: skip
    assert code == 0
    for label in ("hnn", "mlp"):
        assert load_trained(denoised / "runs" / label)[1]["train"]["denoise_states"] is True
