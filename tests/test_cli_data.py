"""``hamgrad systems``, ``hamgrad generate`` and ``hamgrad inspect``: output, files, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from hamgrad.cli import main
from hamgrad.datasets import load_fields, load_trajectories
from hamgrad.datasets.partial import partial_path

SPRING = [
    "generate",
    "spring-mass",
    "--trajectories",
    "6",
    "--steps",
    "5",
    "--dt",
    "0.1",
    "--quiet",
]


def fails(capsys, argv, match):
    """Run the CLI expecting a non-zero exit and exactly one line on stderr matching ``match``."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def spring_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "spring.h5"
    assert main([*SPRING, "--out", str(path), "--seed", "3", "--noise", "0.01"]) == 0
    return path


def test_systems_table(capsys):
    assert main(["systems"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for column in ("system", "kind", "dof", "separable", "presets", "parameters"):
        assert column in header
    for name in ("spring-mass", "pendulum", "two-body", "oscillator-chain", "polymax"):
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert "hnn" in out and "g=" in out
    assert main(["systems", "pendulum"]) == 0
    assert "preset hnn" in capsys.readouterr().out


def test_generate_writes_a_complete_file(spring_file, capsys):
    d = load_trajectories(spring_file, "train")
    assert d.q.shape == (4, 6, 1)  # 6 trajectories: 4 train, 1 val, 1 test
    assert d.attrs["seed"] == 3 and d.attrs["noise_std"] == 0.01
    assert d.attrs["config"]["system"] == "spring-mass"
    assert not partial_path(spring_file).exists()


def test_generate_progress_bar_and_message(tmp_path, capfd):
    out = tmp_path / "p.h5"
    assert main([*SPRING[:-1], "--out", str(out)]) == 0
    captured = capfd.readouterr()
    assert "traj" in captured.err  # the progress bar, on stderr
    assert f"wrote {out}" in captured.out


def test_generate_params_preset_and_splits(tmp_path):
    out = tmp_path / "p.h5"
    argv = ["generate", "pendulum", "--out", str(out), "--preset", "hnn", "--trajectories", "4"]
    assert main([*argv, "--steps", "3", "--param", "g=3", "--splits", "0.5,0.5", "--quiet"]) == 0
    d = load_trajectories(out, "val")
    assert d.attrs["system_params"]["g"] == 3 and d.attrs["noise_std"] == 0.1  # from the preset
    assert d.q.shape == (2, 4, 1)
    varied = tmp_path / "v.h5"
    assert main([*SPRING, "--out", str(varied), "--vary", "k=1:3", "--compression", "gzip"]) == 0
    v = load_trajectories(varied, "train")
    assert v.param_names == ["k"] and ((v.params >= 1) & (v.params <= 3)).all()


def test_inspect(spring_file, capsys):
    assert main(["inspect", str(spring_file)]) == 0
    out = capsys.readouterr().out
    for text in ("hamgrad-trajectories", "schema version 1", "spring-mass", "dof", "train", "val"):
        assert text in out
    assert "max rel. energy error" in out and "median" in out
    row = next(line for line in out.splitlines() if line.startswith("train"))
    max_err = float(row.split()[-2])
    assert 0 <= max_err < 1e-9  # the ground truth conserves energy


def test_inspect_json(spring_file, capsys):
    import json

    assert main(["inspect", str(spring_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"]["train"]["n_trajectories"] == 4
    e = load_trajectories(spring_file, "train").energy
    expected = np.max(np.abs(e - e[:, :1]) / np.abs(e[:, :1]))
    assert info["splits"]["train"]["energy_rel_error_max"] == pytest.approx(expected, rel=1e-12)


def test_generate_and_inspect_a_field(tmp_path, capsys):
    out = tmp_path / "f.h5"
    assert (
        main(
            [
                "generate",
                "polymax",
                "--out",
                str(out),
                "--samples",
                "40",
                "--param",
                "dim=3",
                "--quiet",
            ]
        )
        == 0
    )
    assert load_fields(out, "train").x.shape == (32, 3)
    assert main(["inspect", str(out)]) == 0
    assert "hamgrad-fields" in capsys.readouterr().out
    fails(
        capsys,
        ["generate", "polymax", "--out", str(tmp_path / "g.h5"), "--steps", "3"],
        "--steps do not apply",
    )
    fails(
        capsys, ["generate", "polymax", "--out", str(tmp_path / "g.h5")], "--samples N is required"
    )


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--dt", "0"], "dt must be a finite number > 0, got 0.0"),
        (["--dt", "-0.5"], "dt must be a finite number > 0"),
        (["--steps", "0"], "n_steps must be a positive integer, got 0"),
        (["--trajectories", "-4"], "n_trajectories must be a positive integer, got -4"),
        (["--splits", "0.5,0.2,0.2"], "split fractions must sum to 1"),
        (["--splits", "a,b"], "comma-separated fractions"),
        (["--param", "stiffness=2"], "unknown parameter(s) stiffness for system 'spring-mass'"),
        (["--param", "k=-2"], "k must be a finite number > 0"),
        (["--param", "k=soft"], "k must be a real number"),
        (["--param", "k"], "--param must look like KEY=VALUE"),
        (["--vary", "k=1"], "--vary must look like KEY=LO:HI"),
        (["--preset", "deepmind"], "unknown preset 'deepmind' for system 'spring-mass'"),
        (["--samples", "5"], "--samples applies to static fields"),
        (["--seed", "-1"], "seed must be a non-negative integer"),
    ],
)
def test_generate_bad_values(tmp_path, capsys, extra, match):
    out = tmp_path / "d.h5"
    fails(capsys, [*SPRING, "--out", str(out), *extra], match)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_generate_unknown_system(tmp_path, capsys):
    line = fails(
        capsys, ["generate", "sprng", "--out", str(tmp_path / "d.h5")], "unknown system 'sprng'"
    )
    assert "spring-mass" in line and "pendulum" in line


def test_generate_unwritable_and_existing(tmp_path, capsys, spring_file):
    fails(capsys, [*SPRING, "--out", str(tmp_path / "nodir" / "d.h5")], "does not exist")
    before = spring_file.read_bytes()
    fails(
        capsys, [*SPRING, "--out", str(spring_file)], "already exists; pass overwrite=True (--force"
    )
    assert spring_file.read_bytes() == before
    copy = tmp_path / "copy.h5"
    copy.write_bytes(before)
    assert main([*SPRING, "--out", str(copy), "--force", "--seed", "8"]) == 0
    assert load_trajectories(copy, "train").attrs["seed"] == 8


def test_inspect_refuses_bad_files(tmp_path, capsys, spring_file):
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    fails(capsys, ["inspect", str(text)], "is not an HDF5 file")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    fails(capsys, ["inspect", str(foreign)], "is not a hamgrad data file (no 'format' attribute)")
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(spring_file.read_bytes()[:3000])
    fails(capsys, ["inspect", str(truncated)], "truncated or corrupt")
    incomplete = tmp_path / "incomplete.h5"
    incomplete.write_bytes(spring_file.read_bytes())
    with h5py.File(incomplete, "a") as f:
        f.attrs["complete"] = False
    fails(capsys, ["inspect", str(incomplete)], "is incomplete")
    nan = tmp_path / "nan.h5"
    nan.write_bytes(spring_file.read_bytes())
    with h5py.File(nan, "a") as f:
        f["test/energy"][0, 2] = np.nan
    fails(capsys, ["inspect", str(nan)], "test/energy holds 1 non-finite value")
    fails(capsys, ["inspect", str(tmp_path / "missing.h5")], "no such file")


def test_console_script_errors_without_traceback(tmp_path):
    """The real program: exit status 2, one line on stderr, no traceback."""
    out = tmp_path / "d.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "hamgrad", *SPRING, "--out", str(out), "--dt", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hamgrad generate: error: dt must be a finite number > 0, got -1.0"
    ]
    assert not out.exists()


def test_an_error_is_one_write(tmp_path, monkeypatch):
    """Ranks of a torchrun job share stderr, unbuffered under PYTHONUNBUFFERED: each error line
    must reach it in one write, or two ranks' lines can interleave into one."""
    import io

    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    monkeypatch.setattr(sys, "stderr", Recorder())
    assert main(["train", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r")]) == 2
    assert len(writes) == 1 and writes[0].startswith("hamgrad train: error:")
    assert writes[0].endswith("\n") and writes[0].count("\n") == 1
