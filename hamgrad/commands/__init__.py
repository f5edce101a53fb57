"""CLI sub-commands; see :mod:`hamgrad.cli`."""
