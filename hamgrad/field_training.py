"""Gradient-field regression: fit a network f to a target field ∇F by mean squared error.

The target is given as two callables, so any field works (a registered
:class:`~hamgrad.systems.fields.GradientField`, a Hamiltonian's ``grad``, a lambda):

- ``sample_fn(n, generator) -> x``: ``n`` input points, ``(n, d)``, usually float64;
- ``grad_fn(x) -> ∇F(x)``: ``(n, d)`` target gradients (computed in the dtype of ``x``).

Two data regimes: ``mode="fixed"`` draws ``n_train`` points once and takes shuffled mini-batches over
epochs (the 2-D protocol of the Gradient Networks paper); ``mode="fresh"`` draws a new batch every step
(the PolyMax protocol). Adam on the MSE, an optional learning-rate schedule with linear warm-up, and
selection of the weights with the lowest validation error (restored at the end).

>>> from hamgrad.systems import get_system
>>> field = get_system("convex-2d")
>>> model, history = fit_gradient_field(net, field.grad, field.sample, steps=2000, batch_size=1000,
...                                     lr=5e-3, mode="fixed", n_train=100_000)
>>> history["best_val_db"]        # 10·log10(mean ‖f(x) − ∇F(x)‖²) on the validation points
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from hamgrad.errors import DivergenceError
from hamgrad.validation import (
    check_choice,
    check_finite_float,
    check_positive_float,
    check_positive_int,
)

#: Learning-rate schedules understood by :func:`fit_gradient_field` (after the optional warm-up).
SCHEDULES = ("constant", "cosine", "linear", "exponential")
#: Data regimes understood by :func:`fit_gradient_field`.
MODES = ("fresh", "fixed")

SampleFn = Callable[[int, torch.Generator], torch.Tensor]
GradFn = Callable[[torch.Tensor], torch.Tensor]


def learning_rate_at(
    step: int,
    steps: int,
    lr: float,
    *,
    schedule: str | None = None,
    warmup: int = 0,
    final_lr_ratio: float = 0.0,
) -> float:
    """The learning rate used for optimiser step ``step`` (0-based) of ``steps``.

    A linear warm-up from ``lr / warmup`` to ``lr`` over the first ``warmup`` steps, then
    ``schedule``: ``"constant"`` (or ``None``) keeps ``lr``; ``"cosine"``, ``"linear"`` and
    ``"exponential"`` decay from ``lr`` to ``lr * final_lr_ratio`` at the last step (half a cosine
    wave, a straight line, a geometric progression; the exponential needs ``final_lr_ratio > 0``).
    """
    schedule = "constant" if schedule is None else schedule
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    span = max(steps - warmup - 1, 1)
    t = min(max((step - warmup) / span, 0.0), 1.0)  # 0 at the end of warm-up, 1 at the last step
    if schedule == "cosine":
        factor = final_lr_ratio + (1.0 - final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    elif schedule == "linear":
        factor = 1.0 + (final_lr_ratio - 1.0) * t
    elif schedule == "exponential":
        factor = final_lr_ratio**t
    else:
        check_choice("schedule", schedule, SCHEDULES)
        raise AssertionError("unreachable")
    return lr * factor


def _child_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit seeds derived from ``seed`` (numpy SeedSequence)."""
    states = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)
    return [int(s) & ((1 << 63) - 1) for s in states]


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in model.parameters():
        return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def _needs_autograd(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether the model's forward itself differentiates (an HNN's ∇H does): probe one point."""
    try:
        with torch.no_grad():
            model(x[:1])
    except RuntimeError:
        return True
    return False


def predict_field(model: nn.Module, x: torch.Tensor, *, chunk_size: int = 4096) -> torch.Tensor:
    """``model(x)`` evaluated in chunks without building a training graph: ``(n, d)``, detached.

    ``x`` is cast to the model's dtype and device; the result is in the model's dtype.
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    dtype, device = _model_dtype_device(model)
    x = x.to(dtype=dtype, device=device)
    context = torch.enable_grad if _needs_autograd(model, x) else torch.no_grad
    outs = []
    for part in x.split(chunk_size):
        with context():
            outs.append(model(part).detach())
    return torch.cat(outs) if outs else x.new_zeros(x.shape)


