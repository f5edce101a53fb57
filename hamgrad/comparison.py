"""Side-by-side comparison of models on one dataset: same budget, steps, data and evaluation.

:func:`compare_models` trains every model (``RUN = OUT/runs/<label>``) with the same
:class:`~hamgrad.train.TrainConfig` except the model, evaluates each on the same initial states
against one shared ground truth, and writes ``compare.json``, ``compare.md`` and figures into OUT.

A model is named by a registry name with an optional structure suffix: ``gradnet-m:separable``
(H = T(p) + V(q)) or ``gradnet-m:joint`` (one network on (q, p)). Without a suffix, gradient
networks follow the ``separable`` argument, while the baselines ``hnn`` and ``mlp`` keep their
published form (joint HNN, unconstrained MLP).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hamgrad.errors import CheckpointError

__all__ = [
    "ModelSpec",
    "parse_model_spec",
    "compare_models",
    "COMPARE_COLUMNS",
    "test_loss",
    "write_evaluation_figures",
]

BASELINES = ("hnn", "mlp")

#: (key, header) of the comparison table.
COMPARE_COLUMNS: list[tuple[str, str]] = [
    ("label", "model"),
    ("n_params", "params"),
    ("steps", "steps"),
    ("train_s", "train s"),
    ("test_loss", "test loss"),
    ("psnr_mean", "PSNR dB (mean)"),
    ("psnr_median", "PSNR dB (median)"),
    ("energy_mse", "energy MSE"),
    ("energy_drift_max", "max rel. energy err (median)"),
    ("half_ratio", "drift half-ratio (median)"),
    ("valid_fraction", "valid time frac"),
    ("integrator", "rollout"),
]


@dataclass(frozen=True)
class ModelSpec:
    """One model of a comparison: registry ``name`` and whether it is ``separable``."""

    name: str
    separable: bool

    @property
    def label(self) -> str:
        if self.name in BASELINES:
            return self.name
        return f"{self.name}-{'separable' if self.separable else 'joint'}"


def parse_model_spec(text: str, *, separable: bool = False) -> ModelSpec:
    """``"gradnet-m"``, ``"gradnet-m:separable"`` or ``"gradnet-m:joint"`` -> :class:`ModelSpec`."""
    from hamgrad.models import MODEL_NAMES
    from hamgrad.validation import check_choice

    name, _, suffix = text.strip().partition(":")
    check_choice("model", name, MODEL_NAMES)
    if suffix:
        check_choice("model structure", suffix, ["separable", "joint"])
        sep = suffix == "separable"
    else:
        sep = separable and name not in BASELINES
    if sep and name == "mlp":
        raise ValueError("model 'mlp' is an unconstrained vector field; it cannot be separable")
    return ModelSpec(name, sep)


def test_loss(model: torch.nn.Module, data: str | os.PathLike, split: str = "test") -> float:
    """Derivative-matching loss (HNN's test loss) of ``model`` on a split, analytic targets."""
    from hamgrad.train import derivative_loss, load_training_data

    d = load_training_data(data, split, "analytic")
    dtype = next(model.parameters()).dtype
    x = torch.as_tensor(d.states(), dtype=dtype)
    y = torch.as_tensor(d.derivatives(), dtype=dtype)
    total = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], 4096):
            xb, yb = x[i : i + 4096], y[i : i + 4096]
            total += float(derivative_loss(model, xb, yb)) * xb.shape[0]
    return total / x.shape[0]


def write_evaluation_figures(
    out: str | os.PathLike,
    t: np.ndarray,
    true: np.ndarray,
    preds: dict[str, np.ndarray],
    energy_errors: dict[str, np.ndarray],
    state_errors: dict[str, np.ndarray],
    *,
    title: str = "",
) -> list[Path]:
    """Phase portraits, energy error and state error figures (PNG) in ``out``."""
    from hamgrad.plots import plot_energy_error, plot_phase_portraits, plot_state_error

    out = Path(out)
    return [
        plot_phase_portraits(true, preds, out / "phase_portraits.png", title=title),
        plot_energy_error(t, energy_errors, out / "energy_error.png"),
        plot_state_error(t, state_errors, out / "state_error.png"),
    ]


