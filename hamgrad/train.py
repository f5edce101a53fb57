"""Training loops: gradient-field regression and learning Hamiltonian dynamics.

``fit_gradient_field`` (static fields) lives in :mod:`hamgrad.field_training` and is re-exported here.

Dynamics: :func:`train_dynamics` fits a learned Hamiltonian (or the ``mlp`` vector field) to the
trajectories of an HDF5 dataset and keeps everything in a run directory (``config.json``,
``checkpoint.pt``, ``metrics.csv``; see :mod:`hamgrad.checkpoints`). Two losses:

- ``"derivative"`` (HNN's loss): mean over the batch and coordinates of ``(J∇H(x) − dx/dt)²``, with
  ``dx/dt`` the dataset's analytic derivatives (``targets="analytic"``) or central differences of
  the stored states (``targets="finite-difference"``: learning from trajectories alone);
- ``"rollout"``: unroll ``rollout_steps`` steps with an integrator from windows of the training
  trajectories; mean squared error of the predicted states.

Reproducibility: the model's initialisation, the batch order and the input noise are functions of
``seed`` and the step number only, and the learning rate is a function of the step, so a run
interrupted and resumed from its checkpoint ends with bit-identical weights.

Structure (for distributed training): :func:`train_dynamics` holds the whole loop; model and
optimiser setup is :func:`build_training_model` / :func:`make_optimizer`; the batch order is
:class:`EpochSampler` (one global batch per step; ranks would take slices of it); every file write
goes through the ``writes_files`` flag (only rank 0 would write).
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hamgrad.checkpoints import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    latest_checkpoint,
    load_checkpoint,
    prepare_run_dir,
    read_run_config,
    save_checkpoint,
    write_run_config,
)
from hamgrad.errors import CheckpointError, DataFormatError, DivergenceError
from hamgrad.field_training import fit_gradient_field  # noqa: F401
from hamgrad.validation import (
    check_choice,
    check_positive_float,
    check_positive_int,
)

LOSSES = ("derivative", "rollout")
TARGETS = ("analytic", "finite-difference")
SCHEDULES = ("constant", "cosine", "step")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
METRIC_COLUMNS = ("step", "loss", "lr", "val_loss", "elapsed_s")

__all__ = [
    "fit_gradient_field",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "EpochSampler",
    "train_dynamics",
    "load_trained",
    "load_training_data",
    "finite_difference_derivatives",
    "learning_rate",
    "derivative_loss",
    "rollout_loss",
    "default_integrator",
    "build_training_model",
    "make_optimizer",
    "check_trajectory_file",
]


# --- configuration ----------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything that defines a dynamics training run (stored in ``RUN/config.json``).

    Model: ``model`` (a name of :data:`hamgrad.models.MODEL_NAMES`), ``separable`` (H = T(p) + V(q)
    with ``kinetic_model`` for T), size by ``param_budget`` or ``width``, ``model_options`` for
    :func:`hamgrad.models.build_model`, ``dtype`` ("float32" or "float64").
    Optimisation: Adam with ``lr``, ``weight_decay``, ``schedule`` ("constant", "cosine" to
    ``lr·lr_final_factor``, "step": ×0.1 at 50% and 75% of the steps), ``warmup_steps`` (linear),
    optional ``grad_clip`` (max gradient norm), ``steps`` of ``batch_size`` samples.
    Loss: ``loss`` ("derivative" or "rollout"), ``targets`` ("analytic" or "finite-difference"),
    ``rollout_steps`` and ``integrator`` for the rollout loss, ``input_noise`` (std of Gaussian noise
    added to the input states of each batch). Bookkeeping: ``seed``, ``checkpoint_every``,
    ``log_every`` (steps between rows of ``metrics.csv``), ``val_size`` (validation points used).
    """

    model: str = "gradnet-m"
    separable: bool = False
    kinetic_model: str | None = None
    param_budget: int | None = None
    width: int | None = None
    model_options: dict = field(default_factory=dict)
    dtype: str = "float32"
    steps: int = 2000
    batch_size: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    lr_final_factor: float = 0.01
    warmup_steps: int = 0
    grad_clip: float | None = None
    loss: str = "derivative"
    targets: str = "analytic"
    rollout_steps: int = 4
    integrator: str | None = None
    input_noise: float = 0.0
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 100
    val_size: int = 2000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raises ``ValueError``/``TypeError`` naming the bad one."""
        from hamgrad.models import MODEL_NAMES

        check_choice("model", self.model, MODEL_NAMES)
        if self.kinetic_model is not None:
            check_choice("kinetic_model", self.kinetic_model, MODEL_NAMES)
        if self.param_budget is not None and self.width is not None:
            raise ValueError("give either param_budget or width, not both")
        if self.param_budget is not None:
            check_positive_int("param_budget", self.param_budget)
        if self.width is not None:
            check_positive_int("width", self.width)
        check_choice("dtype", self.dtype, DTYPES)
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)
        check_positive_float("weight_decay", self.weight_decay, allow_zero=True)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_positive_float("lr_final_factor", self.lr_final_factor, allow_zero=True)
        check_positive_int("warmup_steps", self.warmup_steps, allow_zero=True)
        if self.grad_clip is not None:
            check_positive_float("grad_clip", self.grad_clip)
        check_choice("loss", self.loss, LOSSES)
        check_choice("targets", self.targets, TARGETS)
        check_positive_int("rollout_steps", self.rollout_steps)
        check_positive_float("input_noise", self.input_noise, allow_zero=True)
        check_positive_int("seed", self.seed, allow_zero=True)
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_positive_int("log_every", self.log_every)
        check_positive_int("val_size", self.val_size)
        if self.model == "mlp" and self.separable:
            raise ValueError("model 'mlp' is an unconstrained vector field; it cannot be separable")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    """What :func:`train_dynamics` returns: the trained model, where the run lives, its history."""

    model: nn.Module
    run_dir: Path
    config: TrainConfig
    steps_done: int
    history: list[dict[str, float]]
    seconds: float


# --- data -------------------------------------------------------------------------------------


def check_trajectory_file(path: str | os.PathLike) -> dict[str, Any]:
    """Check that ``path`` is a hamgrad trajectory file; return its root attributes.

    A gradient-field file (format ``hamgrad-fields``), a foreign HDF5 file or a non-HDF5 file raise
    :class:`DataFormatError` with a message that says what was found.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise DataFormatError(f"{str(path)!r} is not a readable HDF5 file ({exc})") from exc
    fmt = attrs.get("format")
    if fmt == "hamgrad-fields":
        raise DataFormatError(
            f"{str(path)!r} is a static gradient-field dataset (format 'hamgrad-fields'); "
            "dynamics training needs a trajectory dataset (format 'hamgrad-trajectories'), "
            "train field models with `hamgrad fields`"
        )
    if fmt != "hamgrad-trajectories":
        raise DataFormatError(
            f"{str(path)!r} is not a hamgrad trajectory dataset (format {fmt!r}, "
            "expected 'hamgrad-trajectories')"
        )
    return attrs


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _split_names(path: str | os.PathLike) -> list[str]:
    import h5py

    with h5py.File(path, "r") as f:
        return [
            name
            for name, obj in f.items()
            if isinstance(obj, h5py.Group) and "q" in obj and obj["q"].shape[0] > 0
        ]


