"""The demo end to end at a toy size (the full demo is `make demo`)."""

from __future__ import annotations

import json

from hamgrad.cli import main


def test_demo_runs_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--steps", "4", "--n-trajectories", "20", "--n-eval", "2",
            "--param-budget", "1500", "--quiet"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "instead of HNN's 10000" in printed  # says it trains fewer steps than HNN's budget
    assert "gradnet-c-separable" in printed and "GradNet vs HNN" in printed
    report = json.loads((out / "compare.json").read_text())
    assert [r["label"] for r in report["rows"]] == ["gradnet-c-separable", "hnn", "mlp"]
    assert {r["steps"] for r in report["rows"]} == {4}
    assert all(r["n_params"] <= 1500 for r in report["rows"])
    assert report["evaluation"]["n_steps"] == 499  # HNN's t in [0, 25] at 500 points
    for name in ("phase_portraits.png", "energy_error.png", "state_error.png", "compare.md"):
        assert (out / name).is_file()

    # a rerun reuses the dataset and the finished runs; other settings need --fresh
    assert main(args) == 0
    assert "reusing" in capsys.readouterr().out
    changed = [a if a != "4" else "5" for a in args]
    assert main(changed) == 2
    assert "--fresh" in capsys.readouterr().err
    assert main(changed + ["--fresh"]) == 0


def test_demo_refuses_bad_sizes_before_writing_anything(tmp_path, capsys):
    for option, value in (("--n-trajectories", "0"), ("--steps", "-3"), ("--n-eval", "0")):
        out = tmp_path / f"demo{option}"
        assert main(["demo", "--out", str(out), option, value, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert option in err and value in err and "positive integer" in err
        assert not out.exists()
