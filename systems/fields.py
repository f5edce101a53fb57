"""Static gradient fields: the regression targets of the Gradient Networks paper.

A :class:`GradientField` is a scalar potential F on a box ``[low, high]^d`` with its analytic gradient
∇F. Registered fields (see ``reference/gradnets.md``):

- ``convex-2d``: F = x₁⁴ + x₁²/2 + x₁x₂/2 + 3x₂²/2 − x₂³/3 on [0, 1]² (convex there);
- ``nonconvex-2d``: G = ¼ sin(2πx₁) cos(πx₂) + x₁x₂/2 − x₂²/2 on [0, 1]²;
- ``polymax``: F = (1/c) max_{A ∈ {S, P, Q}} (x − ½)ᵀ A (x − ½) on [0, 1]^d, any d ≥ 2, with c the
  mean norm of the unnormalised gradient over :data:`POLYMAX_NORM_POINTS` uniform points drawn with
  seed :data:`POLYMAX_NORM_SEED` (so the target field has mean norm ≈ 1).

>>> from hamgrad.systems import get_system
>>> field = get_system("polymax", dim=32)
>>> x = field.sample(1000, generator=torch.Generator().manual_seed(0))   # (1000, 32) float64
>>> field.grad(x).shape
torch.Size([1000, 32])
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from hamgrad.systems.registry import register
from hamgrad.validation import check_last_dim, check_positive_int

#: Number of uniform points over which PolyMax's normalising constant c is averaged.
POLYMAX_NORM_POINTS = 10_000
#: Seed of the ``torch.Generator`` drawing those points (float64, ``torch.rand``): c is deterministic.
POLYMAX_NORM_SEED = 0


class GradientField(ABC):
    """A scalar potential F on the box ``[low, high]`` and its gradient ∇F.

    Subclasses set ``dim`` (an int), ``low``/``high`` (float64 tensors of shape ``(dim,)``) and
    ``params`` in ``__init__`` and implement :meth:`potential` and :meth:`grad`.
    """

    kind: ClassVar[str] = "field"
    name: ClassVar[str]
    #: default keyword parameters of the constructor
    defaults: ClassVar[dict[str, Any]] = {}

    dim: int
    low: torch.Tensor
    high: torch.Tensor
    params: dict[str, Any]

    @abstractmethod
    def potential(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): ``(..., dim) -> (...)``, in the dtype of ``x``."""

    @abstractmethod
    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇F(x): ``(..., dim) -> (..., dim)``, analytic, in the dtype of ``x``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`grad`, so a field can be passed wherever a gradient function is expected."""
        return self.grad(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points drawn uniformly in the box: ``(n, dim)`` float64 (CPU)."""
        n = check_positive_int("n", n)
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
        return self.low + (self.high - self.low) * u

    def grid(self, points_per_axis: int) -> torch.Tensor:
        """A regular grid of the box, endpoints included: ``(points_per_axis**dim, dim)`` float64.

        The 2-D benchmarks evaluate on ``grid(100)`` (a 100×100 grid). Refused when the grid would
        exceed 10⁷ points.
        """
        m = check_positive_int("points_per_axis", points_per_axis)
        if m**self.dim > 10**7:
            raise ValueError(
                f"points_per_axis={m} gives {m}**{self.dim} grid points in {self.dim} dimensions; "
                "at most 10**7 are allowed"
            )
        axes = [
            torch.linspace(lo, hi, m, dtype=torch.float64)
            for lo, hi in zip(self.low, self.high, strict=True)
        ]
        mesh = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([g.reshape(-1) for g in mesh], dim=-1)

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        check_last_dim("x", x, self.dim)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class _Box2D(GradientField):
    """A field on the unit square [0, 1]² without parameters."""

    def __init__(self) -> None:
        self.dim = 2
        self.low = torch.zeros(2, dtype=torch.float64)
        self.high = torch.ones(2, dtype=torch.float64)
        self.params = {}


@register("convex-2d")
class Convex2D(_Box2D):
    """F(x) = x₁⁴ + x₁²/2 + x₁x₂/2 + 3x₂²/2 − x₂³/3 on [0, 1]² (the paper's convex 2-D field).

    ∇F = (4x₁³ + x₁ + x₂/2, 3x₂ − x₂² + x₁/2).
    """

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return x1**4 + x1**2 / 2 + x1 * x2 / 2 + 1.5 * x2**2 - x2**3 / 3

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return torch.stack((4 * x1**3 + x1 + x2 / 2, 3 * x2 - x2**2 + x1 / 2), dim=-1)


