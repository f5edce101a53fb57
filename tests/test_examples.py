"""Every example runs with its defaults (slow: `make test-slow`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, expected",
    [
        ("learn_from_trajectories.py", "finite-difference targets"),
        ("long_horizon_rollout.py", "drift half-ratio"),
        ("hnn_comparison.py", "PSNR"),
        ("gradient_fields.py", "mgradnet-c"),
    ],
)
def test_example_runs(script, expected, tmp_path):
    args = [sys.executable, str(EXAMPLES / script)]
    if script != "gradient_fields.py":
        args += ["--out", str(tmp_path / "out")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout
