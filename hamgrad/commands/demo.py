"""``hamgrad demo``: the HNN two-body protocol end to end (``make demo``).

1. Generate the HNN two-body dataset (preset ``hnn``: 1000 orbits, t in [0, 20] at 50 points,
   80 % train / 20 % test).
2. Train a separable GradNet Hamiltonian, HNN and the MLP baseline with the same parameter budget
   and the same number of steps of batch 200.
3. Roll out the 15 held-out orbits of HNN's evaluation (t in [0, 25], 500 points) and compare with
   the exact ground truth: table on stdout, figures and ``compare.json``/``compare.md`` in
   ``runs/demo/``.

HNN's full budget is 10,000 steps; to stay within minutes on two CPU cores the demo trains
:data:`DEMO_STEPS` steps and says so. The full-budget comparison is
``python -m benchmarks dynamics`` (``benchmarks/bench_dynamics.py``).
"""

from __future__ import annotations

import argparse

HELP = "the HNN two-body protocol end to end: data, GradNet vs HNN vs MLP, table and figures"

#: The models of the demo (``name:structure``); see :mod:`hamgrad.comparison`.
DEMO_MODELS = ("gradnet-c:separable", "hnn", "mlp")
#: Parameter budget of every model: HNN's published network (two hidden layers of 200 on 8 inputs).
DEMO_PARAM_BUDGET = 42_200
#: HNN's training budget for the two-body task.
FULL_STEPS = 10_000
#: Steps trained by the demo (fits the time budget of a few minutes on two CPU cores).
DEMO_STEPS = 3_000
#: Peak learning rates (cosine schedule for all): each model's best of {1e-3, 3e-3, 1e-2} on the
#: two-body validation loss (HNN's published setting is a constant 1e-3).
DEMO_LR = {"gradnet-c-separable": 1e-2, "hnn": 1e-3, "mlp": 1e-3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.add_argument(
        "--steps",
        type=int,
        default=DEMO_STEPS,
        help=f"training steps per model (default {DEMO_STEPS}; HNN's budget is {FULL_STEPS})",
    )
    parser.add_argument(
        "--param-budget",
        type=int,
        default=DEMO_PARAM_BUDGET,
        help=f"parameters per model (default {DEMO_PARAM_BUDGET})",
    )
    parser.add_argument(
        "--n-trajectories",
        type=int,
        help="orbits in the dataset (default: the preset's 1000; fewer for a quick check)",
    )
    parser.add_argument("--n-eval", type=int, help="evaluate only the first N of the 15 orbits")
    parser.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    parser.add_argument(
        "--fresh", action="store_true", help="retrain even if finished runs are in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _remove_runs(out) -> None:
    """Delete the demo's own previous run directories (only hamgrad runs) and dataset."""
    import shutil

    runs = out / "runs"
    if runs.is_dir():
        for d in runs.iterdir():
            if d.is_dir() and (d / "config.json").is_file():
                shutil.rmtree(d)


def _compare(args: argparse.Namespace, data, out) -> dict:
    from hamgrad.comparison import compare_models

    return compare_models(
        data,
        DEMO_MODELS,
        out,
        param_budget=args.param_budget,
        steps=args.steps,
        batch_size=200,
        schedule="cosine",
        seed=args.seed,
        model_overrides={label: {"lr": lr} for label, lr in DEMO_LR.items()},
        protocol="preset",
        n_eval=args.n_eval,
        progress=not args.quiet,
        log=lambda msg: print(msg, flush=True),
        title="two-body, HNN protocol",
    )


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import h5py

    from hamgrad.comparison import COMPARE_COLUMNS
    from hamgrad.datasets import generate
    from hamgrad.errors import CheckpointError
    from hamgrad.reporting import text_table

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        _remove_runs(out)
    print("hamgrad demo: HNN's two-body protocol (Greydanus et al. 2019)", flush=True)
    data = out / "two-body-hnn.h5"
    n_traj = args.n_trajectories
    reuse = False
    if data.is_file():
        with h5py.File(data, "r") as f:
            reuse = bool(f.attrs.get("complete", False)) and (
                n_traj is None or sum(f[s]["q"].shape[0] for s in ("train", "test")) == n_traj
            )
    if reuse and not args.fresh:
        print(f"[data] reusing {data}", flush=True)
    else:
        print("[data] generating the HNN two-body dataset (preset 'hnn')", flush=True)
        generate(
            "two-body",
            data,
            preset="hnn",
            n_trajectories=n_traj,
            seed=args.seed,
            overwrite=True,
            progress=not args.quiet,
        )
    if args.steps < FULL_STEPS:
        print(
            f"[note] training {args.steps} steps per model instead of HNN's {FULL_STEPS} to fit "
            "a few minutes on two CPU cores; the full-budget comparison is "
            "`python -m benchmarks dynamics`",
            flush=True,
        )
    try:
        report = _compare(args, data, out)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (run `hamgrad demo --fresh` to retrain)") from exc
    print()
    print(text_table(report["rows"], COMPARE_COLUMNS))
    rows = {r["label"]: r for r in report["rows"]}
    best = rows.get("gradnet-c-separable")
    hnn = rows.get("hnn")
    if best and hnn:
        gain = best["psnr_mean"] - hnn["psnr_mean"]
        ratio = hnn["energy_mse"] / best["energy_mse"] if best["energy_mse"] > 0 else float("inf")
        print(
            f"\nGradNet vs HNN: {gain:+.1f} dB trajectory PSNR, energy MSE {ratio:.3g}x lower "
            f"(HNN published energy MSE 3.8751e-05 after {FULL_STEPS} steps)"
        )
    print(f"\nfigures, compare.json and compare.md -> {out}/  ({time.perf_counter() - t0:.0f} s)")
    return 0
