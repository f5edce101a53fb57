"""Real multi-process runs: two CPU ranks launched with torchrun (gloo, loopback only). Slow.

Training: both ranks must end with bit-identical parameters (each rank saves its own parameters
from a small launcher script), equal to a single-process run up to round-off, DDP and the plain
all-reduce must agree, and a run resumed under torchrun must end exactly where an uninterrupted one
does. The CLI under torchrun writes its run files once (rank 0). Generation: the joined file of a
2-rank run holds exactly the arrays of a single-process run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hamgrad.checkpoints import CHECKPOINT_NAME, METRICS_NAME, load_checkpoint
from hamgrad.datasets import load_trajectories
from hamgrad.datasets.sharded import shard_path
from hamgrad.distributed import free_port
from hamgrad.train import train_dynamics

pytestmark = pytest.mark.slow

TIMEOUT_S = 300
SETTINGS = {
    "model": "hnn",
    "width": 16,
    "steps": 16,
    "batch_size": 32,
    "checkpoint_every": 4,
    "log_every": 4,
    "dtype": "float64",
    "lr": 3e-2,
}


def torchrun(
    *args: str, cwd: Path, nproc: int = 2, succeed: bool = True
) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run`` with ``nproc`` local ranks on a free loopback port."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        *map(str, args),
    ]
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert (result.returncode == 0) == succeed, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def spring(small_dataset) -> Path:
    return small_dataset("spring-mass", n_trajectories=12, n_steps=30)


LAUNCHER = """
import os, sys
import torch
from hamgrad import distributed
from hamgrad.train import train_dynamics

data, out, settings = sys.argv[1], sys.argv[2], eval(sys.argv[3])
results = {}
for mode in ("ddp", "allreduce"):
    os.environ["HAMGRAD_GRADIENT_SYNC"] = mode
    r = train_dynamics(data, f"{out}/{mode}", progress=False, **settings)
    results[mode] = {
        "params": {k: v.detach().clone() for k, v in r.model.state_dict().items()},
        "losses": [row["loss"] for row in r.history],
    }
# a run that crashes after step 6 (its last checkpoint is step 4), then resumed to the end
class Crash(Exception):
    pass

def crash(step, loss):
    if step == 6:
        raise Crash

try:
    train_dynamics(data, f"{out}/resumed", progress=False, callback=crash, **settings)
except Crash:
    pass
r = train_dynamics(data, f"{out}/resumed", resume=True, progress=False)
results["resumed"] = {"params": {k: v.detach().clone() for k, v in r.model.state_dict().items()}}
results["world"] = distributed.world_size()
torch.save(results, f"{out}/rank{distributed.rank()}.pt")
"""


def test_two_ranks_train_to_identical_weights(tmp_path, spring):
    script = tmp_path / "launch.py"
    script.write_text(textwrap.dedent(LAUNCHER))
    torchrun(script, spring, tmp_path, repr(SETTINGS), cwd=tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    for variant in ("ddp", "allreduce", "resumed"):
        a, b = ranks[0][variant]["params"], ranks[1][variant]["params"]
        assert a.keys() == b.keys()
        for key in a:  # the ranks hold bit-identical parameters
            assert torch.equal(a[key], b[key]), (variant, key)
    for key, value in ranks[0]["ddp"]["params"].items():
        assert torch.equal(ranks[0]["allreduce"]["params"][key], value), key
        assert torch.equal(ranks[0]["resumed"]["params"][key], value), key
    losses = ranks[0]["ddp"]["losses"]
    assert losses == ranks[1]["ddp"]["losses"]
    assert losses[-1] < 0.5 * losses[0], losses
    # only rank 0 wrote the run; it is the run a single process makes, up to round-off
    ckpt = load_checkpoint(tmp_path / "ddp" / CHECKPOINT_NAME)
    for key, value in ranks[0]["ddp"]["params"].items():
        assert torch.equal(ckpt["model"][key], value)
    single = train_dynamics(spring, tmp_path / "single", progress=False, **SETTINGS)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["ddp"]["params"][key], value, rtol=1e-9, atol=1e-12)


def test_cli_training_under_torchrun_writes_one_run(tmp_path, spring):
    run = tmp_path / "run"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    result = torchrun(
        "-m", "hamgrad", "train", spring, "--out", run, *args, "--quiet", cwd=tmp_path
    )
    assert result.stdout.count("trained hnn, 16 steps") == 1, result.stdout
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "metrics.csv"]
    assert load_checkpoint(run / CHECKPOINT_NAME)["step"] == 16
    assert len((run / METRICS_NAME).read_text().splitlines()) == 1 + 4


def test_generation_under_torchrun_equals_single_process(tmp_path):
    args = [
        "spring-mass", "--trajectories", "13", "--steps", "15", "--dt", "0.1", "--seed", "9",
        "--noise", "0.02", "--simulation-batch", "2", "--quiet",
    ]  # fmt: skip
    out = tmp_path / "joined.h5"
    result = torchrun("-m", "hamgrad", "generate", *args, "--out", out, cwd=tmp_path)
    assert result.stdout.count("wrote ") == 1, result.stdout
    assert shard_path(out, 0, 2).exists() and shard_path(out, 1, 2).exists()
    from hamgrad.cli import main

    assert main(["generate", *args, "--out", str(tmp_path / "single.h5")]) == 0
    for split in ("train", "val", "test"):
        a, b = load_trajectories(out, split), load_trajectories(tmp_path / "single.h5", split)
        for name in ("t", "q", "p", "dqdt", "dpdt", "energy"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), (split, name)
    # rerunning the command finds the finished file and refuses to overwrite it
    env_out = subprocess.run(
        [sys.executable, "-m", "hamgrad", "generate", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert env_out.returncode == 2 and "already exists" in env_out.stderr


def test_an_error_on_rank_0_stops_every_rank(tmp_path, spring):
    """Rank 0 alone prepares the run directory; its refusal must not leave rank 1 waiting."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.json").write_text("{}")
    result = torchrun(
        "-m", "hamgrad", "train", spring, "--out", "taken", "--model", "hnn", "--quiet",
        cwd=tmp_path,
        succeed=False,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.startswith("hamgrad train")]
    assert sorted(lines) == [
        "hamgrad train: error: 'taken' already holds a run; pass --resume to continue it or "
        "choose another --out directory",
        "hamgrad train: error: 'taken' already holds a run; pass --resume to continue it or "
        "choose another --out directory (on rank 0, which writes the files)",
    ], result.stderr