def finite_difference_derivatives(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """dx/dt estimated from stored states alone: second-order central differences inside,
    second-order one-sided differences at both ends (``numpy.gradient``, ``edge_order=2``).

    ``x`` (N, T+1, D), ``t`` (T+1,) -> (N, T+1, D). Needs at least 3 time points.
    """
    if x.shape[-2] < 3:
        raise ValueError(
            f"finite-difference targets need at least 3 time points per trajectory, got {x.shape[-2]}"
        )
    return np.gradient(x, t, axis=-2, edge_order=2)


@dataclass
class TrainingData:
    """One split of a trajectory dataset in memory: states ``x`` and targets ``dxdt`` (N, T+1, 2n)
    as float64 numpy arrays, times ``t`` (T+1,), and the file's root attributes."""

    x: np.ndarray
    dxdt: np.ndarray
    t: np.ndarray
    attrs: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.x.shape[-1])

    @property
    def dt(self) -> float:
        steps = np.diff(self.t)
        if not np.allclose(steps, steps[0], rtol=1e-9, atol=0):
            raise DataFormatError("the dataset's time grid is not uniform; rollout loss needs one")
        return float(steps[0])

    def states(self) -> np.ndarray:
        """All states as (N·(T+1), 2n)."""
        return self.x.reshape(-1, self.dim)

    def derivatives(self) -> np.ndarray:
        """All targets as (N·(T+1), 2n)."""
        return self.dxdt.reshape(-1, self.dim)

    def windows(self, k: int) -> np.ndarray:
        """Every window of ``k + 1`` consecutive states: (N·(T+1−k), k+1, 2n)."""
        n_points = self.x.shape[1]
        if k >= n_points:
            raise ValueError(
                f"rollout_steps must be smaller than the number of time points per trajectory "
                f"({n_points}), got {k}"
            )
        view = np.lib.stride_tricks.sliding_window_view(self.x, k + 1, axis=1)
        # (N, T+1-k, 2n, k+1) -> (N, T+1-k, k+1, 2n)
        return np.ascontiguousarray(np.moveaxis(view, -1, -2)).reshape(-1, k + 1, self.dim)


