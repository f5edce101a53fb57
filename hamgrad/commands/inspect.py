"""``hamgrad inspect FILE``: schema, sizes, parameters, splits and energy conservation of a data file."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "schema, sizes, parameters, energy conservation summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an HDF5 file written by hamgrad generate")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""


def format_summary(info: dict[str, Any]) -> str:
    """The text ``hamgrad inspect`` prints for :func:`hamgrad.datasets.summarize`'s dictionary."""
    from hamgrad.commands.systems import format_table

    a = info["attrs"]
    lines = [
        f"file         {info['path']} ({_size(info['file_bytes'])})",
        f"format       {a['format']}, schema version {a['schema_version']}, "
        f"written by hamgrad {a.get('hamgrad_version', '?')}",
        f"system       {a.get('system')} {json.dumps(a.get('system_params', {}))}",
    ]
    if a["format"] == "hamgrad-trajectories":
        t_end = a["dt"] * a["n_steps"]
        lines += [
            f"dof          {a['dof']} (state dimension {2 * a['dof']})",
            f"time grid    {a['n_steps'] + 1} states, dt = {a['dt']:.6g}, t in [0, {t_end:.6g}]",
            f"seed         {a['seed']}",
            f"noise_std    {a['noise_std']:g} (on stored q, p; dqdt, dpdt, energy exact)",
            f"integrator   {a.get('integrator')} {json.dumps(a.get('integrator_params', {}))}",
            "",
        ]
        rows = [
            {
                "split": name,
                "trajectories": str(s["n_trajectories"]),
                "states": str(s["n_states"]),
                "stored": _size(s["stored_bytes"]),
                "max rel. energy error": f"{s['energy_rel_error_max']:.3g}",
                "median": f"{s['energy_rel_error_median']:.3g}",
            }
            for name, s in info["splits"].items()
        ]
        if rows:
            lines.append(format_table(rows))
        lines.append(
            "(relative energy error per trajectory: max_t |E(t) - E(0)| / |E(0)| of the stored "
            "clean-state energies; max and median over the split)"
        )
    else:
        lines += [
            f"dim          {a['dim']}, box [{min(a['low']):g}, {max(a['high']):g}]",
            f"seed         {a['seed']}",
            "",
        ]
        rows = [{"split": k, "samples": str(s["n_samples"])} for k, s in info["splits"].items()]
        if rows:
            lines.append(format_table(rows))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hamgrad.datasets import summarize

    info = summarize(args.file)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_summary(info))
    return 0
