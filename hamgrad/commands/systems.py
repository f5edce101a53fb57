"""``hamgrad systems [NAME]``: the registered systems and static fields, their parameters and presets."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "list systems and their parameters"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", nargs="?", help="show one system in detail (parameters, presets, description)"
    )


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_value(x) for x in v)
    return str(v)


def _row(name: str) -> dict[str, str]:
    from hamgrad.systems import get_system, system_class

    cls = system_class(name)
    obj = get_system(name)
    kind = getattr(cls, "kind", "?")
    if kind == "field":
        size = f"dim {obj.dim}"
        separable = "-"
    else:
        size = str(obj.dof)
        separable = "yes" if obj.separable else "no"
    defaults = dict(getattr(cls, "defaults", {}) or {})
    return {
        "system": name,
        "kind": kind,
        "dof": size,
        "separable": separable,
        "presets": ",".join(sorted(getattr(cls, "presets", {}) or {})) or "-",
        "parameters (defaults)": " ".join(f"{k}={_value(v)}" for k, v in defaults.items()) or "-",
    }


def format_table(rows: list[dict[str, str]]) -> str:
    """Rows of equal keys as an aligned text table."""
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys).rstrip()]
    lines += ["  ".join(r[k].ljust(widths[k]) for k in keys).rstrip() for r in rows]
    return "\n".join(lines)


def _detail(name: str) -> str:
    from hamgrad.systems import system_class

    cls = system_class(name)
    row = _row(name)
    lines = [
        f"{name}: {getattr(cls, 'description', '') or (cls.__doc__ or '').strip().splitlines()[0]}"
    ]
    lines += [f"  kind: {row['kind']}", f"  dof: {row['dof']}", f"  separable: {row['separable']}"]
    lines.append("  parameters (defaults):")
    for k, v in (getattr(cls, "defaults", {}) or {}).items():
        lines.append(f"    {k} = {_value(v)}")
    for preset, spec in (getattr(cls, "presets", {}) or {}).items():
        lines.append(f"  preset {preset}: {json.dumps(spec, default=str)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hamgrad.systems import list_systems

    if args.name is not None:
        print(_detail(args.name))
        return 0
    print(format_table([_row(name) for name in list_systems()]))
    print(
        "\nGenerate a dataset: hamgrad generate SYSTEM --out FILE [--preset hnn] [--param KEY=VALUE]"
    )
    return 0
