"""Common base of every model: input checks, batch-shape handling, dtype/device following."""

from __future__ import annotations

import torch
from torch import nn

from hamgrad.validation import check_last_dim


def check_input(x: object, dim: int, name: str = "x") -> torch.Tensor:
    """Require a floating-point tensor whose last axis has length ``dim``; return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    check_last_dim(name, x, dim)
    return x


def like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``t`` with the dtype and device of ``x`` (a differentiable cast, a no-op when they agree)."""
    if t.dtype == x.dtype and t.device == x.device:
        return t
    return t.to(dtype=x.dtype, device=x.device)


class GradientModel(nn.Module):
    """A model of a vector field ``R^dim -> R^dim``.

    Subclasses implement ``_field(x)`` on a ``(N, dim)`` batch (and ``_potential(x) -> (N,)`` when
    ``conservative``). ``forward`` and ``potential`` accept any leading batch shape ``(..., dim)``;
    the output has the input's dtype and device (parameters are cast on the fly when they differ).

    Attributes: ``dim`` (input/output size), ``conservative`` (the output is the gradient of
    :meth:`potential`), ``monotone`` (the potential is convex: the Jacobian is symmetric PSD),
    ``name`` (the registry name).
    """

    name: str = ""
    conservative: bool = True
    monotone: bool = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The field: ``(..., dim) -> (..., dim)``."""
        check_input(x, self.dim)
        shape = x.shape
        out = self._field(x.reshape(-1, self.dim))
        return out.reshape(shape)

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        """The scalar potential ``F`` with ``∇F = forward``: ``(..., dim) -> (...)``."""
        if not self.conservative:
            raise NotImplementedError(
                f"model {self.name!r} is an unconstrained vector field and has no potential"
            )
        check_input(x, self.dim)
        shape = x.shape[:-1]
        return self._potential(x.reshape(-1, self.dim)).reshape(shape)

    def _field(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _potential(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
