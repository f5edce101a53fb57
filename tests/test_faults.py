"""Faults: processes killed with SIGKILL, damaged and hostile files, full and unwritable disks.

Kills at deterministic points run the command in a forked child that SIGKILLs itself when it
reaches the point (a patched function in the child only): a real SIGKILL of a real process, at a
place that does not depend on timing. The tests marked slow kill a separately started ``hamgrad``
process from outside. After a kill, nothing may exist under the final name, and rerunning the same
command must finish the job with exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import hamgrad.datasets.generation as generation
import hamgrad.datasets.partial as partial
from hamgrad.checkpoints import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from hamgrad.cli import main
from hamgrad.datasets import load_trajectories
from hamgrad.datasets.partial import partial_path
from hamgrad.errors import CheckpointError, DataFormatError

ARRAYS = ("t", "q", "p", "dqdt", "dpdt", "energy")
GEN_ARGS = [
    "spring-mass",
    "--trajectories", "12",
    "--steps", "20",
    "--dt", "0.1",
    "--seed", "4",
    "--noise", "0.01",
    "--simulation-batch", "2",
    "--chunk-size", "2",
    "--quiet",
]  # fmt: skip
TRAIN_ARGS = [
    "--model", "hnn",
    "--width", "16",
    "--steps", "20",
    "--batch-size", "32",
    "--checkpoint-every", "5",
    "--log-every", "5",
    "--dtype", "float64",
    "--quiet",
]  # fmt: skip


# --- helpers ----------------------------------------------------------------------------------


def killed_in_child(work) -> None:
    """Run ``work()`` in a forked child that is expected to die of SIGKILL (it kills itself)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            work()
            code = 0
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), f"the child exited normally (status {status}) before the kill"
    assert os.WTERMSIG(status) == signal.SIGKILL


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def same_datasets(a: Path, b: Path) -> None:
    for split in ("train", "val", "test"):
        x, y = load_trajectories(a, split), load_trajectories(b, split)
        for name in ARRAYS:
            assert np.array_equal(getattr(x, name), getattr(y, name)), (split, name)


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, command: str, *fragments: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hamgrad {command}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def hamgrad_process(*args: str, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "hamgrad", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        **kw,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The dataset of GEN_ARGS, generated without interruption."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    assert main(["generate", *GEN_ARGS, "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def spring(small_dataset) -> Path:
    return small_dataset("spring-mass", n_trajectories=12, n_steps=30)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, spring) -> dict:
    """The checkpoint of TRAIN_ARGS trained without interruption."""
    run = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", str(spring), "--out", str(run), *TRAIN_ARGS]) == 0
    return load_checkpoint(run / CHECKPOINT_NAME)


def same_weights(run: Path, reference_state: dict) -> None:
    state = load_checkpoint(run / CHECKPOINT_NAME)
    assert state["step"] == reference_state["step"] == 20
    assert state["model"].keys() == reference_state["model"].keys()
    for key, value in reference_state["model"].items():
        assert torch.equal(state["model"][key], value), key


# --- generation killed ------------------------------------------------------------------------


def _kill_before_first_chunk(monkeypatch):
    monkeypatch.setattr(generation, "simulate_range", lambda *a, **k: die())


def _kill_after_chunk_2(monkeypatch):
    real = partial.record_progress

    def record(f, n):
        real(f, n)
        if n >= 4:
            die()

    monkeypatch.setattr(partial, "record_progress", record)


def _kill_inside_chunk_3(monkeypatch):
    real = h5py.Dataset.__setitem__
    calls = []

    def setitem(self, key, value):
        calls.append(1)
        if len(calls) == 13:  # chunks are 5 writes (q, p, dqdt, dpdt, energy): mid chunk 3
            die()
        real(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)


def _kill_at_rename(monkeypatch):
    monkeypatch.setattr(partial.os, "replace", lambda *a: die())


