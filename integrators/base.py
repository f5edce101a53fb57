"""The integrator base class and the name -> class registry.

Adding a method is one class: subclass :class:`Integrator`, set its class attributes and
``integrate``, and decorate it with ``@register_integrator("name")``. ``rollout(..., method="name")``
then finds it, checks its options and tells it whether the Hamiltonian fits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from hamgrad.validation import check_choice

_REGISTRY: dict[str, type[Integrator]] = {}


@dataclass(frozen=True)
class IntegratorInfo:
    """What ``list_integrators()`` says about one method.

    ``order``: global order of accuracy; ``symplectic``: the one-step map preserves the canonical
    2-form; ``symmetric``: time-reversible (stepping back with ``-dt`` undoes a step);
    ``separable_only``: needs ``H = T(p) + V(q)`` (``grad_q`` and ``grad_p``); ``adaptive``: step
    size chosen by error control; ``options``: accepted keyword options and their defaults.
    """

    name: str
    order: int
    symplectic: bool
    symmetric: bool
    separable_only: bool
    adaptive: bool
    options: dict[str, Any]
    summary: str


class Integrator(ABC):
    """One integration method. Subclasses set the class attributes below and ``integrate``."""

    name: ClassVar[str] = ""
    order: ClassVar[int]
    symplectic: ClassVar[bool]
    symmetric: ClassVar[bool]
    separable_only: ClassVar[bool]
    adaptive: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    #: accepted keyword options and their defaults
    option_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            allowed = ", ".join(sorted(self.option_defaults)) or "none"
            raise TypeError(
                f"unknown option(s) {unknown} for method {self.name!r}; it accepts: {allowed}"
            )
        self.options: dict[str, Any] = {**self.option_defaults, **options}
        self.check_options()

    def check_options(self) -> None:  # noqa: B027  (optional hook)
        """Validate ``self.options`` (override to add checks)."""

    @abstractmethod
    def integrate(
        self, h: Any, x0: torch.Tensor, dt: float, n_steps: int, save_every: int
    ) -> torch.Tensor:
        """Integrate ``dx/dt = J ∇H(x)`` from ``x0`` of shape (B, 2n), already validated.

        Returns the saved states, shape (B, n_steps // save_every + 1, 2n), in ``x0``'s dtype,
        with index 0 equal to ``x0``. Raises ``DivergenceError`` on a non-finite state.
        """

    @classmethod
    def info(cls) -> IntegratorInfo:
        return IntegratorInfo(
            name=cls.name,
            order=cls.order,
            symplectic=cls.symplectic,
            symmetric=cls.symmetric,
            separable_only=cls.separable_only,
            adaptive=cls.adaptive,
            options=dict(cls.option_defaults),
            summary=cls.summary,
        )


def register_integrator(name: str):
    """Class decorator adding an :class:`Integrator` subclass to the registry under ``name``."""

    def decorator(cls: type[Integrator]) -> type[Integrator]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"integrator name {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def integrator_names() -> list[str]:
    """Registered method names in registration order."""
    return list(_REGISTRY)


def integrator_class(method: str) -> type[Integrator]:
    """The class registered under ``method`` (``ValueError`` listing the names otherwise)."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {method!r} ({type(method).__name__})")
    check_choice("integration method", method, integrator_names())
    return _REGISTRY[method]


def get_integrator(method: str, **options: Any) -> Integrator:
    """An instance of the method ``method`` configured with ``options``."""
    return integrator_class(method)(**options)


def list_integrators() -> list[IntegratorInfo]:
    """One :class:`IntegratorInfo` per registered method (order, symplectic, separable-only, ...)."""
    return [cls.info() for cls in _REGISTRY.values()]


def integrators_table() -> str:
    """A printable table of the registered methods."""
    rows = [("method", "order", "symplectic", "symmetric", "separable only", "adaptive")]
    for i in list_integrators():
        yes = {True: "yes", False: "no"}
        rows.append(
            (
                i.name,
                str(i.order),
                yes[i.symplectic],
                yes[i.symmetric],
                yes[i.separable_only],
                yes[i.adaptive],
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
