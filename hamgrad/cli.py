"""The ``hamgrad`` command line: one sub-command per module in :mod:`hamgrad.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules keep heavy imports (torch, h5py) inside ``run`` so ``hamgrad --help`` stays fast.
A ``ValueError``/``TypeError``/``OSError``/``RuntimeError``/``ArithmeticError`` (which covers
hamgrad's own errors) raised by a command becomes one line on stderr and exit
status 2, never a traceback (set ``HAMGRAD_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from hamgrad.errors import HamgradError

# sub-command name -> module in hamgrad.commands
COMMANDS: dict[str, str] = {
    "systems": "systems",
    "generate": "generate",
    "inspect": "inspect",
    "train": "train",
    "evaluate": "evaluate",
    "compare": "compare",
    "fields": "fields",
    "demo": "demo",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every available sub-command."""
    from hamgrad import __version__

    parser = OneLineErrorParser(
        prog="hamgrad", description="Learning Hamiltonian dynamics with gradient networks."
    )
    parser.add_argument("--version", action="version", version=f"hamgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"hamgrad.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"hamgrad.commands.{module_name}":
                continue  # command not available in this build
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _error_line(text: str) -> None:
    """``text`` and its newline in one write: ranks of a torchrun job share stderr, and with an
    unbuffered stream ``print`` writes the text and the newline separately, so two ranks' lines
    could interleave into one."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m hamgrad``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        _error_line("hamgrad: interrupted")
        return 130
    except (
        HamgradError,
        ValueError,
        TypeError,
        OSError,
        RuntimeError,
        KeyError,
        ArithmeticError,
    ) as exc:
        if os.environ.get("HAMGRAD_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _error_line(f"hamgrad {args.command}: error: {message}")
        return 2
