"""hamgrad.distributed and sharded generation, in one process (the torchrun runs are in
test_distributed_torchrun.py, marked slow).

Sharded generation is exercised through the real ``generate`` path: the environment says
``WORLD_SIZE=2, RANK=k`` and the process-group start is replaced by a stub, then rank 1 and rank 0
run one after the other (rank 0 writes the joined file once both shards exist). The collectives are
trivial in one process, so this checks the files, not the communication.
"""

from __future__ import annotations

import shutil
import socket

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamgrad import distributed
from hamgrad.datasets import generate, load_trajectories
from hamgrad.datasets.partial import partial_path
from hamgrad.datasets.sharded import (
    FORMAT_SHARD,
    SHARDS_ATTR,
    shard_path,
    shard_ranges,
)
from hamgrad.errors import DataFormatError

ARRAYS = ("t", "q", "p", "dqdt", "dpdt", "energy")
SPEC = {
    "n_trajectories": 11,
    "n_steps": 12,
    "dt": 0.1,
    "seed": 5,
    "noise_std": 0.01,
    "simulation_batch": 2,
    "progress": False,
}


@pytest.fixture(autouse=True)
def _no_torchrun_env(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)


def as_rank(monkeypatch, r: int, world: int) -> None:
    """Make this process look like rank ``r`` of ``world`` (no process group is started)."""
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(r))
    monkeypatch.setattr(distributed, "init_process_group", lambda *a, **k: True)


def generate_as_ranks(monkeypatch, path, world: int, order=None, **spec):
    """Run ``generate`` as each rank in ``order`` (rank 0 last by default)."""
    for r in order or [*range(world - 1, 0, -1), 0]:
        as_rank(monkeypatch, r, world)
        generate("spring-mass", path, **{**SPEC, **spec})
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")


def assert_same_data(a, b) -> None:
    for split in ("train", "val", "test"):
        x, y = load_trajectories(a, split), load_trajectories(b, split)
        for name in ARRAYS:
            assert np.array_equal(getattr(x, name), getattr(y, name)), (split, name)
        if x.params is not None or y.params is not None:
            assert np.array_equal(x.params, y.params)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    path = tmp_path_factory.mktemp("single") / "single.h5"
    generate("spring-mass", path, **SPEC)
    return path


# --- environment, ranks, shards ---------------------------------------------------------------


def test_single_process_defaults():
    assert distributed.world_size() == 1
    assert distributed.rank() == 0
    assert distributed.is_main()
    assert not distributed.is_distributed()
    assert distributed.init_process_group() is False  # nothing to join
    distributed.barrier()  # no-op
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.call_on_main(lambda: 7) == 7
    assert distributed.call_on_main(lambda: 7, "skip", enabled=False) == "skip"


def test_environment_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (4, 3, False)
    assert distributed.call_on_main(lambda: 7, "not main") == "not main"
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4 must be below WORLD_SIZE=4"):
        distributed.rank()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer, got 'two'"):
        distributed.world_size()
    monkeypatch.setenv("WORLD_SIZE", "0")
    with pytest.raises(ValueError, match="WORLD_SIZE must be >= 1"):
        distributed.world_size()


def test_agreement_on_one_process_reraises_the_error():
    distributed.agree(None, "nothing")  # nothing failed: returns
    with pytest.raises(KeyError, match="boom"):
        distributed.agree(KeyError("boom"), "a step")
    with pytest.raises(ValueError, match="inside"), distributed.collective("a block"):
        raise ValueError("inside")


def test_init_without_rendezvous_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(RuntimeError, match="MASTER_ADDR, MASTER_PORT not set; launch the job with"):
        distributed.init_process_group()


def test_gradient_sync_mode_is_checked(monkeypatch):
    assert distributed.gradient_sync_mode() == "ddp"
    monkeypatch.setenv("HAMGRAD_GRADIENT_SYNC", "allreduce")
    assert distributed.gradient_sync_mode() == "allreduce"
    monkeypatch.setenv("HAMGRAD_GRADIENT_SYNC", "horovod")
    with pytest.raises(ValueError, match="HAMGRAD_GRADIENT_SYNC must be one of ddp, allreduce"):
        distributed.gradient_sync_mode()


