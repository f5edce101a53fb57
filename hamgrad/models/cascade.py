"""Cascaded gradient networks: GradNet-C and mGradNet-C (``reference/gradnets.md``).

One weight matrix ``W ∈ R^{h×d}`` shared by all ``L`` layers; ``x`` re-enters at every layer::

    z_1 = β̃_1 ⊙ (W x + b_1)
    z_ℓ = β̃_ℓ ⊙ (W x + b_ℓ) + α̃_{ℓ−1} ⊙ σ_{ℓ−1}(z_{ℓ−1})      ℓ = 2..L
    f(x) = Wᵀ (α̃_L ⊙ σ_L(z_L)) + c

mGradNet-C: ``β̃ = sp(β)``, ``α̃ = sp(α)`` and monotone activations (convex potential).
GradNet-C: ``β̃ = β``, ``α̃ = α`` of any sign and the general activations. Only elementwise
(tanh-family) activations are allowed. The Jacobian is ``Wᵀ D W`` with ``D`` diagonal.

Parameters: ``h·d`` (W) + ``L·h`` (b) + ``d`` (c) + ``2L·h`` (α, β) + the activations'
(``2L·h`` for wtanh, none for tanh).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hamgrad.models.activations import (
    ELEMENTWISE_NAMES,
    GROUP_NAMES,
    ElementwiseActivation,
    activation_param_count,
    make_activation,
)
from hamgrad.models.base import GradientModel, like
from hamgrad.models.cascade_kernel import cascade_core_reference
from hamgrad.models.cascade_native import core_for, skinny_available, skinny_cascade_field
from hamgrad.models.quadrature import ridge_integral_tabulated
from hamgrad.models.tied import SKINNY_DIM, check_fused, tied_field, use_fused
from hamgrad.validation import check_choice, check_positive_int


def _check_cascade_activation(activation: object) -> str:
    if not isinstance(activation, str):
        raise TypeError(
            f"activation must be a string, got {activation!r} ({type(activation).__name__})"
        )
    if activation in GROUP_NAMES:
        raise ValueError(
            f"activation {activation!r} is a group activation and is not allowed in the cascade "
            f"(GradNet-C): it couples the hidden units and breaks the symmetry of the Jacobian; "
            f"choose one of: {', '.join(ELEMENTWISE_NAMES)}"
        )
    return check_choice("activation", activation, ELEMENTWISE_NAMES)


class CascadeGradNet(GradientModel):
    """GradNet-C (``monotone=False``) or mGradNet-C (``monotone=True``).

    Args:
        dim: input/output size d.
        width: hidden units h.
        layers: number of cascade layers L (default 4).
        activation: ``"wtanh"`` (default) or ``"tanh"``, used in every layer.
        monotone: build the monotone network (softplus scalings, monotone activations).
        fused: ``True`` evaluates with the fused kernel (:func:`hamgrad.models.tied.tied_field`
            with :class:`hamgrad.models.cascade_kernel.CascadeCore`, hand-written backward);
            ``False`` runs the published equations literally in eager torch (same values to
            round-off, slower for all but tiny batches); ``"auto"`` (default) picks the fused
            kernel from :data:`hamgrad.models.tied.AUTO_MIN_ACTIVATIONS` activations up.
    """

    def __init__(
        self,
        dim: int,
        width: int,
        *,
        layers: int = 4,
        activation: str = "wtanh",
        monotone: bool = True,
        fused: bool | str = "auto",
    ) -> None:
        dim = check_positive_int("dim", dim)
        width = check_positive_int("width", width)
        layers = check_positive_int("layers", layers)
        activation = _check_cascade_activation(activation)
        super().__init__(dim)
        self.width = width
        self.layers = layers
        self.activation = activation
        self.monotone = bool(monotone)
        self.name = "mgradnet-c" if self.monotone else "gradnet-c"
        self.fused = check_fused(fused)

        self.weight = nn.Parameter(torch.empty(width, dim))
        self.bias = nn.Parameter(torch.empty(layers, width))
        self.beta = nn.Parameter(torch.empty(layers, width))
        self.alpha = nn.Parameter(torch.empty(layers, width))
        self.out_bias = nn.Parameter(torch.empty(dim))
        self.acts = nn.ModuleList(
            make_activation(activation, width, monotone=self.monotone) for _ in range(layers)
        )
        self.reset_parameters()

    @staticmethod
    def param_count(dim: int, width: int, *, layers: int = 4, activation: str = "wtanh") -> int:
        """Number of parameters of the network built with these arguments."""
        _check_cascade_activation(activation)
        act = activation_param_count(activation, width)
        return width * dim + layers * width + dim + 2 * layers * width + layers * act

    def reset_parameters(self) -> None:
        """The authors' initialisation (``reference/gradnets.md``)."""
        rd, rh = 1.0 / math.sqrt(self.dim), 1.0 / math.sqrt(self.width)
        with torch.no_grad():
            nn.init.uniform_(self.weight, -rd, rd)
            nn.init.uniform_(self.bias[0], -rd, rd)
            nn.init.uniform_(self.bias[1:], -rh, rh)
            nn.init.uniform_(self.out_bias, -rh, rh)
            lo, hi = (0.0, 1.0) if self.monotone else (-0.5, 0.5)
            nn.init.uniform_(self.alpha, lo, hi)
            nn.init.uniform_(self.beta, lo, hi)

    # -- coefficients -------------------------------------------------------------------------
    def _scalings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta, alpha = like(self.beta, x), like(self.alpha, x)
        if self.monotone:
            return F.softplus(beta), F.softplus(alpha)
        return beta, alpha

    def core_coefficients(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(β̃, β̃ ⊙ b, α̃ ⊙ p, α̃ ⊙ q)``, each ``(L, h)`` in ``x``'s dtype (see cascade_kernel)."""
        beta_t, alpha_t = self._scalings(x)
        p, q = type(self.acts[0]).stacked_coefficients(self.acts, x.dtype, x.device)
        return beta_t, beta_t * like(self.bias, x), alpha_t * p, alpha_t * q

    def profile_gain(self) -> torch.Tensor:
        """``(h,)`` bound on ``|dz_ℓ/ds|`` over the layers, per unit (sets quadrature panels)."""
        with torch.no_grad():
            beta_t, cb, P, Q = self.core_coefficients(self.weight)
            lip = P.abs() + Q.abs()  # |σ'| ≤ |p| + |q| for σ = p tanh + q z
            g = beta_t[0].abs()
            best = g
            for layer in range(1, self.layers):
                g = beta_t[layer].abs() + lip[layer - 1] * g
                best = torch.maximum(best, g)
            return best

    # -- evaluation ---------------------------------------------------------------------------
    def profile(self, s: torch.Tensor) -> torch.Tensor:
        """The ridge profiles ``φ(s) = α̃_L ⊙ σ_L(z_L(s))``: ``(N, h) -> (N, h)``, literal form."""
        beta_t, alpha_t = self._scalings(s)
        bias = like(self.bias, s)
        z = beta_t[0] * (s + bias[0])
        for layer in range(1, self.layers):
            act: ElementwiseActivation = self.acts[layer - 1]
            z = beta_t[layer] * (s + bias[layer]) + alpha_t[layer - 1] * act(z)
        return alpha_t[-1] * self.acts[-1](z)

    def _field(self, x: torch.Tensor) -> torch.Tensor:
        weight, out_bias = like(self.weight, x), like(self.out_bias, x)
        if use_fused(self.fused, x.shape[0] * self.width):
            if self.dim < SKINNY_DIM and skinny_available(x):
                return skinny_cascade_field(x, weight, out_bias, *self.core_coefficients(x))
            return tied_field(core_for(x), x, weight, out_bias, *self.core_coefficients(x))
        return torch.addmm(out_bias, self.profile(x @ weight.T), weight)

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        weight = like(self.weight, x)
        s = x @ weight.T
        beta_t, cb, P, Q = self.core_coefficients(x)

        def prof(t: torch.Tensor, units: torch.Tensor | None) -> torch.Tensor:
            if units is None:  # (M, h): column i is unit i
                return cascade_core_reference(t, beta_t, cb, P, Q)
            # (M,) abscissae of the units ``units``
            return cascade_core_reference(
                t, beta_t[:, units], cb[:, units], P[:, units], Q[:, units]
            )

        ridge = ridge_integral_tabulated(prof, s, like(self.profile_gain(), x))
        return ridge.sum(-1) + x @ like(self.out_bias, x)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, width={self.width}, layers={self.layers}, "
            f"activation={self.activation!r}, monotone={self.monotone}, fused={self.fused}"
        )


class GradNetC(CascadeGradNet):
    """GradNet-C: cascaded gradient network of a general (non-convex) sum of ridge functions."""

    def __init__(self, dim: int, width: int, **options) -> None:
        super().__init__(dim, width, monotone=False, **options)


class MGradNetC(CascadeGradNet):
    """mGradNet-C: cascaded monotone gradient network (convex sum of ridge functions)."""

    def __init__(self, dim: int, width: int, **options) -> None:
        super().__init__(dim, width, monotone=True, **options)


__all__ = ["CascadeGradNet", "GradNetC", "MGradNetC"]
