"""``hamgrad compare DATA --models a,b,c --out DIR``: same budget for every model, one table."""

from __future__ import annotations

import argparse

HELP = "train several models with the same budget and data, evaluate them alike, one table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="trajectory dataset (HDF5)")
    parser.add_argument(
        "--models",
        required=True,
        help="comma-separated names, e.g. gradnet-m:separable,hnn,mlp "
        "(suffix :separable or :joint sets a gradient network's structure)",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--separable",
        action="store_true",
        help="gradient networks without a suffix learn H = T(p) + V(q)",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--param-budget", type=int, help="parameters per model (at most)")
    size.add_argument("--width", type=int, help="hidden width of every model")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--batch-size", type=int, default=200, help="batch size (default 200)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument(
        "--schedule", choices=["constant", "cosine", "step"], default="cosine", help="lr schedule"
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", choices=["analytic", "finite-difference"], default="analytic")
    parser.add_argument(
        "--denoise-states",
        action="store_true",
        help="train every model on each trajectory's states rebuilt from its analytic derivatives",
    )
    parser.add_argument(
        "--protocol",
        choices=["test", "preset"],
        default="test",
        help="initial states: the test split (default) or the preset's evaluation protocol",
    )
    parser.add_argument("--horizon", type=float, help="time span of the rollouts")
    parser.add_argument("--n-eval", type=int, help="number of initial states (first N)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hamgrad.comparison import COMPARE_COLUMNS, compare_models
    from hamgrad.reporting import text_table

    if args.horizon is not None and not args.horizon > 0:
        raise ValueError(f"--horizon must be > 0 (time units), got {args.horizon}")
    models = [m for m in args.models.split(",") if m.strip()]
    report = compare_models(
        args.data,
        models,
        args.out,
        separable=args.separable,
        param_budget=args.param_budget,
        width=args.width,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        dtype=args.dtype,
        seed=args.seed,
        train_options={"targets": args.targets, "denoise_states": args.denoise_states},
        protocol=args.protocol,
        horizon=args.horizon,
        n_eval=args.n_eval,
        progress=not args.quiet,
    )
    print()
    print(text_table(report["rows"], COMPARE_COLUMNS))
    print(f"\ncompare.json, compare.md and figures -> {Path(args.out)}")
    return 0