@settings(deadline=None, max_examples=60)
@given(n=st.integers(0, 500), world=st.integers(1, 17))
def test_shard_ranges_tile_the_items(n, world):
    ranges = [distributed.shard_range(n, r, world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    sizes = [i1 - i0 for i0, i1 in ranges]
    assert max(sizes) - min(sizes) <= 1


@settings(deadline=None, max_examples=60)
@given(n=st.integers(1, 300), batch=st.integers(1, 40), world=st.integers(1, 9))
def test_generation_shards_are_whole_simulation_batches(n, batch, world):
    ranges = shard_ranges(n, batch, world)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for i0, i1 in ranges:
        assert i0 % batch == 0 and (i1 % batch == 0 or i1 == n)


def test_shard_range_refuses_bad_arguments():
    with pytest.raises(ValueError, match="need 0 <= shard < n_shards"):
        distributed.shard_range(10, 2, 2)
    with pytest.raises(ValueError, match="n must be >= 0"):
        distributed.shard_range(-1, 0, 2)


def test_shard_file_names():
    assert shard_path("/d/data.h5", 0, 2).name == "data.shard-0-of-2.h5"
    assert shard_path("/d/data.h5", 3, 12).name == "data.shard-03-of-12.h5"


def test_free_port_can_be_bound():
    port = distributed.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_parallel_loss_is_the_plain_loss_on_one_process():
    model = torch.nn.Linear(3, 1)
    fn = lambda x, y: torch.mean((model(x) - y) ** 2)  # noqa: E731
    x, y = torch.randn(5, 3), torch.randn(5, 1)
    parallel = distributed.ParallelLoss(model, fn)
    loss = parallel(x, y)
    assert parallel.mode == "single"
    assert torch.equal(loss, fn(x, y))
    assert parallel.value(loss) == float(fn(x, y).detach())


# --- sharded generation (in one process) ------------------------------------------------------


def test_sharded_generation_equals_single_process(monkeypatch, tmp_path, single):
    path = tmp_path / "joined.h5"
    generate_as_ranks(monkeypatch, path, 3)
    assert_same_data(path, single)
    with h5py.File(path) as f, h5py.File(single) as g:
        assert f["train/q"].is_virtual and not g["train/q"].is_virtual
        assert sorted(f.attrs) == sorted([*g.attrs, SHARDS_ATTR])
        for key in g.attrs:
            assert f.attrs[key] == g.attrs[key], key
        names = f.attrs[SHARDS_ATTR]
    assert '"joined.shard-0-of-3.h5"' in names
    for k in range(3):
        with h5py.File(shard_path(path, k, 3)) as s:
            assert s.attrs["format"] == FORMAT_SHARD and bool(s.attrs["complete"])


def test_sharded_generation_with_varied_parameters(monkeypatch, tmp_path):
    spec = {**SPEC, "vary": {"k": (0.5, 2.0)}, "n_trajectories": 10}
    generate("spring-mass", tmp_path / "one.h5", **spec)
    generate_as_ranks(monkeypatch, tmp_path / "two.h5", 2, **spec)
    assert_same_data(tmp_path / "two.h5", tmp_path / "one.h5")
    assert load_trajectories(tmp_path / "two.h5", "train").param_names == ["k"]


def test_more_ranks_than_batches_leaves_some_shards_empty(monkeypatch, tmp_path, single):
    generate_as_ranks(monkeypatch, tmp_path / "wide.h5", 8)  # 6 batches of 2 for 8 ranks
    assert_same_data(tmp_path / "wide.h5", single)
    assert not shard_path(tmp_path / "wide.h5", 0, 8).exists()
    assert shard_path(tmp_path / "wide.h5", 7, 8).exists()


def test_joined_file_survives_moving_its_directory(monkeypatch, tmp_path, single):
    (tmp_path / "a").mkdir()
    generate_as_ranks(monkeypatch, tmp_path / "a" / "d.h5", 2)
    shutil.move(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory
    assert_same_data(tmp_path / "b" / "d.h5", single)


def test_joined_file_with_a_missing_or_damaged_shard_is_refused(monkeypatch, tmp_path):
    path = tmp_path / "d.h5"
    generate_as_ranks(monkeypatch, path, 2)
    shard1 = shard_path(path, 1, 2)
    kept = shard1.read_bytes()
    shard1.unlink()
    with pytest.raises(DataFormatError, match=r"joins shard files that are missing: d\.shard-1"):
        load_trajectories(path, "train")
    shard1.write_bytes(kept[: len(kept) // 2])
    with pytest.raises(
        DataFormatError, match="'d.shard-1-of-2.h5' is not a complete hamgrad shard"
    ):
        load_trajectories(path, "train")


def test_joined_file_appears_only_when_every_shard_is_done(monkeypatch, tmp_path, single):
    path = tmp_path / "d.h5"
    as_rank(monkeypatch, 0, 2)  # rank 0 first: rank 1's shard does not exist yet
    with pytest.raises(DataFormatError, match="d.shard-1-of-2.h5' is missing or incomplete"):
        generate("spring-mass", path, **SPEC)
    assert not path.exists() and not partial_path(path).exists()
    assert shard_path(path, 0, 2).exists()
    # rank 1 writes its shard; rank 0 reruns the same command: its shard is kept, the join is done
    generate_as_ranks(monkeypatch, path, 2)
    assert_same_data(path, single)


def test_an_interrupted_shard_resumes(monkeypatch, tmp_path, single):
    import hamgrad.datasets.sharded as sharded

    path = tmp_path / "d.h5"
    real = sharded.partial.record_progress
    calls = []

    def interrupt_after_first_chunk(f, n):
        real(f, n)
        calls.append(n)
        raise KeyboardInterrupt

    as_rank(monkeypatch, 1, 2)
    monkeypatch.setattr(sharded.partial, "record_progress", interrupt_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        generate("spring-mass", path, **{**SPEC, "chunk_size": 2})
    monkeypatch.setattr(sharded.partial, "record_progress", real)
    target = shard_path(path, 1, 2)
    assert not target.exists()
    with h5py.File(partial_path(target)) as f:
        assert int(f.attrs["n_written"]) == calls[0] == 2
    generate_as_ranks(monkeypatch, path, 2)
    assert_same_data(path, single)


def test_summary_of_a_joined_file_counts_the_mapped_data(monkeypatch, tmp_path, single):
    from hamgrad.datasets import summarize

    path = tmp_path / "joined.h5"
    generate_as_ranks(monkeypatch, path, 2)
    joined, plain = summarize(path), summarize(single)
    for split in ("train", "val", "test"):
        mapped, stored = (
            joined["splits"][split]["stored_bytes"],
            plain["splits"][split]["stored_bytes"],
        )
        # the plain file also stores a 4-byte checksum per chunk (at most one chunk per trajectory
        # in each of its five arrays)
        n = joined["splits"][split]["n_trajectories"]
        assert 0 < mapped <= stored <= mapped + 4 * 5 * n
