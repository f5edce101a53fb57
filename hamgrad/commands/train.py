"""``hamgrad train DATA --model NAME --out RUN``: learn a Hamiltonian from a trajectory dataset."""

from __future__ import annotations

import argparse

HELP = "train a learned Hamiltonian (or the MLP baseline) on a trajectory dataset"

# argparse destination -> TrainConfig field (every option defaults to None = "not given")
_FIELDS = {
    "model": "model",
    "separable": "separable",
    "kinetic_model": "kinetic_model",
    "param_budget": "param_budget",
    "width": "width",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "schedule": "schedule",
    "weight_decay": "weight_decay",
    "grad_clip": "grad_clip",
    "warmup_steps": "warmup_steps",
    "loss": "loss",
    "targets": "targets",
    "rollout_steps": "rollout_steps",
    "integrator": "integrator",
    "input_noise": "input_noise",
    "denoise_states": "denoise_states",
    "seed": "seed",
    "checkpoint_every": "checkpoint_every",
    "log_every": "log_every",
    "dtype": "dtype",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", metavar="DATA", help="trajectory dataset (HDF5, `hamgrad generate`)"
    )
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    parser.add_argument(
        "--model",
        help="gradnet-c, gradnet-m, mgradnet-c, mgradnet-m, hnn or mlp (required for a new run)",
    )
    parser.add_argument(
        "--separable",
        action="store_const",
        const=True,
        default=None,
        help="learn H = T(p) + V(q): a monotone network for T, --model for V",
    )
    parser.add_argument("--kinetic-model", help="network for T(p) with --separable")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--param-budget", type=int, help="total trainable parameters (at most)")
    size.add_argument("--width", type=int, help="hidden width of the network(s)")
    parser.add_argument("--steps", type=int, help="optimisation steps (default 2000)")
    parser.add_argument(
        "--batch-size", type=int, help="samples per step, all ranks together (default 200)"
    )
    parser.add_argument("--lr", type=float, help="peak learning rate of Adam (default 1e-3)")
    parser.add_argument(
        "--schedule",
        choices=["constant", "cosine", "step"],
        help="learning-rate schedule (default cosine)",
    )
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default 0)")
    parser.add_argument("--weight-decay", type=float, help="Adam weight decay (default 0)")
    parser.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    parser.add_argument(
        "--loss",
        choices=["derivative", "rollout"],
        help="derivative matching (HNN's loss, default) or rollout matching",
    )
    parser.add_argument(
        "--targets",
        choices=["analytic", "finite-difference"],
        help="dx/dt targets: the dataset's (default) or finite differences of the states",
    )
    parser.add_argument("--rollout-steps", type=int, help="steps unrolled by --loss rollout")
    parser.add_argument("--integrator", help="integrator of --loss rollout")
    parser.add_argument("--input-noise", type=float, help="std of noise added to input states")
    parser.add_argument(
        "--extrapolate-noise",
        action="store_true",
        help="correct for the noise in the data's states (std from the file's noise_std): a second "
        "model sees extra noise and both are extrapolated to zero noise (SIMEX)",
    )
    parser.add_argument(
        "--denoise-states",
        action="store_const",
        const=True,
        default=None,
        help="train on each trajectory's states rebuilt from its analytic derivatives (for noisy "
        "states with exact derivatives: the noise shrinks by the square root of the points)",
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], help="model precision")
    parser.add_argument("--seed", type=int, help="root seed (default 0)")
    parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    parser.add_argument("--log-every", type=int, help="steps between rows of metrics.csv")
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields set on the command line."""
    return {
        field: getattr(args, dest)
        for dest, field in _FIELDS.items()
        if getattr(args, dest, None) is not None
    }


def data_noise_std(data: str) -> float:
    """The ``noise_std`` a trajectory file records (> 0), for ``--extrapolate-noise``."""
    from hamgrad.training_data import recorded_noise_std

    std = recorded_noise_std(data)
    if std <= 0:
        raise ValueError(
            f"--extrapolate-noise needs noisy states, but {str(data)!r} records noise_std={std:g}; "
            "generate the data with --noise, or leave the flag out"
        )
    return std


def run(args: argparse.Namespace) -> int:
    from hamgrad.train import train_dynamics

    settings = given_settings(args)
    if not args.resume and "model" not in settings:
        raise ValueError("--model is required for a new run (one of the names in `--help`)")
    if getattr(args, "extrapolate_noise", False):
        settings["noise_extrapolation"] = data_noise_std(args.data)
    result = train_dynamics(
        args.data, args.out, resume=args.resume, progress=not args.quiet, **settings
    )
    from hamgrad import distributed

    if not distributed.is_main():
        return 0  # under torchrun rank 0 reports
    last = result.history[-1] if result.history else {}
    parts = [f"trained {result.config.model}", f"{result.steps_done} steps"]
    if last.get("loss") is not None:
        parts.append(f"loss {last['loss']:.4g}")
    if last.get("val_loss") is not None:
        parts.append(f"val loss {last['val_loss']:.4g}")
    parts.append(f"{result.seconds:.1f} s")
    print(", ".join(parts) + f" -> {result.run_dir}")
    return 0