def _run_or_resume(
    data: str | os.PathLike,
    run_dir: Path,
    settings: dict[str, Any],
    progress: bool,
    description: str,
):
    """Train into ``run_dir``; continue (or reuse) a run there only if it has the same settings."""
    from hamgrad.checkpoints import read_run_config
    from hamgrad.train import TrainConfig, train_dynamics

    resume = (run_dir / "config.json").is_file()
    if resume:
        # a setting the stored run predates (absent there) counts as its default
        stored = {
            **TrainConfig(model=settings["model"]).to_dict(),
            **read_run_config(run_dir).get("train", {}),
        }
        wanted = TrainConfig(**settings).to_dict()
        diff = sorted(k for k, v in wanted.items() if stored.get(k) != v)
        if diff:
            raise CheckpointError(
                f"{str(run_dir)!r} holds a run with other settings ({', '.join(diff)}); "
                "remove it or choose another output directory"
            )
    return train_dynamics(
        data, run_dir, resume=resume, progress=progress, description=description, **settings
    )


def compare_models(
    data: str | os.PathLike,
    models: Sequence[str | ModelSpec],
    out: str | os.PathLike,
    *,
    separable: bool = False,
    param_budget: int | None = None,
    width: int | None = None,
    steps: int = 2000,
    batch_size: int = 200,
    lr: float = 1e-3,
    schedule: str = "cosine",
    dtype: str = "float32",
    seed: int = 0,
    train_options: dict[str, Any] | None = None,
    model_overrides: dict[str, dict[str, Any]] | None = None,
    protocol: str = "test",
    horizon: float | None = None,
    eval_dt: float | None = None,
    n_eval: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    figures: bool = True,
    title: str = "",
) -> dict[str, Any]:
    """Train and evaluate each model with identical settings; write the comparison into ``out``.

    ``models``: names with optional ``:separable``/``:joint`` suffix (see the module docstring).
    Every model gets ``param_budget`` (or ``width``), ``steps``, ``batch_size``, ``lr``,
    ``schedule``, ``dtype``, ``seed`` and ``train_options`` (other :class:`TrainConfig` fields);
    ``model_overrides[label]`` may change settings of one model (recorded in the results).
    Evaluation: :func:`hamgrad.evaluation.eval_protocol` (``protocol``, ``horizon``, ``eval_dt``,
    ``n_eval``), the default integrator of each model. A run directory that already exists in
    ``OUT/runs`` is resumed (and reused when complete).
    Returns the content of ``compare.json``.
    """
    from hamgrad.atomic import atomic_write_text
    from hamgrad.evaluation import eval_protocol, evaluate_model
    from hamgrad.models import count_params
    from hamgrad.reporting import markdown_table
    from hamgrad.systems.ground_truth import simulate
    from hamgrad.validation import check_positive_int

    say = log or (lambda _msg: None)
    steps = check_positive_int("steps", steps)
    specs = [
        m if isinstance(m, ModelSpec) else parse_model_spec(m, separable=separable) for m in models
    ]
    if not specs:
        raise ValueError("models must name at least one model")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"models must be distinct, got {', '.join(labels)}")
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)

    system, x0, dt, n_steps = eval_protocol(
        data, protocol=protocol, n_eval=n_eval, horizon=horizon, dt=eval_dt
    )
    say(
        f"evaluation: {x0.shape[0]} initial states ({protocol}), t in [0, {dt * n_steps:.4g}], "
        f"{n_steps + 1} points"
    )
    t0 = time.perf_counter()
    true = simulate(system, x0, dt, n_steps)
    say(f"ground truth: {time.perf_counter() - t0:.1f} s")

    common = {
        "param_budget": param_budget,
        "width": width,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule,
        "dtype": dtype,
        "seed": seed,
        **(train_options or {}),
    }
    rows: list[dict[str, Any]] = []
    preds: dict[str, np.ndarray] = {}
    energy_errors: dict[str, np.ndarray] = {}
    state_errors: dict[str, np.ndarray] = {}
    histories: dict[str, list[dict[str, float]]] = {}
    per_traj: dict[str, dict[str, list[float]]] = {}
    for i, spec in enumerate(specs, start=1):
        settings = {
            **common,
            "model": spec.name,
            "separable": spec.separable,
            **(model_overrides or {}).get(spec.label, {}),
        }
        say(f"[{i}/{len(specs)}] training {spec.label} ({settings['steps']} steps)")
        result = _run_or_resume(
            data, out / "runs" / spec.label, settings, progress, f"train {spec.label}"
        )
        model = result.model
        say(f"[{i}/{len(specs)}] evaluating {spec.label}")
        t_eval = time.perf_counter()
        ev = evaluate_model(model, system, x0, dt, n_steps, true=true)
        eval_s = time.perf_counter() - t_eval
        m = ev.metrics
        train_s = next(
            (r["elapsed_s"] for r in reversed(result.history) if r.get("elapsed_s") is not None),
            result.seconds,
        )
        row = {
            "label": spec.label,
            "model": spec.name,
            "separable": spec.separable,
            "n_params": count_params(model),
            "steps": result.steps_done,
            "train_s": round(float(train_s), 1),
            "eval_s": round(eval_s, 1),
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "test_loss": test_loss(model, data) if _has_split(data, "test") else None,
            "psnr_mean": m["psnr_db"]["mean"],
            "psnr_median": m["psnr_db"]["median"],
            "energy_mse": m["energy_mse"]["mean"],
            "energy_mse_median": m["energy_mse"]["median"],
            "energy_drift_max": m["energy_drift_max"]["median"],
            "half_ratio": m["energy_drift_half_ratio"]["median"],
            "valid_fraction": m["valid_fraction"]["mean"],
            "valid_time": m["valid_time"]["mean"],
            "relative_error_geomean": m["relative_error_geomean"]["mean"],
            "integrator": ev.integrator,
            "settings": {k: v for k, v in settings.items() if v is not None},
            "metrics": m,
        }
        rows.append(row)
        preds[spec.label] = ev.pred
        energy_errors[spec.label] = ev.relative_energy_error
        state_errors[spec.label] = ev.state_error
        histories[spec.label] = result.history
        per_traj[spec.label] = ev.per_trajectory
        say(
            f"[{i}/{len(specs)}] {spec.label}: PSNR {row['psnr_mean']:.2f} dB, "
            f"energy MSE {row['energy_mse']:.3g}"
        )

    report = {
        "data": str(Path(data).resolve()),
        "system": getattr(system, "name", type(system).__name__),
        "evaluation": {
            "protocol": protocol,
            "n_trajectories": int(x0.shape[0]),
            "dt": dt,
            "n_steps": n_steps,
            "horizon": dt * n_steps,
        },
        "common_settings": {k: v for k, v in common.items() if v is not None},
        "rows": rows,
        "per_trajectory": per_traj,
    }
    atomic_write_text(out / "compare.json", json.dumps(report, indent=2, default=_json_default))
    md = [
        f"# Comparison on {report['system']}",
        "",
        f"Data: `{data}`. Evaluation: {x0.shape[0]} initial states ({protocol}), "
        f"t in [0, {dt * n_steps:.4g}] at {n_steps + 1} points, against the exact ground truth.",
        f"Common settings: {json.dumps(report['common_settings'], default=_json_default)}.",
        "",
        markdown_table(rows, COMPARE_COLUMNS),
        "",
    ]
    atomic_write_text(out / "compare.md", "\n".join(md))
    if figures:
        from hamgrad.plots import plot_bars, plot_loss_curves

        write_evaluation_figures(
            out,
            np.asarray(dt * np.arange(n_steps + 1)),
            true.numpy(),
            preds,
            energy_errors,
            state_errors,
            title=title,
        )
        plot_bars(
            {r["label"]: r["psnr_mean"] for r in rows},
            out / "psnr.png",
            ylabel="trajectory PSNR (dB, mean)",
        )
        plot_loss_curves(histories, out / "loss.png")
    return report


def _has_split(data: str | os.PathLike, split: str) -> bool:
    from hamgrad.training_data import split_names

    return split in split_names(data)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
