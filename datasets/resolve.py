"""Turn a system name (or instance), parameters and a preset into a configured system.

Used by :func:`hamgrad.datasets.generate` and :func:`hamgrad.datasets.generate_fields`: the
parameter names are checked against the class's ``defaults`` and numeric defaults only accept
numbers, so a typo or a wrong value is a one-line ``ValueError``/``TypeError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ResolvedSystem:
    """A constructed system with its registry name, parameters and the chosen preset (or ``{}``)."""

    system: Any
    name: str
    params: dict[str, Any]
    preset_name: str | None = None
    preset: dict[str, Any] = field(default_factory=dict)


def check_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate parameter names against ``cls.defaults``; return a copy (values: the system checks)."""
    defaults = dict(getattr(cls, "defaults", {}) or {})
    name = getattr(cls, "name", cls.__name__)
    unknown = sorted(k for k in params if k not in defaults)
    if unknown:
        allowed = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) or "none"
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for system {name!r}; parameters: {allowed}"
        )
    return dict(params)


def _preset(cls: type, preset: str | None) -> dict[str, Any]:
    if preset is None:
        return {}
    presets = dict(getattr(cls, "presets", {}) or {})
    name = getattr(cls, "name", cls.__name__)
    if preset not in presets:
        available = ", ".join(sorted(presets)) or "none"
        raise ValueError(
            f"unknown preset {preset!r} for system {name!r}; available presets: {available}"
        )
    return dict(presets[preset])


def resolve_system(
    system: Any,
    *,
    params: Mapping[str, Any] | None = None,
    preset: str | None = None,
    kind: str = "dynamics",
) -> ResolvedSystem:
    """Construct ``system`` (a registry name or an instance) of the wanted ``kind``.

    For a name, the parameters are the preset's ``params`` updated by ``params``. An instance is used
    as it is (``params`` must then be ``None``); a preset whose ``params`` differ from the instance's
    is refused rather than silently ignored.
    """
    from hamgrad.systems import list_systems, system_class

    if isinstance(system, str):
        cls = system_class(system)  # unknown name: ValueError listing the registered names
        actual_kind = getattr(cls, "kind", None)
        if actual_kind != kind:
            hint = "generate_fields / --samples" if actual_kind == "field" else "generate"
            raise ValueError(
                f"system {system!r} is a {actual_kind} system, not {kind}; use {hint} "
                f"(available {kind} systems: {', '.join(list_systems(kind))})"
            )
        chosen = _preset(cls, preset)
        merged = {**dict(chosen.get("params", {})), **dict(params or {})}
        merged = check_params(cls, merged)
        obj = cls(**merged)
        return ResolvedSystem(obj, system, dict(obj.params), preset, chosen)

    if params is not None:
        raise TypeError("params= only applies when the system is given by name, not an instance")
    cls = type(system)
    actual_kind = getattr(system, "kind", None)
    if actual_kind != kind:
        raise ValueError(f"system {system!r} has kind {actual_kind!r}, expected {kind!r}")
    name = getattr(cls, "name", cls.__name__)
    chosen = _preset(cls, preset)
    own = dict(getattr(system, "params", {}) or {})
    clash = {k: v for k, v in dict(chosen.get("params", {})).items() if own.get(k) != v}
    if clash:
        raise ValueError(
            f"preset {preset!r} sets {clash} but the given {name!r} instance has {own}; "
            "pass the system by name to use the preset's parameters"
        )
    return ResolvedSystem(system, name, own, preset, chosen)
