"""Generate a trajectory dataset: exact ground truth, streamed chunk by chunk into an HDF5 file.

:func:`generate` validates everything first, then simulates a chunk of trajectories at a time with
:func:`hamgrad.systems.ground_truth.simulate` and writes each chunk before simulating the next, so
memory stays bounded whatever the dataset size. The file is written as a partial file and renamed
when complete (see :mod:`hamgrad.datasets.partial`); an interrupted call resumes when rerun with the
same arguments.

Determinism. Trajectories carry a global index ``i`` (train first, then val, then test). The
initial state of trajectory ``i`` is ``system.sample_initial(1, seed=initial_state_seed(seed, i))``;
its noise and varied parameters come from their own streams (:mod:`hamgrad.datasets.seeding`). The
ground truth integrates trajectories in batches that may share step-size decisions (substep groups,
adaptive steps), so the batches are fixed: batch ``b`` is always the trajectories
``[b·S, min((b+1)·S, N))`` with ``S = simulation_batch`` (recorded in ``config``). Chunks are whole
batches. The stored arrays therefore depend on ``(seed, N, S)`` and the system, never on the chunk
size or on resumption, and any shard of batches can be computed on its own by :func:`simulate_range`.
With ``vary``, each trajectory is integrated alone (its own system), so ``S`` does not matter.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from hamgrad.datasets import partial
from hamgrad.datasets.resolve import resolve_system
from hamgrad.datasets.schema import (
    DEFAULT_SPLITS,
    FORMAT_TRAJECTORIES,
    SCHEMA_VERSION,
    TRAJECTORY_ARRAYS,
    check_compression,
    dataset_options,
    to_json,
)
from hamgrad.datasets.seeding import (
    SEED_BOUND,
    initial_state_seed,
    noise_generator,
    params_generator,
)
from hamgrad.datasets.splits import normalize_splits, split_counts, split_ranges
from hamgrad.errors import ConvergenceError, DivergenceError
from hamgrad.validation import check_finite_float, check_positive_float, check_positive_int

#: Automatic chunk size: about this many bytes of float64 states per chunk.
CHUNK_TARGET_BYTES = 16 << 20
#: Largest automatic simulation batch (a power of two).
MAX_SIMULATION_BATCH = 64

#: Keys of ``config`` that do not change the stored arrays (a rerun may change them and resume).
VOLATILE_CONFIG = ("chunk_size",)


def ground_truth_simulate(system: Any, x0: torch.Tensor, dt: float, n_steps: int) -> torch.Tensor:
    """The exact ground truth: ``hamgrad.systems.ground_truth.simulate`` -> ``(B, n_steps+1, 2n)``."""
    from hamgrad.systems import ground_truth

    return ground_truth.simulate(system, x0, dt, n_steps)


def integrator_description(system: Any) -> tuple[str, dict[str, Any]]:
    """Name and parameters of the ground-truth integrator used for ``system`` (for the file attrs).

    Uses ``ground_truth.describe(system)`` when that exists; otherwise the method and tolerances
    ``simulate`` documents: an 8th-order composition with per-trajectory substeps for separable
    systems, adaptive Dormand–Prince 8(7) otherwise, each checked against an energy tolerance.
    """
    from hamgrad.systems import ground_truth

    describe = getattr(ground_truth, "describe", None)
    if callable(describe):
        info = dict(describe(system))
        return str(info.pop("method")), info
    params: dict[str, Any] = {"function": "hamgrad.systems.ground_truth.simulate"}
    if system.separable:
        method = getattr(ground_truth, "SEPARABLE_METHOD", "default")
        params["substeps"] = "per trajectory: ceil(dt / system.max_substep(x0))"
    else:
        method = getattr(ground_truth, "GENERAL_METHOD", "default")
        tol = getattr(ground_truth, "ADAPTIVE_TOL", None)
        if tol is not None:
            params.update(rtol=tol, atol=tol)
    energy_rtol = getattr(ground_truth, "ENERGY_RTOL", None)
    if energy_rtol is not None:
        params["energy_rtol"] = energy_rtol
    return str(method), params


@dataclass(frozen=True)
class GenerationPlan:
    """Everything that fixes the stored arrays, validated."""

    n_trajectories: int
    n_steps: int
    dt: float
    seed: int
    noise_std: float
    splits: dict[str, float]
    counts: dict[str, int]
    vary: dict[str, tuple[float, float]]
    simulation_batch: int

    @property
    def ranges(self) -> dict[str, tuple[int, int]]:
        return split_ranges(self.counts)

    def batch_range(self, b: int) -> tuple[int, int]:
        """Global index range of simulation batch ``b``."""
        s = self.simulation_batch
        return b * s, min((b + 1) * s, self.n_trajectories)


def default_simulation_batch(dof: int, n_steps: int) -> int:
    """Trajectories integrated together: a power of two, at most 64, about 16 MiB of states."""
    per_trajectory = 8 * 2 * dof * (n_steps + 1)
    batch = max(1, min(MAX_SIMULATION_BATCH, CHUNK_TARGET_BYTES // per_trajectory))
    return 1 << (batch.bit_length() - 1)


def check_seed(seed: Any) -> int:
    """A root seed: an integer in ``[0, 2**63)``."""
    seed = check_positive_int("seed", seed, allow_zero=True)
    if seed >= SEED_BOUND:
        raise ValueError(f"seed must be below 2**63, got {seed}")
    return seed


def _check_vary(
    vary: Mapping[str, Sequence[float]] | None, params: Mapping[str, Any], name: str
) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for key in sorted(vary or {}):
        if key not in params:
            raise ValueError(
                f"cannot vary unknown parameter {key!r} of system {name!r}; "
                f"parameters: {', '.join(params) or 'none'}"
            )
        rng = vary[key]
        if isinstance(rng, (str, bytes)) or not isinstance(rng, Sequence) or len(rng) != 2:
            raise ValueError(f"vary[{key!r}] must be a (low, high) pair, got {rng!r}")
        lo, hi = (check_finite_float(f"vary[{key!r}]", v) for v in rng)
        if not lo <= hi:
            raise ValueError(f"vary[{key!r}] must have low <= high, got {rng!r}")
        out[key] = (lo, hi)
    return out


def _pick(name: str, explicit: Any, preset: Mapping[str, Any], default: Any = None) -> Any:
    if explicit is not None:
        return explicit
    if name in preset:
        return preset[name]
    if default is None:
        raise ValueError(f"{name} is required (give it, or a preset that sets it)")
    return default


def simulate_range(
    system: Any,
    plan: GenerationPlan,
    i0: int,
    i1: int,
    *,
    simulate: Any = None,
) -> dict[str, np.ndarray]:
    """Trajectories ``[i0, i1)`` of the dataset: the arrays to store, float64 numpy.

    Returns ``q, p, dqdt, dpdt`` of shape ``(i1 - i0, T+1, n)``, ``energy`` ``(i1 - i0, T+1)``
    and, when parameters vary, ``params`` ``(i1 - i0, k)``. ``q, p`` carry the observation noise
    (if any); ``dqdt, dpdt`` and ``energy`` are exact, of the clean states. Every simulation batch
    meeting ``[i0, i1)`` is integrated whole, so the result equals the same rows of any other call.
    """
    if not 0 <= i0 < i1 <= plan.n_trajectories:
        raise ValueError(f"need 0 <= i0 < i1 <= {plan.n_trajectories}, got [{i0}, {i1})")
    s = plan.simulation_batch
    pieces = [
        _simulate_batch(system, plan, b, simulate or ground_truth_simulate)
        for b in range(i0 // s, (i1 - 1) // s + 1)
    ]
    if len(pieces) == 1:
        arrays = pieces[0]
    else:
        arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    offset = (i0 // s) * s
    if i0 == offset and i1 - i0 == len(arrays["q"]):
        return arrays  # whole batches: no copy
    return {k: np.ascontiguousarray(v[i0 - offset : i1 - offset]) for k, v in arrays.items()}


def _simulate_batch(
    system: Any, plan: GenerationPlan, b: int, simulate: Any
) -> dict[str, np.ndarray]:
    """The stored arrays of simulation batch ``b``."""
    i0, i1 = plan.batch_range(b)
    n = system.dof
    indices = range(i0, i1)
    if plan.vary:
        pieces, values = [], []
        for i in indices:
            rng = params_generator(plan.seed, i)
            drawn = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in plan.vary.items()}
            sys_i = type(system)(**{**system.params, **drawn})
            if sys_i.dof != n:
                raise ValueError(
                    f"varying {sorted(drawn)} changes the system's dof; vary other parameters"
                )
            x0 = sys_i.sample_initial(1, seed=initial_state_seed(plan.seed, i))
            pieces.append(_clean_arrays(sys_i, simulate, x0, plan, i))
            values.append([drawn[k] for k in plan.vary])
        arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
        arrays["params"] = np.asarray(values, dtype=np.float64)
    else:
        x0 = torch.cat(
            [system.sample_initial(1, seed=initial_state_seed(plan.seed, i)) for i in indices]
        )
        arrays = _clean_arrays(system, simulate, x0, plan, i0)
    if plan.noise_std > 0:
        for row, i in enumerate(indices):
            noise = noise_generator(plan.seed, i).standard_normal((plan.n_steps + 1, 2 * n))
            arrays["q"][row] += plan.noise_std * noise[:, :n]
            arrays["p"][row] += plan.noise_std * noise[:, n:]
    return arrays


def _clean_arrays(
    system: Any, simulate: Any, x0: torch.Tensor, plan: GenerationPlan, first: int
) -> dict[str, np.ndarray]:
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    with torch.no_grad():
        traj = torch.as_tensor(simulate(system, x0, plan.dt, plan.n_steps), dtype=torch.float64)
        expected = (x0.shape[0], plan.n_steps + 1, 2 * system.dof)
        if tuple(traj.shape) != expected:
            raise RuntimeError(
                f"ground truth returned shape {tuple(traj.shape)}, expected {expected}"
            )
        bad = (~torch.isfinite(traj)).flatten(1).any(dim=1)
        if bool(bad.any()):
            rows = [first + int(r) for r in torch.nonzero(bad).flatten()[:5]]
            raise DivergenceError(
                f"ground truth diverged (non-finite state) for trajectories {rows}; "
                "use a smaller dt or fewer steps"
            )
        dxdt = torch.as_tensor(system.vector_field(traj), dtype=torch.float64)
        energy = torch.as_tensor(system.hamiltonian(traj), dtype=torch.float64)
    n = system.dof
    x, v = traj.numpy(), dxdt.numpy()
    return {
        "q": np.ascontiguousarray(x[..., :n]),
        "p": np.ascontiguousarray(x[..., n:]),
        "dqdt": np.ascontiguousarray(v[..., :n]),
        "dpdt": np.ascontiguousarray(v[..., n:]),
        "energy": np.ascontiguousarray(energy.numpy()),
    }


def generate(
    system: Any,
    path: str | os.PathLike,
    *,
    n_trajectories: int | None = None,
    n_steps: int | None = None,
    dt: float | None = None,
    seed: int = 0,
    splits: Mapping[str, float] | Sequence[float] | None = None,
    noise_std: float | None = None,
    preset: str | None = None,
    params: Mapping[str, Any] | None = None,
    vary: Mapping[str, Sequence[float]] | None = None,
    chunk_size: int | None = None,
    simulation_batch: int | None = None,
    compression: str | None = None,
    compression_opts: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a trajectory dataset (HDF5 schema v1) of ``system`` to ``path``; return the path.

    Args:
        system: a registry name (``"pendulum"``) or a System instance.
        path: destination file. Written as ``.<name>.partial`` beside it and renamed when complete.
        n_trajectories: number of trajectories N over all splits.
        n_steps: stored steps T per trajectory (T+1 states, the initial one included).
        dt: time between stored states (time units of the system).
        seed: root seed (integer in [0, 2**63)); trajectory i depends on (seed, i) only.
        splits: fractions per split, ``{"train": .8, "val": .1, "test": .1}`` (default) or a tuple.
        noise_std: standard deviation of Gaussian noise added to the stored q and p (0 = none);
            dqdt, dpdt and energy stay those of the clean states.
        preset: a name in ``system.presets`` (e.g. ``"hnn"``) supplying params, n_trajectories,
            n_steps, dt, noise_std and splits; explicit arguments override it.
        params: system parameters (with a system name), overriding the preset's.
        vary: ``{param: (low, high)}``: draw these parameters per trajectory, uniformly; the values
            are stored in the split's ``params`` dataset (N, k).
        chunk_size: trajectories simulated and written at a time, rounded down to whole
            simulation batches (default: about 16 MiB of states). Does not change the stored values.
        simulation_batch: trajectories the ground truth integrates together (default: a power of
            two up to 64, about 16 MiB of states; recorded in ``config``). Batch b is always the
            indices ``[b·S, (b+1)·S)``.
        compression: ``None`` (default), ``"gzip"`` or ``"lzf"``; ``compression_opts``: gzip level.
        overwrite: replace an existing file at ``path``.
        progress: show a progress bar on stderr.
    """
    resolved = resolve_system(system, params=params, preset=preset, kind="dynamics")
    chosen = resolved.preset
    n_trajectories = check_positive_int(
        "n_trajectories", _pick("n_trajectories", n_trajectories, chosen)
    )
    n_steps = check_positive_int("n_steps", _pick("n_steps", n_steps, chosen))
    dt = check_positive_float("dt", _pick("dt", dt, chosen))
    noise_std = check_positive_float(
        "noise_std", _pick("noise_std", noise_std, chosen, 0.0), allow_zero=True
    )
    fractions = normalize_splits(_pick("splits", splits, chosen, DEFAULT_SPLITS))
    seed = check_seed(seed)
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    if simulation_batch is not None:
        simulation_batch = check_positive_int("simulation_batch", simulation_batch)
    sys_obj = resolved.system
    n = int(sys_obj.dof)
    if simulation_batch is None:
        simulation_batch = default_simulation_batch(n, n_steps)
    check_compression(compression, compression_opts)
    plan = GenerationPlan(
        n_trajectories=n_trajectories,
        n_steps=n_steps,
        dt=dt,
        seed=seed,
        noise_std=noise_std,
        splits=fractions,
        counts=split_counts(n_trajectories, fractions),
        vary=_check_vary(vary, resolved.params, resolved.name),
        simulation_batch=simulation_batch,
    )
    if chunk_size is None:
        chunk_size = CHUNK_TARGET_BYTES // (8 * 2 * n * (n_steps + 1))
    batches_per_chunk = max(1, chunk_size // simulation_batch)
    path = partial.check_destination(path, overwrite=overwrite)

    from hamgrad import __version__

    config = {
        "function": "hamgrad.datasets.generate",
        "system": resolved.name,
        "params": resolved.params,
        "preset": preset,
        "n_trajectories": n_trajectories,
        "n_steps": n_steps,
        "dt": dt,
        "seed": seed,
        "splits": fractions,
        "noise_std": noise_std,
        "vary": {k: list(v) for k, v in plan.vary.items()},
        "chunk_size": batches_per_chunk * simulation_batch,
        "simulation_batch": simulation_batch,
        "compression": compression,
        "compression_opts": compression_opts,
    }
    integrator, integrator_params = integrator_description(sys_obj)
    root_attrs = {
        "format": FORMAT_TRAJECTORIES,
        "schema_version": SCHEMA_VERSION,
        "hamgrad_version": __version__,
        "system": resolved.name,
        "system_params": to_json(resolved.params),
        "dof": n,
        "dt": dt,
        "n_steps": n_steps,
        "seed": seed,
        "integrator": integrator,
        "integrator_params": to_json(integrator_params),
        "noise_std": noise_std,
        "config": to_json(config),
    }
    from hamgrad import distributed

    if distributed.init_process_group():  # under torchrun: one shard per rank, then a joined file
        from hamgrad.datasets.sharded import generate_sharded

        return generate_sharded(
            path,
            sys_obj,
            plan,
            root_attrs,
            volatile=VOLATILE_CONFIG,
            compression=compression,
            compression_opts=compression_opts,
            batches_per_chunk=batches_per_chunk,
            progress=progress,
            name=resolved.name,
            overwrite=overwrite,
        )

    def create(f: h5py.File) -> None:
        opts = {"compression": compression, "compression_opts": compression_opts}
        f.create_dataset("t", data=dt * np.arange(n_steps + 1, dtype=np.float64), **_small(opts))
        for split, count in plan.counts.items():
            g = f.create_group(split)
            for name in ("q", "p", "dqdt", "dpdt"):
                g.create_dataset(name, **dataset_options((count, n_steps + 1, n), **opts))
            g.create_dataset("energy", **dataset_options((count, n_steps + 1), **opts))
            if plan.vary:
                d = g.create_dataset("params", **dataset_options((count, len(plan.vary)), **opts))
                d.attrs["names"] = to_json(list(plan.vary))

    def verify(f: h5py.File, n_written: int) -> None:
        if n_written % simulation_batch and n_written != n_trajectories:
            raise ValueError("progress is not at a batch boundary")
        if n_written == 0:
            return
        split, row = _locate(plan, n_written - 1)
        for name in TRAJECTORY_ARRAYS:
            if not np.isfinite(f[split][name][row]).all():
                raise ValueError(f"{split}/{name}[{row}] was not written")

    f, done = partial.open_partial(
        path,
        root_attrs=root_attrs,
        volatile=VOLATILE_CONFIG,
        total=n_trajectories,
        create=create,
        verify=verify,
    )
    try:
        _fill(f, sys_obj, plan, done, batches_per_chunk, progress, resolved.name)
    except (DivergenceError, ConvergenceError, ValueError, TypeError):
        partial.discard(f, path)  # a rerun would fail the same way
        raise
    except BaseException as exc:
        if partial.is_write_failure(exc):  # disk full or I/O error: a clear error, no file left
            raise partial.write_failed(f, path, exc) from None
        f.close()  # keep the partial file: a rerun resumes from its last recorded chunk
        raise
    partial.finalize(f, path)
    return path


def _small(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Options of a 1-D dataset (``t``): checksummed chunks, same compression, no fill value."""
    out = {"fletcher32": True, "chunks": True}
    if opts["compression"] is not None:
        out["compression"] = opts["compression"]
        if opts["compression_opts"] is not None:
            out["compression_opts"] = opts["compression_opts"]
    return out


def _locate(plan: GenerationPlan, index: int) -> tuple[str, int]:
    for split, (start, stop) in plan.ranges.items():
        if start <= index < stop:
            return split, index - start
    raise IndexError(index)


def _fill(
    f: h5py.File,
    system: Any,
    plan: GenerationPlan,
    done: int,
    batches_per_chunk: int,
    progress: bool,
    name: str,
) -> None:
    """Simulate and write chunks of whole batches from trajectory ``done`` (a batch boundary) on."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=plan.n_trajectories,
        initial=done,
        unit="traj",
        desc=f"generate {name}",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    step = batches_per_chunk * plan.simulation_batch
    try:
        for i0 in range(done, plan.n_trajectories, step):
            i1 = min(i0 + step, plan.n_trajectories)
            partial.check_room(f)  # a full disk is a clear error, not a crash inside HDF5
            arrays = simulate_range(system, plan, i0, i1)
            for split, (start, stop) in plan.ranges.items():
                lo, hi = max(i0, start), min(i1, stop)
                if lo < hi:
                    group = f[split]
                    for key, value in arrays.items():
                        group[key][lo - start : hi - start] = value[lo - i0 : hi - i0]
            partial.record_progress(f, i1)
            bar.update(i1 - i0)
    finally:
        bar.close()
