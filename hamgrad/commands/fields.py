"""``hamgrad fields``: the static gradient-field benchmarks of the Gradient Networks paper.

    hamgrad fields --field convex-2d --model mgradnet-c,mgradnet-m
    hamgrad fields --field polymax --dim 256 --model mgradnet-m --protocol tuned --json out.json

Prints one row per model: our error in dB (mean ± std) next to the published figure.
"""

from __future__ import annotations

import argparse
import shlex
import sys

HELP = "the static gradient-field benchmarks (2-D fields, PolyMax): paper and tuned protocols"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field", required=True, help="convex-2d, nonconvex-2d or polymax")
    parser.add_argument("--dim", type=int, default=None, help="dimension (polymax only; >= 2)")
    parser.add_argument(
        "--model",
        required=True,
        help="model name, or several separated by commas (gradnet-c, gradnet-m, mgradnet-c, "
        "mgradnet-m, hnn, mlp)",
    )
    parser.add_argument(
        "--protocol",
        default="paper",
        help="paper (the published protocol, exactly) or tuned (same budget and samples seen, "
        "our schedule and precision); default paper",
    )
    parser.add_argument(
        "--trials", type=int, default=None, help="trials (default 5 on 2-D fields, 1 on polymax)"
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="one learning rate instead of the protocol's"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="fewer optimiser steps (quick checks only)"
    )
    parser.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="write the results to FILE (JSON; results already there for other cells are kept; "
        "also a table for BENCHMARKS.md when FILE is under benchmarks/results/)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (per-trial lines remain)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's own choice; use 1 when running several jobs at once)",
    )


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (from the parsed arguments)."""
    parts = ["hamgrad", "fields", "--field", args.field]
    if args.dim is not None:
        parts += ["--dim", str(args.dim)]
    parts += ["--model", args.model, "--protocol", args.protocol]
    for flag in ("trials", "lr", "steps"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag}", f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    import time

    import hamgrad.systems.fields  # noqa: F401  (registers the fields)
    from hamgrad.field_protocols import (
        format_table,
        load_results,
        make_plan,
        run_plan,
        write_results,
    )

    models = [m.strip() for m in str(args.model).split(",") if m.strip()]
    if not models:
        raise ValueError(f"--model must name at least one model, got {args.model!r}")
    plans = [
        make_plan(
            args.field,
            m,
            dim=args.dim,
            protocol=args.protocol,
            trials=args.trials,
            lr=args.lr,
            steps=args.steps,
        )
        for m in models
    ]  # every argument is checked before anything runs
    if args.threads is not None:
        import torch

        from hamgrad.validation import check_positive_int

        torch.set_num_threads(check_positive_int("--threads", args.threads))
    if args.json is not None:
        load_results(args.json)  # refuse a foreign file before hours of training
    command = _command_line(args)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = []
    for plan in plans:
        start = time.perf_counter()
        result = run_plan(plan, progress=not args.no_progress, log=log)
        result["wall_seconds"] = time.perf_counter() - start
        result["command"] = command
        results.append(result)
    print(format_table(results))
    if args.json is not None:
        path = write_results(args.json, results)
        print(f"results written to {path}")
    return 0
