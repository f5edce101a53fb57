"""The bad-input inventory (docs/errors.md): every listed input is rejected with the listed message.

- ``test_cli_rejects``: each bad command line exits non-zero with exactly one line on stderr,
  starting with ``hamgrad``, no traceback, and that line is the one docs/errors.md shows.
- ``test_api_rejects``: each bad API call raises the documented exception with that message.
- ``test_inventory_names_existing_tests``: every test docs/errors.md cites exists (file, function
  and parameter id), so the table cannot point at nothing.

Commands run in one working directory holding the files they name (``spring.h5``, ``run``, ...),
so messages carry the same short names as the table.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hamgrad.cli import main
from hamgrad.datasets import generate, generate_fields

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"

# id -> command line (after `hamgrad`), in the working directory of the `workdir` fixture
CLI_CASES: dict[str, str] = {
    # command line itself
    "unknown-command": "trian spring.h5",
    "missing-arguments": "train",
    "unknown-option": "train spring.h5 --out r1 --model hnn --epochs 3",
    "width-and-budget": "train spring.h5 --out r1 --model hnn --width 8 --param-budget 100",
    # systems
    "generate-unknown-system": "generate no-such-system --out x.h5",
    "generate-bad-parameter": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --param g=-3",
    "generate-unknown-parameter": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --param mass=2",
    "generate-unknown-preset": "generate pendulum --out x.h5 --preset nope",
    # dataset generation
    "zero-trajectories": "generate pendulum --out x.h5 --trajectories 0 --steps 10 --dt 0.1",
    "negative-dt": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt -0.1",
    "splits-sum": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --splits 0.5,0.2,0.2",
    "param-syntax": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --param g",
    "vary-syntax": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --vary g=2",
    "vary-order": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --vary g=4:2",
    "negative-seed": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --seed -1",
    "gzip-level": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --compression gzip --compression-level 12",
    "unknown-compression": "generate pendulum --out x.h5 --compression zip",
    "samples-for-dynamics": "generate pendulum --out x.h5 --trajectories 10 --steps 10 --dt 0.1 --samples 100",
    "steps-for-field": "generate convex-2d --out x.h5 --steps 10",
    "field-without-samples": "generate convex-2d --out x.h5",
    "existing-file": "generate pendulum --out spring.h5 --trajectories 10 --steps 10 --dt 0.1",
    "missing-directory": "generate pendulum --out nodir/x.h5 --trajectories 10 --steps 10 --dt 0.1",
    "out-under-a-file": "generate pendulum --out notes.txt/x.h5 --trajectories 10 --steps 10 --dt 0.1",
    # reading data files
    "inspect-missing": "inspect missing.h5",
    "inspect-not-hdf5": "inspect notes.txt",
    "inspect-foreign-hdf5": "inspect foreign.h5",
    # training
    "train-without-model": "train spring.h5 --out r1",
    "train-unknown-model": "train spring.h5 --out r1 --model resnet",
    "train-missing-data": "train missing.h5 --out r1 --model hnn",
    "train-fields-file": "train fields.h5 --out r1 --model hnn",
    "train-foreign-hdf5": "train foreign.h5 --out r1 --model hnn",
    "train-negative-lr": "train spring.h5 --out r1 --model hnn --lr -1",
    "train-zero-batch": "train spring.h5 --out r1 --model hnn --batch-size 0",
    "train-zero-width": "train spring.h5 --out r1 --model hnn --width 0",
    "train-separable-mlp": "train spring.h5 --out r1 --model mlp --separable",
    "train-rollout-too-long": "train spring.h5 --out r1 --model hnn --loss rollout --rollout-steps 40",
    "train-unknown-integrator": "train spring.h5 --out r1 --model hnn --loss rollout --integrator warp-drive",
    "train-leapfrog-joint": "train spring.h5 --out r1 --model hnn --loss rollout --integrator leapfrog",
    "train-existing-run": "train spring.h5 --out run --model hnn",
    "train-extrapolate-clean-data": "train spring.h5 --out r1 --model gradnet-m --extrapolate-noise",
    "train-denoise-finite-difference": (
        "train spring.h5 --out r1 --model gradnet-m --denoise-states --targets finite-difference"
    ),
    "train-out-not-empty": "train spring.h5 --out notrun --model hnn",
    "resume-not-a-directory": "train spring.h5 --out notes.txt --resume",
    "resume-not-a-run": "train spring.h5 --out notrun --resume",
    "resume-contradicting": "train spring.h5 --out run --resume --model gradnet-c",
    "resume-other-data": "train twobody.h5 --out run --resume",
    # evaluation and comparison
    "evaluate-not-a-run": "evaluate notes.txt --data spring.h5",
    "evaluate-other-dimension": "evaluate run --data twobody.h5",
    "evaluate-fields-file": "evaluate run --data fields.h5",
    "evaluate-zero-n-eval": "evaluate run --data spring.h5 --n-eval 0",
    "evaluate-leapfrog-joint": "evaluate run --data spring.h5 --integrator leapfrog",
    "evaluate-unknown-integrator": "evaluate run --data spring.h5 --integrator nope",
    "evaluate-negative-horizon": "evaluate run --data spring.h5 --horizon -1",
    "evaluate-preset-protocol": "evaluate run --data spring.h5 --protocol preset",
    "compare-unknown-model": "compare spring.h5 --models hnn,nope --out cmp",
    "compare-zero-steps": "compare spring.h5 --models hnn --out cmp --steps 0",
    "demo-zero-trajectories": "demo --out d1 --n-trajectories 0",
    # static gradient-field benchmarks
    "fields-unknown-field": "fields --field nope --model gradnet-c",
    "fields-polymax-dim": "fields --field polymax --dim 1 --model gradnet-c",
    "fields-unknown-protocol": "fields --field convex-2d --model gradnet-c --protocol fast",
    "fields-zero-trials": "fields --field convex-2d --model gradnet-c --trials 0",
}


def _api_cases() -> dict[str, Callable[[], object]]:
    from hamgrad import metrics
    from hamgrad.datasets import TrajectoryDataset, load_fields, load_trajectories
    from hamgrad.integrators import rollout
    from hamgrad.models import build_model
    from hamgrad.systems import get_system
    from hamgrad.train import TrainConfig

    f64 = torch.float64
    pendulum = get_system("pendulum")
    return {
        "model-unknown": lambda: build_model("resnet", dim=4, width=8),
        "model-width-and-budget": lambda: build_model(
            "gradnet-c", dim=4, width=8, param_budget=100
        ),
        "model-zero-dim": lambda: build_model("gradnet-c", dim=0, width=8),
        "model-budget-too-small": lambda: build_model("gradnet-c", dim=4, param_budget=3),
        "model-input-dimension": lambda: build_model("gradnet-c", dim=4, width=8)(
            torch.zeros(3, 5)
        ),
        "system-unknown": lambda: get_system("pendulumm"),
        "system-nan-parameter": lambda: get_system("pendulum", g=float("nan")),
        "system-unknown-parameter": lambda: get_system("pendulum", mass=1.0),
        "system-zero-samples": lambda: pendulum.sample_initial(0),
        "system-state-dimension": lambda: pendulum.grad(torch.zeros(3, 3, dtype=f64)),
        "rollout-unknown-method": lambda: rollout(
            pendulum, torch.zeros(1, 2, dtype=f64), 0.1, 5, method="rk5"
        ),
        "rollout-leapfrog-non-separable": lambda: rollout(
            get_system("double-pendulum"), torch.zeros(1, 4, dtype=f64), 0.1, 5, method="leapfrog"
        ),
        "rollout-zero-dt": lambda: rollout(pendulum, torch.zeros(1, 2, dtype=f64), 0.0, 5),
        "rollout-zero-steps": lambda: rollout(pendulum, torch.zeros(1, 2, dtype=f64), 0.1, 0),
        "rollout-state-dimension": lambda: rollout(pendulum, torch.zeros(1, 3, dtype=f64), 0.1, 5),
        "rollout-non-finite-start": lambda: rollout(
            pendulum, torch.tensor([[float("nan"), 1.0]], dtype=f64), 0.1, 5
        ),
        "implicit-midpoint-no-convergence": lambda: rollout(
            get_system("double-pendulum"),
            torch.tensor([[1.0, 1.0, 50.0, 50.0]], dtype=f64),
            5.0,
            3,
            method="implicit-midpoint",
            max_iter=2,
        ),
        "load-missing-split": lambda: load_trajectories("spring.h5", "dev"),
        "load-fields-as-trajectories": lambda: load_trajectories("fields.h5", "train"),
        "load-trajectories-as-fields": lambda: load_fields("spring.h5", "train"),
        "dataset-window-too-long": lambda: TrajectoryDataset(
            "spring.h5", "train", mode="windows", window=40
        ),
        "dataset-unknown-mode": lambda: TrajectoryDataset("spring.h5", "train", mode="pairs"),
        "train-config-schedule": lambda: TrainConfig(schedule="linear"),
        "metric-shape-mismatch": lambda: metrics.trajectory_psnr(
            torch.zeros(2, 5, 2), torch.zeros(2, 4, 2)
        ),
    }


API_IDS = [
    "model-unknown",
    "model-width-and-budget",
    "model-zero-dim",
    "model-budget-too-small",
    "model-input-dimension",
    "system-unknown",
    "system-nan-parameter",
    "system-unknown-parameter",
    "system-zero-samples",
    "system-state-dimension",
    "rollout-unknown-method",
    "rollout-leapfrog-non-separable",
    "rollout-zero-dt",
    "rollout-zero-steps",
    "rollout-state-dimension",
    "rollout-non-finite-start",
    "implicit-midpoint-no-convergence",
    "load-missing-split",
    "load-fields-as-trajectories",
    "load-trajectories-as-fields",
    "dataset-window-too-long",
    "dataset-unknown-mode",
    "train-config-schedule",
    "metric-shape-mismatch",
]


# --- the table --------------------------------------------------------------------------------


def documented() -> dict[str, dict[str, str]]:
    """Rows of the tables in docs/errors.md: id -> {input, message, test}."""
    rows: dict[str, dict[str, str]] = {}
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 4:
            raise AssertionError(f"docs/errors.md: a row needs 4 cells: {line}")
        key, given, message, test = (code_span(c) for c in cells)
        assert key not in rows, f"docs/errors.md: id {key!r} appears twice"
        rows[key] = {"input": given, "message": message, "test": test}
    return rows


def code_span(cell: str) -> str:
    """The text of a markdown cell holding one code span (`` `x` `` or ``` `` x `` ```)."""
    cell = cell.replace("\\|", "|")
    if cell.startswith("`` ") and cell.endswith(" ``"):
        return cell[3:-3]
    if cell.startswith("`") and cell.endswith("`"):
        return cell[1:-1]
    return cell


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, str]]:
    return documented()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A directory with the files the commands name: data sets, a run, foreign files."""
    d = tmp_path_factory.mktemp("inventory")
    generate(
        "spring-mass",
        d / "spring.h5",
        n_trajectories=12,
        n_steps=30,
        dt=0.1,
        seed=0,
        splits={"train": 0.5, "val": 0.25, "test": 0.25},
        progress=False,
    )
    generate("two-body", d / "twobody.h5", n_trajectories=10, n_steps=10, dt=0.1, progress=False)
    generate_fields("convex-2d", d / "fields.h5", n_samples=50, seed=0, progress=False)
    with h5py.File(d / "foreign.h5", "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3)))
    (d / "notes.txt").write_text("not a data file\n")
    (d / "notrun").mkdir()
    (d / "notrun" / "results.csv").write_text("a,b\n")
    argv = ["train", "spring.h5", "--out", "run", "--model", "hnn", "--width", "8", "--steps", "3"]
    old = Path.cwd()
    os.chdir(d)
    try:
        assert main([*argv, "--quiet"]) == 0
    finally:
        os.chdir(old)
    return d


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    _, err = capsys.readouterr()
    return code, err


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_rejects(case, workdir, table, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    code, err = run_cli(shlex.split(CLI_CASES[case]), capsys)
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hamgrad"), err
    assert case in table, f"docs/errors.md has no row for {case!r}; its message: {lines[0]}"
    row = table[case]
    assert row["input"] == f"hamgrad {CLI_CASES[case]}"
    assert row["message"] == lines[0]
    assert row["test"] == f"tests/test_errors_inventory.py::test_cli_rejects[{case}]"


@pytest.mark.parametrize("case", API_IDS)
def test_api_rejects(case, workdir, table, monkeypatch):
    monkeypatch.chdir(workdir)
    call = _api_cases()[case]
    with pytest.raises((ValueError, TypeError, FloatingPointError, RuntimeError)) as info:
        call()
    text = str(info.value).strip().splitlines()[0]
    assert case in table, f"docs/errors.md has no row for {case!r}; its message: {text}"
    assert table[case]["message"] == f"{type(info.value).__name__}: {text}"
    assert table[case]["test"] == f"tests/test_errors_inventory.py::test_api_rejects[{case}]"


def test_cli_error_from_a_real_process_is_one_line(workdir):
    """The console program itself (not only ``main``): one line on stderr, exit 2."""
    env = {k: v for k, v in os.environ.items() if k != "HAMGRAD_DEBUG"}
    result = subprocess.run(
        [sys.executable, "-m", "hamgrad", "train", "fields.h5", "--out", "r9", "--model", "hnn"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("hamgrad train: error: 'fields.h5' is a static gradient-field")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _parametrize_ids(func) -> set[str]:
    ids: set[str] = set()
    for mark in getattr(func, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        given = mark.kwargs.get("ids")
        values = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("argvalues", [])
        if isinstance(given, (list, tuple)):
            ids.update(given)
        else:
            ids.update(v for v in values if isinstance(v, str))
    return ids


def test_inventory_names_existing_tests(table):
    """Every row cites an existing test; the inventory covers every area with >= 25 cases."""
    import importlib

    assert len(table) >= 25
    for key, row in table.items():
        found = re.fullmatch(r"tests/(test_\w+)\.py::(test_\w+)(?:\[([\w.-]+)\])?", row["test"])
        assert found, f"{key}: cannot read the test reference {row['test']!r}"
        module_name, func_name, param = found.groups()
        assert (ROOT / "tests" / f"{module_name}.py").is_file(), row["test"]
        source = (ROOT / "tests" / f"{module_name}.py").read_text()
        names = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
        assert func_name in names, f"{key}: {row['test']} does not exist"
        if param is not None:
            module = importlib.import_module(module_name)
            assert param in _parametrize_ids(getattr(module, func_name)), (
                f"{key}: {row['test']}: no parameter {param!r}"
            )
    cited = {row["test"] for row in table.values()}
    for case in CLI_CASES:
        assert f"tests/test_errors_inventory.py::test_cli_rejects[{case}]" in cited, case
    for case in API_IDS:
        assert f"tests/test_errors_inventory.py::test_api_rejects[{case}]" in cited, case
