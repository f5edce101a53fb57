"""Name -> class registry of systems and static gradient fields.

``@register("pendulum")`` on a class makes ``get_system("pendulum", g=3.0)`` construct it with
keyword parameters overriding the class defaults.
"""

from __future__ import annotations

from typing import Any

from hamgrad.validation import check_choice

_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator adding a system (or static field) class to the registry under ``name``."""

    def decorator(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"system name {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_system(name: str, **params: Any):
    """Construct the registered system ``name``; keyword arguments override its default parameters."""
    check_choice("system", name, list_systems())
    return _REGISTRY[name](**params)


def system_class(name: str) -> type:
    """The class registered under ``name``."""
    check_choice("system", name, list_systems())
    return _REGISTRY[name]


def list_systems(kind: str | None = None) -> list[str]:
    """Registered names, sorted; ``kind`` filters: ``"dynamics"`` or ``"field"``."""
    if kind is not None:
        check_choice("kind", kind, ["dynamics", "field"])
    return sorted(
        n for n, c in _REGISTRY.items() if kind is None or getattr(c, "kind", None) == kind
    )