KILL_POINTS = {
    "before-first-chunk": (_kill_before_first_chunk, 0),
    "after-chunk-2": (_kill_after_chunk_2, 4),
    "inside-chunk-3": (_kill_inside_chunk_3, 4),
    "at-rename": (_kill_at_rename, None),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_generation_killed_then_rerun_equals_uninterrupted(point, tmp_path, reference, monkeypatch):
    install, expected_progress = KILL_POINTS[point]
    out = tmp_path / "data.h5"
    argv = ["generate", *GEN_ARGS, "--out", str(out)]

    def work():
        install(monkeypatch)
        main(argv)

    killed_in_child(work)
    assert not out.exists()
    assert partial_path(out).exists()
    with h5py.File(partial_path(out), "r") as f:
        if expected_progress is None:  # killed between "complete" and the rename
            assert bool(f.attrs["complete"])
        else:
            assert int(f.attrs["n_written"]) == expected_progress
    starts = []
    real = generation.simulate_range
    monkeypatch.setattr(
        generation,
        "simulate_range",
        lambda s, p, i0, i1, **k: starts.append(i0) or real(s, p, i0, i1, **k),
    )
    assert main(argv) == 0
    if expected_progress:
        assert starts[0] == expected_progress  # resumed, not restarted
    assert not partial_path(out).exists()
    same_datasets(out, reference)


@pytest.mark.slow
def test_generation_killed_from_outside_then_rerun(tmp_path, capsys):
    args = [
        "generate", "double-pendulum", "--trajectories", "24", "--steps", "50", "--dt", "0.1",
        "--seed", "7", "--simulation-batch", "2", "--chunk-size", "2",
    ]  # fmt: skip
    out = tmp_path / "killed.h5"
    proc = hamgrad_process(*args, "--out", out)
    seen = {"n": 0}

    def watch_progress():  # tqdm writes "n/24" to stderr after each chunk is recorded
        buffer = b""
        while chunk := proc.stderr.read1(256):
            buffer = (buffer + chunk)[-400:]
            counts = re.findall(rb"(\d+)/24", buffer)
            if counts:
                seen["n"] = int(counts[-1])

    reader = threading.Thread(target=watch_progress, daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while seen["n"] < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the generation finished before it was killed"
    assert 6 <= seen["n"] < 24
    assert not out.exists() and partial_path(out).exists()
    assert main([*args, "--out", str(out), "--quiet"]) == 0  # the same command resumes
    assert main([*args, "--out", str(tmp_path / "whole.h5"), "--quiet"]) == 0
    capsys.readouterr()
    same_datasets(out, tmp_path / "whole.h5")


# --- training killed --------------------------------------------------------------------------


def test_training_killed_resumes_to_the_same_weights(tmp_path, spring, reference_run, capsys):
    run = tmp_path / "run"
    argv = ["train", str(spring), "--out", str(run), *TRAIN_ARGS]

    def work():
        real = torch.optim.Adam.step
        steps = []

        def step(self, *a, **k):
            steps.append(1)
            if len(steps) == 13:  # checkpoint 10 is on disk, 15 is not
                die()
            return real(self, *a, **k)

        torch.optim.Adam.step = step
        main(argv)

    killed_in_child(work)
    assert load_checkpoint(run / CHECKPOINT_NAME)["step"] == 10
    code, out, err = cli([*argv, "--resume"], capsys)
    assert code == 0, err
    same_weights(run, reference_run)


def test_kill_while_a_checkpoint_is_written_leaves_the_last_one_loadable(
    tmp_path, spring, reference_run, capsys
):
    run = tmp_path / "run"
    argv = ["train", str(spring), "--out", str(run), *TRAIN_ARGS]

    def work():
        real = torch.save
        saves = []

        def half_written_save(obj, f, *a, **k):
            saves.append(1)
            if len(saves) < 2:
                return real(obj, f, *a, **k)
            real(obj, f, *a, **k)
            data = Path(f).read_bytes()
            Path(f).write_bytes(data[: len(data) // 2])  # the write is cut short ...
            die()  # ... by the kill

        torch.save = half_written_save
        main(argv)

    killed_in_child(work)
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".{CHECKPOINT_NAME}.")
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        load_checkpoint(run / leftovers[0])  # the half-written one is refused ...
    assert load_checkpoint(run / CHECKPOINT_NAME)["step"] == 5  # ... and never the one loaded
    code, out, err = cli([*argv, "--resume"], capsys)
    assert code == 0, err
    same_weights(run, reference_run)


@pytest.mark.slow
def test_training_killed_from_outside_resumes(tmp_path, spring, capsys):
    args = [
        "train", spring, "--model", "hnn", "--width", "16", "--steps", "3000",
        "--batch-size", "32", "--checkpoint-every", "100", "--log-every", "100",
        "--dtype", "float64", "--quiet",
    ]  # fmt: skip
    run = tmp_path / "run"
    proc = hamgrad_process(*args, "--out", run)
    deadline = time.monotonic() + 240
    while not (run / CHECKPOINT_NAME).exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "training finished before it was killed"
    assert load_checkpoint(run / CHECKPOINT_NAME)["step"] < 3000
    assert main([*map(str, args), "--out", str(run), "--resume"]) == 0
    assert main([*map(str, args), "--out", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    same_weights_any = load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME)
    resumed = load_checkpoint(run / CHECKPOINT_NAME)
    assert resumed["step"] == same_weights_any["step"] == 3000
    for key, value in same_weights_any["model"].items():
        assert torch.equal(resumed["model"][key], value), key


# --- damaged and hostile checkpoints ----------------------------------------------------------


class _Payload:
    """Unpickling this calls ``Path(marker).touch()``: code execution from a data file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def trained_run(tmp_path, spring) -> Path:
    run = tmp_path / "run"
    assert main(["train", str(spring), "--out", str(run), *TRAIN_ARGS, "--steps", "5"]) == 0
    return run


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Payload(marker)))  # what an unguarded load would do
    assert marker.exists()


@pytest.mark.parametrize("kind", ["torch-save", "plain-pickle"])
def test_checkpoint_carrying_code_is_refused_and_never_run(kind, trained_run, spring, capsys):
    marker = trained_run.parent / "marker"
    ckpt = trained_run / CHECKPOINT_NAME
    state = load_checkpoint(ckpt)
    if kind == "torch-save":  # a checkpoint that looks right, with an object inside
        torch.save({**state, "model": _Payload(marker)}, ckpt)
    else:
        ckpt.write_bytes(pickle.dumps({"format": "hamgrad-checkpoint", "x": _Payload(marker)}, 2))
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(ckpt)
    code, _, err = cli(["train", spring, "--out", trained_run, "--resume", "--quiet"], capsys)
    assert_one_line_error(code, err, "train", "refused (loading it could run code)")
    code, _, err = cli(["evaluate", trained_run, "--data", spring, "--no-figures"], capsys)
    assert_one_line_error(code, err, "evaluate", "refused (loading it could run code)")
    assert not marker.exists()


def test_truncated_checkpoint_is_refused(trained_run, spring, capsys):
    ckpt = trained_run / CHECKPOINT_NAME
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    code, _, err = cli(["train", spring, "--out", trained_run, "--resume", "--quiet"], capsys)
    assert_one_line_error(code, err, "train", CHECKPOINT_NAME, "is corrupt or not a torch file")


def test_foreign_checkpoint_is_refused(trained_run, spring, capsys):
    torch.save({"weights": torch.zeros(3)}, trained_run / CHECKPOINT_NAME)
    code, _, err = cli(["train", spring, "--out", trained_run, "--resume", "--quiet"], capsys)
    assert_one_line_error(code, err, "train", "is not a hamgrad checkpoint")


def test_interrupted_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, {"step": 1, "model": {"w": torch.ones(2)}})

    def failing_save(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"step": 2, "model": {"w": torch.zeros(2)}})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temporary left


# --- damaged, foreign and non-finite data files -----------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_data_bit(path: Path) -> None:
    with h5py.File(path, "r") as f:
        info = f["train/energy"].id.get_chunk_info(0)
    with path.open("r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x10]))


def _flip_header_bit(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.seek(20)  # inside the superblock, which carries a checksum
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))


def _foreign_hdf5(path: Path) -> None:
    path.unlink()
    with h5py.File(path, "w") as f:
        f.attrs["creator"] = "another program"
        f.create_dataset("images", data=np.zeros((2, 3)))


def _not_hdf5(path: Path) -> None:
    path.write_text("step,loss\n1,0.5\n")


def _nan_in(name: str):
    def spoil(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            f[name][1, 3] = np.nan

    return spoil


def _incomplete(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False


DAMAGE = {
    "truncated": (_truncate, "is truncated or corrupt and cannot be opened"),
    "bit-flip-in-data": (_flip_data_bit, "is corrupt: reading it failed"),
    "bit-flip-in-header": (_flip_header_bit, "is truncated or corrupt and cannot be opened"),
    "foreign-hdf5": (_foreign_hdf5, "is not a hamgrad"),
    "not-hdf5": (_not_hdf5, "is not"),
    "nan-in-energy": (_nan_in("train/energy"), "holds 1 non-finite value(s)"),
    # `hamgrad inspect` summarises the energies only: it does not read p
    "nan-in-p": (_nan_in("train/p"), "holds 1 non-finite value(s)", False),
    "incomplete": (_incomplete, "is incomplete"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_data_files_are_refused(damage, tmp_path, reference, capsys):
    spoil, message, *inspect_reads_it = DAMAGE[damage]
    path = tmp_path / "data.h5"
    shutil.copy(reference, path)
    spoil(path)
    with pytest.raises(DataFormatError, match=re.escape(message)):
        load_trajectories(path, "train")
    if inspect_reads_it != [False]:
        code, _, err = cli(["inspect", path], capsys)
        assert_one_line_error(code, err, "inspect", "data.h5")
    code, _, err = cli(["train", path, "--model", "hnn", "--out", tmp_path / "run"], capsys)
    assert_one_line_error(code, err, "train", "data.h5")
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


# --- full and unwritable destinations ---------------------------------------------------------


def test_disk_full_while_writing_removes_the_partial_file(tmp_path, monkeypatch):
    real = h5py.Dataset.__setitem__
    calls = []

    def setitem(self, key, value):
        calls.append(1)
        if len(calls) == 8:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    out = tmp_path / "data.h5"
    with pytest.raises(OSError, match=r"No space left on device; the unfinished file was removed"):
        main_raising(["generate", *GEN_ARGS, "--out", str(out)], monkeypatch)
    assert list(tmp_path.iterdir()) == []


def main_raising(argv: list[str], monkeypatch) -> None:
    """Run the CLI with HAMGRAD_DEBUG so the exception itself comes out."""
    monkeypatch.setenv("HAMGRAD_DEBUG", "1")
    main(argv)


@contextlib.contextmanager
def tiny_disk(tmp_path: Path, size: str):
    """A tmpfs of ``size`` mounted at tmp_path/disk (skips when mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_generation_on_a_full_disk_is_a_clear_error(tmp_path, capsys):
    with tiny_disk(tmp_path, "256k") as disk:
        argv = ["generate", "spring-mass", "--trajectories", "40", "--steps", "400", "--dt", "0.1"]
        code, _, err = cli([*argv, "--out", disk / "big.h5", "--quiet"], capsys)
        assert_one_line_error(code, err, "generate", "not enough free disk space")
        assert list(disk.iterdir()) == []
        # the disk fills up while the file is written: the next chunk stops with a clear error
        real = partial.record_progress

        def others_fill_the_disk(f, n):
            real(f, n)
            if n == 4:
                free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
                (disk / "other").write_bytes(b"\0" * (free - 8192))

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(partial, "record_progress", others_fill_the_disk)
            code, _, err = cli(["generate", *GEN_ARGS, "--out", disk / "small.h5"], capsys)
        assert_one_line_error(code, err, "generate", "not enough free disk space", "removed")
        assert [p.name for p in disk.iterdir()] == ["other"]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda tmp: tmp / "a-file" / "data.h5", "is not a directory"),
        (lambda tmp: tmp / "missing" / "data.h5", "does not exist"),
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: Path("/proc/hamgrad-test.h5"), "hamgrad-test.h5"),
    ],
    ids=["under-a-file", "missing-directory", "a-directory", "proc"],
)
def test_unwritable_destination_is_a_clear_error(where, message, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a directory")
    out = where(tmp_path)
    code, _, err = cli(["generate", *GEN_ARGS, "--out", out, "--force"], capsys)
    assert_one_line_error(code, err, "generate", message)
    assert not partial_path(out).exists()