def load_training_data(
    path: str | os.PathLike, split: str = "train", targets: str = "analytic"
) -> TrainingData:
    """Load one split of a trajectory file with the chosen derivative targets."""
    from hamgrad.datasets import load_trajectories

    check_choice("targets", targets, TARGETS)
    attrs = check_trajectory_file(path)
    available = _split_names(path)
    if split not in available:
        raise DataFormatError(
            f"{str(path)!r} has no (non-empty) split {split!r}; it has: {', '.join(available)}"
        )
    traj = load_trajectories(path, split)
    x = np.asarray(traj.x, dtype=np.float64)
    t = np.asarray(traj.t, dtype=np.float64)
    if targets == "analytic":
        dxdt = np.asarray(traj.dxdt, dtype=np.float64)
    else:
        dxdt = finite_difference_derivatives(x, t)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(dxdt))):
        raise DataFormatError(f"{str(path)!r} split {split!r} holds non-finite values")
    return TrainingData(x=x, dxdt=dxdt, t=t, attrs=attrs)


# --- batching, schedule, losses ---------------------------------------------------------------


def _derived_seed(*words: int) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence), independent across ``words``."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


_ORDER_STREAM = 1
_NOISE_STREAM = 2


class EpochSampler:
    """The global batch of every step, a pure function of ``(seed, step)``.

    Samples are visited in epochs: epoch ``e`` is a permutation of the ``n_items`` samples drawn from
    a generator seeded by ``(seed, e)``, cut into ``n_items // batch_size`` batches (the remainder of
    an epoch is skipped). A batch at least as large as the data set is the full data set every step.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int):
        self.n_items = check_positive_int("n_items", n_items)
        self.batch_size = min(check_positive_int("batch_size", batch_size), self.n_items)
        self.seed = seed
        self.batches_per_epoch = self.n_items // self.batch_size
        self._epoch = -1
        self._perm: torch.Tensor | None = None

    @property
    def full_batch(self) -> bool:
        return self.batch_size == self.n_items

    def indices(self, step: int) -> torch.Tensor:
        """Sample indices (``batch_size``,) for optimisation step ``step`` (0-based)."""
        if self.full_batch:
            return torch.arange(self.n_items)
        epoch, b = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(_derived_seed(self.seed, _ORDER_STREAM, epoch))
            self._perm = torch.randperm(self.n_items, generator=g)
            self._epoch = epoch
        return self._perm[b * self.batch_size : (b + 1) * self.batch_size]


def learning_rate(step: int, config: TrainConfig) -> float:
    """The learning rate used at optimisation step ``step`` (0-based)."""
    base = config.lr
    if config.warmup_steps and step < config.warmup_steps:
        return base * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return base
    span = max(config.steps - config.warmup_steps, 1)
    frac = min(max(step - config.warmup_steps, 0) / span, 1.0)
    if config.schedule == "cosine":
        final = base * config.lr_final_factor
        return final + 0.5 * (base - final) * (1.0 + math.cos(math.pi * frac))
    # "step": divide by 10 at 50% and again at 75% of the steps
    return base * (0.1 ** (int(frac >= 0.5) + int(frac >= 0.75)))


def default_integrator(model: nn.Module) -> str:
    """Integrator for training rollouts: leapfrog for separable Hamiltonians, rk4 otherwise."""
    return "leapfrog" if getattr(model, "separable", False) else "rk4"


def _vector_field(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "vector_field"):
        return model.vector_field(x)
    from hamgrad.hamiltonian import apply_J

    return apply_J(model.grad(x))


def derivative_loss(model: nn.Module, x: torch.Tensor, dxdt: torch.Tensor) -> torch.Tensor:
    """HNN's loss: mean over batch and coordinates of ``(J∇H(x) − dx/dt)²``."""
    return torch.mean((_vector_field(model, x) - dxdt) ** 2)


def rollout_loss(
    model: nn.Module, windows: torch.Tensor, dt: float, method: str, **options: Any
) -> torch.Tensor:
    """Mean squared state error of a ``k``-step rollout from ``windows[:, 0]``; windows (B, k+1, 2n)."""
    from hamgrad.integrators import rollout

    k = windows.shape[1] - 1
    pred = rollout(model, windows[:, 0], dt, k, method=method, **options)
    return torch.mean((pred[:, 1:] - windows[:, 1:]) ** 2)


