"""``hamgrad generate SYSTEM --out FILE``: write an HDF5 dataset (trajectories, or a static field)."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "write an HDF5 dataset (progress bar; resumable)"

#: Options that only apply to dynamical systems (trajectory datasets).
TRAJECTORY_OPTIONS = {
    "preset": "--preset",
    "trajectories": "--trajectories",
    "steps": "--steps",
    "dt": "--dt",
    "noise": "--noise",
    "vary": "--vary",
    "chunk_size": "--chunk-size",
    "simulation_batch": "--simulation-batch",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("system", help="system name (see `hamgrad systems`)")
    parser.add_argument("--out", required=True, metavar="FILE", help="HDF5 file to write")
    parser.add_argument(
        "--preset", metavar="NAME", help="take parameters and sizes from a preset (e.g. hnn)"
    )
    parser.add_argument("--trajectories", type=int, metavar="N", help="number of trajectories")
    parser.add_argument("--steps", type=int, metavar="T", help="stored steps per trajectory")
    parser.add_argument("--dt", type=float, metavar="DT", help="time between stored states")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="root seed (default 0)")
    parser.add_argument("--noise", type=float, metavar="STD", help="noise std added to stored q, p")
    parser.add_argument(
        "--splits",
        metavar="F,F,F",
        help="train,val,test fractions summing to 1 (default 0.8,0.1,0.1)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="system parameter (repeatable); lists as 1.3,2.3",
    )
    parser.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=LO:HI",
        help="draw this parameter per trajectory, uniformly in [LO, HI] (repeatable)",
    )
    parser.add_argument("--samples", type=int, metavar="N", help="static fields: number of points")
    parser.add_argument(
        "--chunk-size", type=int, metavar="N", help="trajectories written at a time"
    )
    parser.add_argument(
        "--simulation-batch", type=int, metavar="N", help="trajectories integrated together"
    )
    parser.add_argument("--compression", choices=["gzip", "lzf"], help="compress the datasets")
    parser.add_argument("--compression-level", type=int, metavar="L", help="gzip level 0-9")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_value(text: str) -> Any:
    """A parameter value from the command line: int, float, true/false, a list (a,b) or text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if "," in text:
        return [parse_value(part) for part in text.split(",")]
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["g=3", "radius=1.3,2.3"]`` -> ``{"g": 3, "radius": [1.3, 2.3]}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param must look like KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def parse_vary(items: list[str]) -> dict[str, tuple[float, float]]:
    """``["g=2:4"]`` -> ``{"g": (2.0, 4.0)}``."""
    out: dict[str, tuple[float, float]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        lo, colon, hi = value.partition(":")
        try:
            if not sep or not colon:
                raise ValueError
            out[key.strip()] = (float(lo), float(hi))
        except ValueError:
            raise ValueError(f"--vary must look like KEY=LO:HI, got {item!r}") from None
    return out


def _size(n_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""


def run(args: argparse.Namespace) -> int:
    from hamgrad.datasets import generate, generate_fields, summarize
    from hamgrad.errors import DivergenceError
    from hamgrad.systems import system_class

    kind = getattr(system_class(args.system), "kind", "dynamics")
    params = parse_params(args.param)
    common = {
        "seed": args.seed,
        "compression": args.compression,
        "compression_opts": args.compression_level,
        "overwrite": args.force,
        "progress": not args.quiet,
    }
    if kind == "field":
        given = [
            flag
            for attr, flag in TRAJECTORY_OPTIONS.items()
            if getattr(args, attr) not in (None, [])
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} do not apply to the static field {args.system!r}; "
                "use --samples N [--splits F,F,F]"
            )
        if args.samples is None:
            raise ValueError(f"--samples N is required for the static field {args.system!r}")
        from hamgrad import distributed

        distributed.init_process_group()  # under torchrun a field file is written by rank 0 alone
        path = distributed.call_on_main(
            lambda: generate_fields(
                args.system,
                args.out,
                n_samples=args.samples,
                splits=args.splits,
                params=params,
                **common,
            )
        )
        if not distributed.is_main():
            return 0
        info = summarize(path)
        sizes = ", ".join(f"{k} {v['n_samples']}" for k, v in info["splits"].items())
        print(f"wrote {path}: {args.system} samples ({sizes}), {_size(info['file_bytes'])}")
        return 0
    if args.samples is not None:
        raise ValueError(
            f"--samples applies to static fields; {args.system!r} is a dynamical system"
        )
    try:
        path = generate(
            args.system,
            args.out,
            n_trajectories=args.trajectories,
            n_steps=args.steps,
            dt=args.dt,
            noise_std=args.noise,
            splits=args.splits,
            preset=args.preset,
            params=params,
            vary=parse_vary(args.vary) or None,
            chunk_size=args.chunk_size,
            simulation_batch=args.simulation_batch,
            **common,
        )
    except DivergenceError as exc:
        raise RuntimeError(str(exc)) from None
    from hamgrad import distributed

    if not distributed.is_main():
        return 0  # under torchrun rank 0 reports the joined file
    info = summarize(path)
    sizes = ", ".join(f"{k} {v['n_trajectories']}" for k, v in info["splits"].items())
    print(f"wrote {path}: {args.system} trajectories ({sizes}), {_size(info['file_bytes'])}")
    return 0
