"""``hamgrad evaluate RUN --data DATA``: roll a trained model out and score it against ground truth."""

from __future__ import annotations

import argparse

HELP = "roll a trained model out from held-out initial states; metrics.json, table and figures"

METRIC_ROWS = [
    ("psnr_db", "trajectory PSNR (dB)"),
    ("energy_mse", "energy MSE (HNN)"),
    ("energy_drift_max", "max relative energy error"),
    ("energy_drift_final", "final relative energy error"),
    ("energy_drift_slope", "energy drift slope (1/time)"),
    ("energy_drift_half_ratio", "energy drift half-ratio"),
    ("valid_time", "valid prediction time"),
    ("valid_fraction", "valid prediction fraction"),
    ("relative_error_geomean", "relative error (geometric mean)"),
    ("model_energy_drift_max", "max drift of the model's own energy"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory of `hamgrad train`")
    parser.add_argument("--data", required=True, help="trajectory dataset (HDF5)")
    parser.add_argument(
        "--protocol",
        choices=["test", "preset"],
        default="test",
        help="initial states: the test split (default) or the preset's evaluation protocol",
    )
    parser.add_argument("--horizon", type=float, help="time span of the rollouts (time units)")
    parser.add_argument("--dt", type=float, help="time between evaluated states")
    parser.add_argument(
        "--integrator",
        help="integration method (default: yoshida4 for separable models, dopri5 otherwise)",
    )
    parser.add_argument("--substeps", type=int, help="integrator steps per evaluated step")
    parser.add_argument("--n-eval", type=int, help="number of initial states (first N)")
    parser.add_argument("--out", help="output directory (default RUN/eval)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from hamgrad.atomic import atomic_write_text
    from hamgrad.comparison import write_evaluation_figures
    from hamgrad.evaluation import eval_protocol, evaluate_model
    from hamgrad.reporting import text_table
    from hamgrad.train import load_trained

    if args.horizon is not None and not args.horizon > 0:
        raise ValueError(f"--horizon must be > 0 (time units), got {args.horizon}")
    model, config = load_trained(args.run)
    system, x0, dt, n_steps = eval_protocol(
        args.data, protocol=args.protocol, n_eval=args.n_eval, horizon=args.horizon, dt=args.dt
    )
    if x0.shape[-1] != model.dim:
        raise ValueError(
            f"the model of {args.run!r} acts on states of dimension {model.dim}, "
            f"the data {args.data!r} has dimension {x0.shape[-1]}"
        )
    result = evaluate_model(
        model, system, x0, dt, n_steps, method=args.integrator, substeps=args.substeps
    )
    out = Path(args.out) if args.out else Path(args.run) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "run": str(Path(args.run).resolve()),
        "data": str(Path(args.data).resolve()),
        "model": config.get("train", {}).get("model"),
        "separable": config.get("train", {}).get("separable"),
        "metrics": result.metrics,
        "per_trajectory": result.per_trajectory,
    }
    atomic_write_text(out / "metrics.json", json.dumps(payload, indent=2))
    rows = []
    for key, label in METRIC_ROWS:
        if key in result.metrics:
            s = result.metrics[key]
            rows.append({"metric": label, "mean": s["mean"], "median": s["median"]})
    print(
        f"{config.get('train', {}).get('model')} on {result.metrics['n_trajectories']} "
        f"trajectories, t in [0, {result.metrics['horizon']:.4g}], rollout {result.integrator}"
    )
    print(text_table(rows, [("metric", "metric"), ("mean", "mean"), ("median", "median")]))
    if not args.no_figures:
        label = config.get("train", {}).get("model", "model")
        write_evaluation_figures(
            out,
            result.t,
            result.true,
            {label: result.pred},
            {label: result.relative_energy_error},
            {label: result.state_error},
            title=f"{label} vs ground truth",
        )
    print(f"metrics and figures -> {out}")
    return 0
