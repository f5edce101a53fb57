"""Learnable activations that are gradients of scalar potentials: σ = ∇ψ.

Two families (``reference/gradnets.md``):

* elementwise (**tanh family**): ``tanh`` and ``wtanh``. Every member is written as
  ``σ(z) = p ⊙ tanh(z) + q ⊙ z`` with per-unit coefficient vectors ``p, q ∈ R^h`` (see
  :meth:`ElementwiseActivation.coefficients`), so ``ψ(z) = Σ_i p_i log cosh z_i + q_i z_i² / 2`` and
  ``σ'(z) = p ⊙ (1 − tanh² z) + q``. Elementwise activations may be used anywhere.
* group (**softmax family**): ``softmax`` and ``wsoftmax``. Every member is
  ``σ(z) = A·softmax(z) − B·softmax(−z)`` with scalar coefficients ``A, B``, so
  ``ψ(z) = A·LSE(z) + B·LSE(−z)``. Group activations couple the units and are refused inside the
  cascade (GradNet-C), where they would break the symmetry of the Jacobian.

Each activation has a *monotone* form (σ' ≥ 0 / ψ convex: the coefficients pass through softplus)
and a *general* form (signed coefficients). ``tanh`` and ``softmax`` have no parameters and are
monotone in both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hamgrad.validation import check_choice, check_positive_int

ACTIVATION_NAMES: tuple[str, ...] = ("tanh", "wtanh", "softmax", "wsoftmax")
ELEMENTWISE_NAMES: tuple[str, ...] = ("tanh", "wtanh")
GROUP_NAMES: tuple[str, ...] = ("softmax", "wsoftmax")

_LOG2 = math.log(2.0)


def log_cosh(z: torch.Tensor) -> torch.Tensor:
    """``log cosh z`` elementwise, stable for large ``|z|`` (the antiderivative of tanh)."""
    a = z.abs()
    return a + torch.log1p(torch.exp(-2.0 * a)) - _LOG2


class Activation(nn.Module):
    """Base class: ``forward(z) = σ(z) = ∇ψ(z)`` on the last axis (the ``width`` hidden units)."""

    name: str = ""
    group: bool = False

    def __init__(self, width: int, *, monotone: bool = True) -> None:
        super().__init__()
        self.width = check_positive_int("width", width)
        self.monotone = bool(monotone)

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """ψ(z): ``(..., width) -> (...)``; its gradient is ``forward(z)``."""
        raise NotImplementedError

    @classmethod
    def stacked_coefficients(
        cls, acts, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The coefficients of several activations of this class, stacked on a new first axis.

        The same values as stacking each one's ``coefficients``, in fewer operations (a
        network's layers or modules call this once per evaluation).
        """
        pairs = [act.coefficients(dtype, device) for act in acts]
        return torch.stack([p for p, _ in pairs]), torch.stack([q for _, q in pairs])

    def extra_repr(self) -> str:
        return f"width={self.width}, monotone={self.monotone}"


def _cast(t: torch.Tensor, dtype: torch.dtype | None, device: torch.device | None) -> torch.Tensor:
    if dtype is not None and (t.dtype != dtype or t.device != device):
        return t.to(dtype=dtype, device=device)
    return t


class _WeightedPair:
    """Coefficients of the weighted activations: ``cls.map(a, b, monotone)`` of the parameters
    ``a, b`` (per unit for wtanh, scalars for wsoftmax)."""

    def coefficients(self, dtype=None, device=None):
        return self.map(_cast(self.a, dtype, device), _cast(self.b, dtype, device), self.monotone)

    @classmethod
    def stacked_coefficients(cls, acts, dtype=None, device=None):
        a = _cast(torch.stack([act.a for act in acts]), dtype, device)
        b = _cast(torch.stack([act.b for act in acts]), dtype, device)
        return cls.map(a, b, acts[0].monotone)