@register("nonconvex-2d")
class NonConvex2D(_Box2D):
    """G(x) = ¼ sin(2πx₁) cos(πx₂) + x₁x₂/2 − x₂²/2 on [0, 1]² (the paper's non-convex 2-D field).

    ∇G = ((π/2) cos(2πx₁) cos(πx₂) + x₂/2, −(π/4) sin(2πx₁) sin(πx₂) + x₁/2 − x₂).
    """

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        return (
            0.25 * torch.sin(2 * math.pi * x1) * torch.cos(math.pi * x2) + x1 * x2 / 2 - x2**2 / 2
        )

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x1, x2 = x[..., 0], x[..., 1]
        g1 = (math.pi / 2) * torch.cos(2 * math.pi * x1) * torch.cos(math.pi * x2) + x2 / 2
        g2 = -(math.pi / 4) * torch.sin(2 * math.pi * x1) * torch.sin(math.pi * x2) + x1 / 2 - x2
        return torch.stack((g1, g2), dim=-1)


def polymax_matrices(dim: int) -> torch.Tensor:
    """The three PolyMax matrices S, P, Q stacked: ``(3, dim, dim)`` float64, symmetric.

    P and Q are positive definite for every d ≥ 2, S for every d except d = 4 (where the formula as
    published gives S one negative eigenvalue, ≈ −0.103; checked for d = 2..199).

    With a_ij = (i + j − 2)/(2d − 2) (1-based i, j) and T_ij = 1 / (ln d · (1 + |i − j|)):
    S = (2 + sin(4π a)) ⊙ T, P = (1 + 2a) ⊙ T, Q = (3 − 2a) ⊙ T.
    """
    d = check_positive_int("dim", dim)
    if d < 2:
        raise ValueError(
            f"dim must be an integer >= 2 for polymax (ln d normalisation), got {dim!r}"
        )
    idx = torch.arange(d, dtype=torch.float64)
    a = (idx[:, None] + idx[None, :]) / (2 * d - 2)
    t = 1.0 / (math.log(d) * (1.0 + (idx[:, None] - idx[None, :]).abs()))
    s = (2.0 + torch.sin(4 * math.pi * a)) * t
    p = (1.0 + 2.0 * a) * t
    q = (3.0 - 2.0 * a) * t
    return torch.stack((s, p, q))


@functools.lru_cache(maxsize=16)
def _polymax_norm_constant(dim: int) -> float:
    """c: mean ‖∇ max_A (x − ½)ᵀA(x − ½)‖ over the fixed, seeded sample (cached per ``dim``)."""
    gen = torch.Generator().manual_seed(POLYMAX_NORM_SEED)
    x = torch.rand(POLYMAX_NORM_POINTS, dim, generator=gen, dtype=torch.float64)
    return float(_polymax_raw_grad(polymax_matrices(dim), x).norm(dim=-1).mean())


def _polymax_raw_grad(matrices: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∇ max_A (x − ½)ᵀA(x − ½) = 2 A*(x − ½), A* the first maximiser: ``(..., d)``."""
    u = x - 0.5
    au = torch.einsum("kij,...j->k...i", matrices.to(x.dtype), u)  # (3, ..., d)
    best = (au * u).sum(-1).argmax(dim=0)  # (...)
    chosen = torch.gather(au, 0, best.unsqueeze(0).unsqueeze(-1).expand(1, *au.shape[1:]))
    return 2.0 * chosen.squeeze(0)


@register("polymax")
class PolyMax(GradientField):
    """F(x) = (1/c) max_{A ∈ {S, P, Q}} (x − ½)ᵀ A (x − ½) on [0, 1]^d: piecewise quadratic.

    F is convex (a max of convex quadratics) for every d ≥ 2 except d = 4, where S is indefinite
    (see :func:`polymax_matrices`); it is non-smooth where the maximiser switches.

    ∇F = (2/c) A*(x − ½) with A* the maximising matrix (the first one on ties). ``c`` (attribute
    ``norm_constant``) is the mean of ‖∇ max_A (x − ½)ᵀA(x − ½)‖ over ``POLYMAX_NORM_POINTS`` points
    drawn by ``torch.rand`` (float64) from a generator seeded with ``POLYMAX_NORM_SEED``, so it is the
    same number on every run and the normalised field has mean norm ≈ 1.
    """

    defaults: ClassVar[dict[str, Any]] = {"dim": 32}

    def __init__(self, dim: int = 32) -> None:
        self.matrices = polymax_matrices(dim)  # validates dim
        self.dim = int(dim)
        self.low = torch.zeros(self.dim, dtype=torch.float64)
        self.high = torch.ones(self.dim, dtype=torch.float64)
        self.norm_constant = _polymax_norm_constant(self.dim)
        self.params = {"dim": self.dim}

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        u = x - 0.5
        au = torch.einsum("kij,...j->k...i", self.matrices.to(x.dtype), u)
        return (au * u).sum(-1).amax(dim=0) / self.norm_constant

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return _polymax_raw_grad(self.matrices, x) / self.norm_constant