def squared_error_mean(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, chunk_size: int = 4096
) -> float:
    """mean_i ‖model(x_i) − target_i‖², accumulated in float64 (``x``, ``target``: ``(n, d)``)."""
    pred = predict_field(model, x, chunk_size=chunk_size)
    diff = pred.to(torch.float64) - target.to(device=pred.device, dtype=torch.float64)
    return float((diff**2).sum(-1).mean())


def error_db(mean_squared_norm: float) -> float:
    """10·log10 of a mean squared error norm (−inf for an exact fit)."""
    return 10.0 * math.log10(mean_squared_norm) if mean_squared_norm > 0 else -math.inf


def evaluate_field_error_db(
    model: nn.Module, grad_fn: GradFn, x: torch.Tensor, *, chunk_size: int = 4096
) -> float:
    """Field error in dB: 10·log10(mean_i ‖f(x_i) − ∇F(x_i)‖²), lower is better.

    ``x``: ``(n, d)`` evaluation points; the target ``grad_fn(x)`` is computed in float64 and the
    error accumulated in float64 whatever the model's dtype.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a non-empty (n, d) tensor, got {shape}")
    x64 = x.to(torch.float64)
    target = grad_fn(x64)
    return error_db(squared_error_mean(model, x64, target, chunk_size=chunk_size))


class _FixedBatches:
    """Shuffled mini-batches over a fixed training set, reshuffled every epoch (last batch kept).

    The set is permuted once per epoch and the batches are consecutive slices of the permuted
    copy (the same batches as gathering each one through the permutation, without a gather per
    step: with small models that gather cost as much as the network's step).
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator
    ):
        self.x, self.y, self.batch_size, self.generator = x, y, batch_size, generator
        self.shuffled = (x[:0], y[:0])
        self.position = 0

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position >= len(self.shuffled[0]):
            order = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
            self.shuffled = (self.x[order], self.y[order])
            self.position = 0
        start, self.position = self.position, self.position + self.batch_size
        return self.shuffled[0][start : self.position], self.shuffled[1][start : self.position]