class ElementwiseActivation(Activation):
    """``σ(z) = p ⊙ tanh(z) + q ⊙ z`` with per-unit ``p, q`` given by :meth:`coefficients`."""

    group = False

    def coefficients(
        self, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-unit coefficient vectors ``(p, q)``, each of shape ``(width,)``."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        p, q = self.coefficients(z.dtype, z.device)
        return p * torch.tanh(z) + q * z

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        """σ'(z) elementwise, ``(..., width)``."""
        p, q = self.coefficients(z.dtype, z.device)
        t = torch.tanh(z)
        return p * (1.0 - t * t) + q

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        p, q = self.coefficients(z.dtype, z.device)
        return (p * log_cosh(z) + 0.5 * q * z * z).sum(-1)


class Tanh(ElementwiseActivation):
    """``tanh(z)``; ψ = log cosh. No parameters; monotone."""

    name = "tanh"

    def coefficients(self, dtype=None, device=None):
        one = torch.ones(self.width, dtype=dtype, device=device)
        return one, torch.zeros_like(one)

    @classmethod
    def stacked_coefficients(cls, acts, dtype=None, device=None):
        one = torch.ones((len(acts), acts[0].width), dtype=dtype, device=device)
        return one, torch.zeros_like(one)


class WTanh(_WeightedPair, ElementwiseActivation):
    """Weighted tanh with per-unit parameters ``a, b`` (initialised to ``1/width``).

    Monotone: ``sp(a) ⊙ tanh z + sp(b) ⊙ (z − tanh z)``; general: ``a ⊙ tanh z − b ⊙ (z − tanh z)``.
    """

    name = "wtanh"

    def __init__(self, width: int, *, monotone: bool = True) -> None:
        super().__init__(width, monotone=monotone)
        self.a = nn.Parameter(torch.full((self.width,), 1.0 / self.width))
        self.b = nn.Parameter(torch.full((self.width,), 1.0 / self.width))

    @staticmethod
    def map(a: torch.Tensor, b: torch.Tensor, monotone: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p, q)`` from the parameters ``a, b`` (any shape)."""
        if monotone:
            sa, sb = F.softplus(a), F.softplus(b)
            return sa - sb, sb
        return a + b, -b


class GroupActivation(Activation):
    """``σ(z) = A·softmax(z) − B·softmax(−z)`` over the last axis, scalar ``A, B``."""

    group = True

    def coefficients(
        self, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar coefficients ``(A, B)`` as 0-d tensors."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        A, B = self.coefficients(z.dtype, z.device)
        return A * torch.softmax(z, -1) - B * torch.softmax(-z, -1)

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        A, B = self.coefficients(z.dtype, z.device)
        return A * torch.logsumexp(z, -1) + B * torch.logsumexp(-z, -1)


class Softmax(GroupActivation):
    """``softmax(z)`` over the units; ψ = log-sum-exp. No parameters; monotone."""

    name = "softmax"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z, -1)

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(z, -1)

    def coefficients(self, dtype=None, device=None):
        return (
            torch.ones((), dtype=dtype, device=device),
            torch.zeros((), dtype=dtype, device=device),
        )

    @classmethod
    def stacked_coefficients(cls, acts, dtype=None, device=None):
        one = torch.ones(len(acts), dtype=dtype, device=device)
        return one, torch.zeros_like(one)


class WSoftmax(_WeightedPair, GroupActivation):
    """Weighted softmax/softmin with scalar parameters ``a, b`` (initialised to 0.5).

    Monotone: ``sp(a)·softmax(z) − sp(b)·softmin(z)``; general: ``a·softmax(z) − b·softmin(z)``,
    with ``softmin(z) = softmax(−z)``; ψ = ``A·LSE(z) + B·LSE(−z)``.
    """

    name = "wsoftmax"

    def __init__(self, width: int, *, monotone: bool = True) -> None:
        super().__init__(width, monotone=monotone)
        self.a = nn.Parameter(torch.tensor(0.5))
        self.b = nn.Parameter(torch.tensor(0.5))

    @staticmethod
    def map(a: torch.Tensor, b: torch.Tensor, monotone: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` from the parameters ``a, b`` (any shape)."""
        if monotone:
            return F.softplus(a), F.softplus(b)
        return a, b


_CLASSES: dict[str, type[Activation]] = {
    "tanh": Tanh,
    "wtanh": WTanh,
    "softmax": Softmax,
    "wsoftmax": WSoftmax,
}


def make_activation(name: str, width: int, *, monotone: bool = True) -> Activation:
    """Build the activation ``name`` (one of :data:`ACTIVATION_NAMES`) over ``width`` units."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string, got {name!r} ({type(name).__name__})")
    check_choice("activation", name, ACTIVATION_NAMES)
    return _CLASSES[name](width, monotone=monotone)


def activation_param_count(name: str, width: int) -> int:
    """Number of learnable parameters of activation ``name`` over ``width`` units."""
    check_choice("activation", name, ACTIVATION_NAMES)
    return {"tanh": 0, "wtanh": 2 * width, "softmax": 0, "wsoftmax": 2}[name]
