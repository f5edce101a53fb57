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

import copy
import csv
import io
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hamgrad import distributed
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
from hamgrad.errors import CheckpointError, DivergenceError
from hamgrad.field_training import fit_gradient_field  # noqa: F401
from hamgrad.training_data import (
    TARGETS,
    TrainingData,
    check_denoise_targets,
    check_trajectory_file,
    finite_difference_derivatives,
    load_training_data,
    split_names,
)
from hamgrad.validation import (
    check_choice,
    check_positive_float,
    check_positive_int,
)

LOSSES = ("derivative", "rollout")
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
    added to the input states of each batch), ``noise_extrapolation`` (> 0: the std of the noise
    already in the data's states; trains a second model on states with that much extra noise and
    extrapolates both to zero noise, see :mod:`hamgrad.noise_extrapolation`; its logged ``loss``
    is the sum of the two models' losses, its ``val_loss`` the extrapolated model's),
    ``denoise_states`` (train on each trajectory's states rebuilt from its analytic derivatives,
    :func:`~hamgrad.training_data.integrated_states`: for data whose states are noisy and whose
    derivatives exact). Bookkeeping: ``seed``, ``checkpoint_every``,
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
    noise_extrapolation: float = 0.0
    denoise_states: bool = False
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
        if self.integrator is not None:  # checked here, before a run directory is made
            self._check_integrator()
        check_positive_float("input_noise", self.input_noise, allow_zero=True)
        check_positive_float("noise_extrapolation", self.noise_extrapolation, allow_zero=True)
        if self.noise_extrapolation > 0:
            if self.loss != "derivative":
                raise ValueError(
                    f"noise_extrapolation works with loss='derivative', got loss={self.loss!r}"
                )
            if self.input_noise > 0:
                raise ValueError(
                    "give input_noise or noise_extrapolation, not both (noise extrapolation adds "
                    "its own noise, of std noise_extrapolation, for its second model)"
                )
            if self.model == "mlp":
                raise ValueError(
                    "noise_extrapolation combines learned Hamiltonians; model 'mlp' has no energy"
                )
        if not isinstance(self.denoise_states, bool):
            raise TypeError(f"denoise_states must be True or False, got {self.denoise_states!r}")
        if self.denoise_states:
            check_denoise_targets(self.targets)
            if self.noise_extrapolation > 0:
                raise ValueError(
                    "give denoise_states or noise_extrapolation, not both (the rebuilt states no "
                    "longer carry independent noise of the data's std)"
                )
        check_positive_int("seed", self.seed, allow_zero=True)
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_positive_int("log_every", self.log_every)
        check_positive_int("val_size", self.val_size)
        if self.model == "mlp" and self.separable:
            raise ValueError("model 'mlp' is an unconstrained vector field; it cannot be separable")

    def _check_integrator(self) -> None:
        from hamgrad.integrators import list_integrators

        info = {i.name: i for i in list_integrators()}
        check_choice("integrator", self.integrator, info)
        if self.loss == "rollout" and info[self.integrator].separable_only and not self.separable:
            general = [name for name, i in info.items() if not i.separable_only]
            raise ValueError(
                f"integrator {self.integrator!r} needs a separable Hamiltonian (separable=True, "
                f"--separable); for this model choose one of: {', '.join(general)}"
            )

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
    """The model a run trains (its initialisation seeded by ``config.seed``).

    With ``noise_extrapolation`` > 0: a :class:`~hamgrad.noise_extrapolation.NoiseExtrapolatedHamiltonian`
    of two models built alike (same seed; half the ``param_budget`` each).
    """
    from hamgrad.hamiltonian import build_hamiltonian

    pair = config.noise_extrapolation > 0
    budget = config.param_budget
    if pair and budget is not None:
        budget = budget // 2

    def build() -> nn.Module:
        return build_hamiltonian(
            config.model,
            dof,
            separable=config.separable,
            param_budget=budget,
            width=config.width,
            kinetic_model=config.kinetic_model,
            dtype=DTYPES[config.dtype],
            seed=config.seed,
            **config.model_options,
        )

    if not pair:
        return build()
    from hamgrad.noise_extrapolation import NoiseExtrapolatedHamiltonian

    return NoiseExtrapolatedHamiltonian(build(), build(), config.noise_extrapolation)


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
    "noise_extrapolation",
    "denoise_states",
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
    callback: Callable[[int, float], None] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a learned Hamiltonian on the trajectories in ``data``; the run lives in ``out``.

    ``config`` (or keyword ``overrides`` of :class:`TrainConfig` fields) defines the run.
    ``module`` replaces the model the config would build (its ``dim`` must match the data).
    ``resume=True`` continues the run in ``out`` from its checkpoint; the stored configuration is
    used, and given settings that contradict it are refused (``steps`` may be raised).
    A non-finite loss raises :class:`DivergenceError`; the last checkpoint written is kept.
    ``callback(step, loss)`` is called after every optimisation step (``step`` counts from 1).
    """
    t_start = time.perf_counter()
    if distributed.init_process_group():  # under torchrun: only rank 0 writes files and prints
        writes_files = writes_files and distributed.is_main()
        progress = progress and distributed.is_main()
    stored = read_run_config(out) if resume else None
    if config is None:
        base = stored.get("train", {}) if stored is not None else {}
        config = TrainConfig.from_dict({**base, **overrides})
    elif overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})

    run = distributed.call_on_main(
        lambda: prepare_run_dir(out, resume=resume), Path(out), enabled=writes_files
    )
    train_data = load_training_data(data, "train", config.targets, config.denoise_states)
    dim = train_data.dim
    splits = split_names(data)
    val_data = (
        load_training_data(data, "val", config.targets, config.denoise_states)
        if "val" in splits
        else None
    )
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
        if config.loss == "derivative" and x.ndim == 3:  # (B, 2, 2n): noise-extrapolation pairs
            return derivative_loss(model.fit, x[:, 0], y) + derivative_loss(
                model.noisier, x[:, 1], y
            )
        if config.loss == "derivative":
            return derivative_loss(model, x, y)
        return rollout_loss(model, x, dt, method)

    # each rank computes its slice of the global batch; gradients are averaged across ranks
    parallel_loss = distributed.ParallelLoss(model, batch_loss)

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

    def snapshot(step_done: int) -> dict[str, Any]:
        """Everything a checkpoint holds, copied now (written once its weights proved finite)."""
        return {
            "step": step_done,
            "model": _model_state_for_checkpoint(model),
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "schedule": {"name": config.schedule, "lr": learning_rate(step_done, config)},
            "rng": torch.get_rng_state(),
            "config": config.to_dict(),
        }

    def write(state: dict[str, Any]) -> None:
        if writes_files:  # only rank 0 writes in a distributed run
            save_checkpoint(ckpt_path, state)
            _write_metrics(metrics_path, [r for r in history if r["step"] <= state["step"]])

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
    # A checkpoint is taken every `checkpoint_every` steps but written only when the next loss,
    # computed with its weights, is finite: a divergence never replaces the last good checkpoint.
    pending: dict[str, Any] | None = None
    try:
        for step in range(start, config.steps):
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = sampler.indices(step)
            x = inputs[idx]
            y = targets[idx] if targets is not None else None
            if config.input_noise > 0 or config.noise_extrapolation > 0:  # (never both)
                g = torch.Generator().manual_seed(_derived_seed(config.seed, _NOISE_STREAM, step))
                noise = torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype)
                if config.input_noise > 0:
                    x = x + config.input_noise * noise
                else:  # noise extrapolation: the second model sees extra noise of that std
                    x = torch.stack([x, x + config.noise_extrapolation * noise], dim=1)
            loss = parallel_loss(x, y)
            value = parallel_loss.value(loss)
            if not math.isfinite(value):
                pending = None
                kept = latest_checkpoint(run) if writes_files else None
                where = (
                    f"the last good checkpoint ({str(kept)!r}) is kept"
                    if kept is not None
                    else "no checkpoint had been written"
                )
                raise DivergenceError(
                    f"training diverged: the loss became {value} at step {step + 1}; {where}. "
                    "Try a smaller --lr, float64 or --grad-clip"
                )
            if pending is not None:
                write(pending)
                pending = None
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
                        "loss": value,
                        "lr": lr,
                        "val_loss": val,
                        "elapsed_s": round(time.perf_counter() - t_start, 3),
                    }
                )
                post = {"loss": f"{value:.3e}"}
                if val is not None:
                    post["val"] = f"{val:.3e}"
                bar.set_postfix(post, refresh=False)
            if callback is not None:
                callback(done, value)
            if done % config.checkpoint_every == 0 or done == config.steps:
                pending = snapshot(done)
        # the last state: its loss was not evaluated, so require finite weights at least
        if pending is not None:
            if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise DivergenceError(
                    f"training diverged: non-finite weights after step {config.steps}; "
                    "the last good checkpoint is kept"
                )
            write(pending)
            pending = None
    except KeyboardInterrupt:
        if pending is not None:  # an interruption is not a divergence: keep the newest state
            write(pending)
        raise
    finally:
        bar.close()
    model.eval()
    return TrainResult(model, run, config, config.steps, history, time.perf_counter() - t_start)
