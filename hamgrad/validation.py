"""Argument checks shared by the whole package.

Each check raises ``ValueError``/``TypeError`` with a message of the form
``"<name> must be <what is allowed>, got <value>"`` so the user sees the argument, the value
and the allowed range in one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an int if it is a (non-negative when ``allow_zero``) positive integer."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    lo = 0 if allow_zero else 1
    if value < lo:
        what = "a non-negative integer" if allow_zero else "a positive integer"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is finite and > 0 (>= 0 when ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        what = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def check_finite_float(name: str, value: Any, *, nonzero: bool = False) -> float:
    """Return ``value`` as a float if it is finite (and non-zero when ``nonzero``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or (nonzero and v == 0):
        what = "a finite non-zero number" if nonzero else "a finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise list the allowed names."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
    return value


def check_last_dim(name: str, x: Any, dim: int) -> None:
    """Require a tensor/array whose last axis has length ``dim``."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) == 0 or shape[-1] != dim:
        raise ValueError(f"{name} must have last axis of length {dim}, got shape {shape}")
