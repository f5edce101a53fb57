"""The Hamiltonian protocol as the integrators see it: checks and the vector field ``J ∇H``."""

from __future__ import annotations

from typing import Any

import torch


def check_hamiltonian(h: Any, *, need_separable_parts: bool = False) -> int:
    """Check that ``h`` satisfies the Hamiltonian protocol; return its number of degrees of freedom.

    The protocol: ``dof`` (int), ``grad(x) -> (..., 2n)`` and, for separable ones,
    ``grad_q(q) -> (..., n)`` and ``grad_p(p) -> (..., n)``.
    """
    dof = getattr(h, "dof", None)
    if isinstance(dof, bool) or not isinstance(dof, int) or dof < 1:
        raise TypeError(
            f"h must satisfy the Hamiltonian protocol (dof: positive int, grad, separable); "
            f"got {type(h).__name__} with dof={dof!r}"
        )
    if not callable(getattr(h, "grad", None)):
        raise TypeError(f"h must have a grad(x) method (∇H); {type(h).__name__} has none")
    if need_separable_parts:
        missing = [m for m in ("grad_q", "grad_p") if not callable(getattr(h, m, None))]
        if missing:
            raise TypeError(
                f"h is marked separable but {type(h).__name__} lacks {', '.join(missing)}"
            )
    return dof


def vector_field(h: Any, x: torch.Tensor) -> torch.Tensor:
    """``J ∇H(x)`` = (∂H/∂p, −∂H/∂q): (..., 2n) -> (..., 2n)."""
    g = h.grad(x)
    n = g.shape[-1] // 2
    return torch.cat((g[..., n:], -g[..., :n]), dim=-1)


def has_trainable_tensors(h: Any) -> bool:
    """True when ``h`` holds tensors that require grad (an ``nn.Module``'s parameters, or tensor
    attributes), so that a rollout must record the graph even if ``x0`` does not require grad."""
    if isinstance(h, torch.nn.Module):
        if any(p.requires_grad for p in h.parameters()):
            return True
    for value in getattr(h, "__dict__", {}).values():
        if isinstance(value, torch.Tensor) and value.requires_grad:
            return True
    return False