# --- model and optimiser ----------------------------------------------------------------------


def build_training_model(config: TrainConfig, dof: int) -> nn.Module:
    """The model a run trains (its initialisation seeded by ``config.seed``)."""
    from hamgrad.hamiltonian import build_hamiltonian

    return build_hamiltonian(
        config.model,
        dof,
        separable=config.separable,
        param_budget=config.param_budget,
        width=config.width,
        kinetic_model=config.kinetic_model,
        dtype=DTYPES[config.dtype],
        seed=config.seed,
        **config.model_options,
    )


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam over all trainable parameters (the learning rate is set at every step)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def load_trained(
    run_dir: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a run directory and its configuration (``config.json``).

    Raises :class:`CheckpointError` for a missing, foreign or corrupt run or checkpoint.
    """
    stored = read_run_config(run_dir)
    path = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if path is None:
        raise CheckpointError(f"run {str(run_dir)!r} has no checkpoint yet ({CHECKPOINT_NAME})")
    state = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(stored["train"])
        dof = int(stored["data"]["dof"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(run_dir)!r} has an invalid config.json ({exc})") from exc
    model = build_training_model(config, dof)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model of {str(run_dir)!r} ({first})"
        ) from exc
    model.eval()
    return model, stored


# --- the training loop ------------------------------------------------------------------------


def _write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    from hamgrad.atomic import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(METRIC_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def _read_metrics(path: Path, up_to_step: int) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = int(row["step"])
            except (KeyError, ValueError):
                continue
            if step > up_to_step:
                continue
            rows.append({k: (float(v) if v not in ("", None) else None) for k, v in row.items()})
            rows[-1]["step"] = step
    return rows


_RESUME_KEYS = (
    "model",
    "separable",
    "kinetic_model",
    "param_budget",
    "width",
    "model_options",
    "dtype",
    "loss",
    "targets",
    "seed",
)


def _check_resume_config(stored: dict[str, Any], config: TrainConfig, dim: int, run: Path) -> None:
    old = stored.get("train", {})
    for key in _RESUME_KEYS:
        if key in old and old[key] != getattr(config, key):
            raise CheckpointError(
                f"cannot resume {str(run)!r}: it was started with {key}={old[key]!r}, "
                f"this call has {key}={getattr(config, key)!r}"
            )
    old_dim = stored.get("data", {}).get("dim")
    if old_dim is not None and int(old_dim) != dim:
        raise CheckpointError(
            f"cannot resume {str(run)!r}: it was trained on states of dimension {old_dim}, "
            f"the data has dimension {dim}"
        )


def _model_state_for_checkpoint(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_dynamics(
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    module: nn.Module | None = None,
    writes_files: bool = True,
    description: str | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a learned Hamiltonian on the trajectories in ``data``; the run lives in ``out``.

    ``config`` (or keyword ``overrides`` of :class:`TrainConfig` fields) defines the run.
    ``module`` replaces the model the config would build (its ``dim`` must match the data).
    ``resume=True`` continues the run in ``out`` from its checkpoint; the stored configuration is
    used, and given settings that contradict it are refused (``steps`` may be raised).
    A non-finite loss raises :class:`DivergenceError`; the last checkpoint written is kept.
    """
    t_start = time.perf_counter()
    stored = read_run_config(out) if resume else None
    if config is None:
        base = stored.get("train", {}) if stored is not None else {}
        config = TrainConfig.from_dict({**base, **overrides})
    elif overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})

    run = prepare_run_dir(out, resume=resume) if writes_files else Path(out)
    train_data = load_training_data(data, "train", config.targets)
    dim = train_data.dim
    splits = _split_names(data)
    val_data = load_training_data(data, "val", config.targets) if "val" in splits else None
    if stored is not None:
        _check_resume_config(stored, config, dim, run)

    # --- model and optimiser (a distributed version wraps the model here) ---
    model = module if module is not None else build_training_model(config, dim // 2)
    model_dim = getattr(model, "dim", None)
    if model_dim != dim:
        raise ValueError(
            f"model dimension {model_dim} does not match the data: states in {str(data)!r} have "
            f"dimension {dim} (dof {dim // 2})"
        )
    dtype = next(model.parameters()).dtype
    optimizer = make_optimizer(model, config)

    # --- training samples ---
    if config.loss == "derivative":
        inputs = torch.as_tensor(train_data.states(), dtype=dtype)
        targets = torch.as_tensor(train_data.derivatives(), dtype=dtype)
        n_items = inputs.shape[0]
    else:
        inputs = torch.as_tensor(train_data.windows(config.rollout_steps), dtype=dtype)
        targets = None
        n_items = inputs.shape[0]
        dt = train_data.dt
        method = config.integrator or default_integrator(model)
    sampler = EpochSampler(n_items, config.batch_size, config.seed)

    val_inputs = val_targets = None
    if val_data is not None:
        if config.loss == "derivative":
            vx, vd = val_data.states(), val_data.derivatives()
        else:
            vx, vd = val_data.windows(config.rollout_steps), None
        take = np.linspace(0, vx.shape[0] - 1, min(config.val_size, vx.shape[0])).astype(int)
        val_inputs = torch.as_tensor(vx[take], dtype=dtype)
        val_targets = None if vd is None else torch.as_tensor(vd[take], dtype=dtype)

    def batch_loss(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if config.loss == "derivative":
            return derivative_loss(model, x, y)
        return rollout_loss(model, x, dt, method)

    def validation_loss() -> float | None:
        if val_inputs is None:
            return None
        model.eval()
        loss = batch_loss(val_inputs, val_targets)
        model.train()
        return float(loss.detach())

    # --- start or resume ---
    start = 0
    history: list[dict[str, float]] = []
    ckpt_path = run / CHECKPOINT_NAME
    metrics_path = run / METRICS_NAME
    if resume and latest_checkpoint(run) is not None:
        state = load_checkpoint(ckpt_path)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(
                f"checkpoint {str(ckpt_path)!r} does not match this model ({first})"
            ) from exc
        if "rng" in state and isinstance(state["rng"], torch.Tensor):
            torch.set_rng_state(state["rng"])
        start = int(state["step"])
        history = _read_metrics(metrics_path, start)
    if writes_files:
        run_config = {
            "train": config.to_dict(),
            "data": {
                "path": str(Path(data).resolve()),
                "system": train_data.attrs.get("system"),
                "dof": dim // 2,
                "dim": dim,
                "dt": float(train_data.t[1] - train_data.t[0]) if train_data.t.size > 1 else None,
                "n_train_trajectories": int(train_data.x.shape[0]),
            },
            "model_class": type(model).__name__,
            "n_params": int(sum(p.numel() for p in model.parameters())),
        }
        write_run_config(run, run_config)

    def checkpoint(step_done: int) -> None:
        if not writes_files:
            return
        save_checkpoint(
            ckpt_path,
            {
                "step": step_done,
                "model": _model_state_for_checkpoint(model),
                "optimizer": optimizer.state_dict(),
                "schedule": {"name": config.schedule, "lr": learning_rate(step_done, config)},
                "rng": torch.get_rng_state(),
                "config": config.to_dict(),
            },
        )
        _write_metrics(metrics_path, history)

    if start >= config.steps:
        return TrainResult(model, run, config, start, history, time.perf_counter() - t_start)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.steps,
        initial=start,
        desc=description or f"train {config.model}",
        disable=not progress,
        file=sys.stderr,
        mininterval=0.5,
        dynamic_ncols=True,
    )
    model.train()
    last_loss = float("nan")
    try:
        for step in range(start, config.steps):
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = sampler.indices(step)
            x = inputs[idx]
            y = targets[idx] if targets is not None else None
            if config.input_noise > 0:
                g = torch.Generator().manual_seed(_derived_seed(config.seed, _NOISE_STREAM, step))
                noise = torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype)
                x = x + config.input_noise * noise
            loss = batch_loss(x, y)
            last_loss = float(loss.detach())
            if not math.isfinite(last_loss):
                kept = latest_checkpoint(run) if writes_files else None
                where = (
                    f"the last good checkpoint ({str(kept)!r}) is kept"
                    if kept is not None
                    else "no checkpoint had been written yet"
                )
                raise DivergenceError(
                    f"training diverged: the loss became {last_loss} at step {step + 1}; {where}. "
                    "Try a smaller --lr, float64 or gradient clipping"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            done = step + 1
            bar.update(1)
            if done % config.log_every == 0 or done == config.steps:
                val = validation_loss()
                history.append(
                    {
                        "step": done,
                        "loss": last_loss,
                        "lr": lr,
                        "val_loss": val,
                        "elapsed_s": round(time.perf_counter() - t_start, 3),
                    }
                )
                post = {"loss": f"{last_loss:.3e}"}
                if val is not None:
                    post["val"] = f"{val:.3e}"
                bar.set_postfix(post, refresh=False)
            if done % config.checkpoint_every == 0 or done == config.steps:
                checkpoint(done)
    finally:
        bar.close()
    model.eval()
    return TrainResult(
        model, run, config, config.steps, history, time.perf_counter() - t_start
    )