def _adam(
    params: list[torch.Tensor], lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.Optimizer:
    """Adam (AdamW's decoupled decay when ``weight_decay > 0``), as one fused kernel per step
    where this torch and device have it: with the ~100 parameters of the 2-D benchmarks the
    per-tensor loop of the plain implementation costs as much as the network's own step."""
    cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    options: dict[str, Any] = {"lr": lr, "betas": betas}
    if weight_decay > 0:
        options["weight_decay"] = weight_decay
    try:
        return cls(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or dtype
        return cls(params, **options)


def fit_gradient_field(
    model: nn.Module,
    grad_fn: GradFn,
    sample_fn: SampleFn,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    mode: str = "fresh",
    n_train: int | None = None,
    n_val: int = 10_000,
    x_val: torch.Tensor | None = None,
    val_every: int | None = None,
    select_best: bool = True,
    schedule: str | None = None,
    warmup: int = 0,
    final_lr_ratio: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    progress: bool = True,
    desc: str | None = None,
    callback: Callable[[dict[str, Any]], bool | None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` so that ``model(x) ≈ grad_fn(x)`` by Adam on the mean squared error.

    Args:
        model: maps ``(batch, d) -> (batch, d)``; trained in place (moved to ``dtype`` if given).
        grad_fn: ``x (n, d) -> ∇F(x) (n, d)``; called on float64 points, cast to the model's dtype.
        sample_fn: ``(n, generator) -> x (n, d)``, e.g. ``GradientField.sample``.
        steps: optimiser steps. In fixed mode one epoch is ``ceil(n_train / batch_size)`` steps.
        batch_size: points per step.
        lr: peak learning rate of Adam.
        mode: ``"fresh"`` (a new batch from ``sample_fn`` every step) or ``"fixed"`` (``n_train``
            points drawn once, shuffled mini-batches, reshuffled every epoch).
        n_train: size of the fixed training set (required in fixed mode, refused in fresh mode).
        n_val: validation points drawn from ``sample_fn`` (ignored when ``x_val`` is given);
            ``0`` disables validation (then the final weights are kept).
        x_val: explicit validation points ``(m, d)`` instead of ``n_val`` random ones.
        val_every: steps between validations (default: one epoch in fixed mode, ``steps // 100``
            in fresh mode); the last step is always validated.
        select_best: restore the weights of the validation with the lowest error at the end.
        schedule: ``None``/``"constant"``, ``"cosine"``, ``"linear"``, ``"exponential"``
            (see :func:`learning_rate_at`), after ``warmup`` linear warm-up steps; the decayed
            schedules end at ``lr * final_lr_ratio``.
        betas, weight_decay: Adam's (``weight_decay`` > 0 uses AdamW's decoupled decay).
        grad_clip: clip the gradient's global norm to this value (``None``: no clipping).
        seed: seeds the data (training set or batches, shuffling, validation points). The model's
            initialisation is the caller's (seed torch before building it).
        dtype: train in this dtype (``torch.float32``/``torch.float64``); default: the model's.
        progress: a tqdm progress bar on stderr.
        desc: label of the progress bar.
        callback: called with each validation record (the dict also appended to the history);
            returning ``True`` stops training early.

    Returns:
        ``(model, history)``. ``history`` holds one entry per validation in the lists ``step``,
        ``train_loss`` (mean batch MSE since the previous validation, per coordinate), ``val_loss``
        (validation MSE per coordinate), ``val_db`` (10·log10 mean ‖f − ∇F‖² over the validation
        points), ``lr``, ``time`` (wall seconds since the start, validations included) and
        ``train_time`` (seconds spent in training steps only); and ``best_step``,
        ``best_val_db``, ``final_val_db``, ``steps_done``, ``wall_time``, ``config``.

    Raises:
        ValueError/TypeError: a bad argument (named in the message).
        DivergenceError: the training loss became non-finite (the step is named).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(grad_fn):
        raise TypeError(f"grad_fn must be callable, got {type(grad_fn).__name__}")
    if not callable(sample_fn):
        raise TypeError(f"sample_fn must be callable, got {type(sample_fn).__name__}")
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_positive_float("lr", lr)
    check_choice("mode", mode, MODES)
    check_choice("schedule", "constant" if schedule is None else schedule, SCHEDULES)
    warmup = check_positive_int("warmup", warmup, allow_zero=True)
    if warmup >= steps:
        raise ValueError(f"warmup must be smaller than steps={steps}, got {warmup}")
    final_lr_ratio = check_positive_float("final_lr_ratio", final_lr_ratio, allow_zero=True)
    if final_lr_ratio > 1:
        raise ValueError(f"final_lr_ratio must be in [0, 1], got {final_lr_ratio}")
    if schedule == "exponential" and final_lr_ratio == 0:
        raise ValueError("final_lr_ratio must be > 0 for schedule 'exponential', got 0")
    weight_decay = check_positive_float("weight_decay", weight_decay, allow_zero=True)
    if grad_clip is not None:
        grad_clip = check_positive_float("grad_clip", grad_clip)
    if not (isinstance(betas, tuple | list) and len(betas) == 2):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
    for b in betas:
        if not 0 <= check_finite_float("betas", b) < 1:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
    seed = check_positive_int("seed", seed, allow_zero=True)
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if mode == "fixed":
        if n_train is None:
            raise ValueError("n_train is required in mode 'fixed' (the size of the training set)")
        n_train = check_positive_int("n_train", n_train)
    elif n_train is not None:
        raise ValueError(f"n_train applies to mode 'fixed' only, got n_train={n_train} in 'fresh'")
    if x_val is None:
        n_val = check_positive_int("n_val", n_val, allow_zero=True)
    elif not isinstance(x_val, torch.Tensor) or x_val.ndim != 2 or x_val.shape[0] == 0:
        shape = tuple(x_val.shape) if isinstance(x_val, torch.Tensor) else type(x_val).__name__
        raise ValueError(f"x_val must be a non-empty (m, d) tensor, got {shape}")
    if val_every is None:
        val_every = math.ceil(n_train / batch_size) if mode == "fixed" else max(steps // 100, 1)
    val_every = check_positive_int("val_every", val_every)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")

    if dtype is not None:
        model.to(dtype)
    dtype, device = _model_dtype_device(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")

    seed_data, seed_val = _child_seeds(seed, 2)
    gen_data = torch.Generator().manual_seed(seed_data)
    gen_val = torch.Generator().manual_seed(seed_val)

    def draw(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = sample_fn(n, generator)
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] != n:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"sample_fn({n}, generator) must return an ({n}, d) tensor, got {got}")
        y = grad_fn(x)
        if not isinstance(y, torch.Tensor) or y.shape != x.shape:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"grad_fn(x) must return a tensor of x's shape {tuple(x.shape)}, got {got}"
            )
        return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)

    validating = x_val is not None or n_val > 0
    if validating:
        if x_val is None:
            xv, yv = draw(n_val, gen_val)
        else:
            yv = grad_fn(x_val.to(torch.float64))
            xv, yv = x_val.to(device=device, dtype=dtype), yv.to(device=device, dtype=dtype)
        yv64 = yv.to(torch.float64)
    if mode == "fixed":
        x_train, y_train = draw(n_train, gen_data)
        next_batch = _FixedBatches(x_train, y_train, batch_size, gen_data)
    else:

        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            return draw(batch_size, gen_data)

    optimiser = _adam(params, lr, tuple(betas), weight_decay)

    history: dict[str, Any] = {
        "step": [],
        "train_loss": [],
        "val_loss": [],
        "val_db": [],
        "lr": [],
        "time": [],
        "train_time": [],
        "best_step": None,
        "best_val_db": None,
        "final_val_db": None,
        "steps_done": 0,
        "wall_time": 0.0,
        "config": {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "mode": mode,
            "n_train": n_train,
            "n_val": int(xv.shape[0]) if validating else 0,
            "val_every": val_every,
            "select_best": select_best,
            "schedule": schedule or "constant",
            "warmup": warmup,
            "final_lr_ratio": final_lr_ratio,
            "betas": list(betas),
            "weight_decay": weight_decay,
            "grad_clip": grad_clip,
            "seed": seed,
            "dtype": str(dtype).replace("torch.", ""),
        },
    }
    best_state: dict[str, torch.Tensor] | None = None
    best_error = math.inf

    from tqdm.auto import tqdm

    bar = tqdm(
        total=steps,
        desc=desc or "fit field",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
        leave=False,
        dynamic_ncols=True,
    )
    model.train()
    start = time.perf_counter()
    train_time = 0.0
    running, counted = 0.0, 0
    try:
        for step in range(steps):
            t0 = time.perf_counter()
            current_lr = learning_rate_at(
                step, steps, lr, schedule=schedule, warmup=warmup, final_lr_ratio=final_lr_ratio
            )
            for group in optimiser.param_groups:
                group["lr"] = current_lr
            xb, yb = next_batch()
            optimiser.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimiser.step()
            loss_value = loss.item()
            train_time += time.perf_counter() - t0
            if not math.isfinite(loss_value):
                raise DivergenceError(
                    f"training loss became non-finite ({loss_value}) at step {step + 1} of {steps}; "
                    f"try a smaller lr (now {current_lr:.3g})"
                )
            running += loss_value
            counted += 1
            bar.update(1)
            done = step + 1
            if done % val_every != 0 and done != steps:
                continue
            record: dict[str, Any] = {
                "step": done,
                "train_loss": running / counted,
                "lr": current_lr,
            }
            running, counted = 0.0, 0
            if validating:
                model.eval()
                sq = squared_error_mean(model, xv, yv64)
                model.train()
                record["val_loss"] = sq / xv.shape[1]
                record["val_db"] = error_db(sq)
                if sq < best_error:
                    best_error = sq
                    history["best_step"] = done
                    history["best_val_db"] = record["val_db"]
                    if select_best:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                record["val_loss"] = None
                record["val_db"] = None
            record["time"] = time.perf_counter() - start
            record["train_time"] = train_time
            for key in ("step", "train_loss", "val_loss", "val_db", "lr", "time", "train_time"):
                history[key].append(record[key])
            history["steps_done"] = done
            if validating:
                bar.set_postfix(
                    val_db=f"{record['val_db']:.2f}", best=f"{history['best_val_db']:.2f}"
                )
            if callback is not None and callback(dict(record)):
                break
    finally:
        bar.close()
    history["wall_time"] = time.perf_counter() - start
    if history["val_db"]:
        history["final_val_db"] = history["val_db"][-1]
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history
