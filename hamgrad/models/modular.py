"""Modular gradient networks: GradNet-M and mGradNet-M (``reference/gradnets.md``).

``K`` modules, each with its own ``W_k ∈ R^{h×d}``, ``b_k ∈ R^h``, scalar inverse temperature
``β_k`` and activation ``σ_k = ∇ψ_k``; global scalar weights ``α_k`` and an output bias ``c``::

    module_k(x) = W_kᵀ σ_k(β̃_k (W_k x + b_k)),   β̃_k = sp(β_k)
    f(x)        = c + Σ_k α̃_k module_k(x)
    F(x)        = cᵀx + Σ_k (α̃_k / β̃_k) ψ_k(β̃_k (W_k x + b_k))       (closed-form potential)

mGradNet-M: ``α̃ = sp(α) ≥ 0`` and monotone activations; GradNet-M: ``α̃ = α`` of any sign and the
general activations. Softmax-family (group) and tanh-family (elementwise) activations both work.

Parameters: ``K(h·d + h + 1) + K + d`` plus the activations' (2 per module for wsoftmax).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hamgrad.models.activations import (
    ACTIVATION_NAMES,
    GroupActivation,
    activation_param_count,
    log_cosh,
    make_activation,
)
from hamgrad.models.base import GradientModel, like
from hamgrad.models.cascade_native import core_for, skinny_available, skinny_cascade_field
from hamgrad.models.modular_kernel import SoftmaxPairCore, skinny_softmax_field
from hamgrad.models.modular_native import available as native_available
from hamgrad.models.modular_native import native_softmax_modules_field
from hamgrad.models.tied import SKINNY_DIM, check_fused, tied_field, use_fused
from hamgrad.validation import check_choice, check_positive_int


def _check_activation(activation: object) -> str:
    if not isinstance(activation, str):
        raise TypeError(
            f"activation must be a string, got {activation!r} ({type(activation).__name__})"
        )
    return check_choice("activation", activation, ACTIVATION_NAMES)


class ModularGradNet(GradientModel):
    """GradNet-M (``monotone=False``) or mGradNet-M (``monotone=True``).

    Args:
        dim: input/output size d.
        width: hidden units h per module.
        modules: number of modules K (default 4).
        activation: ``"wsoftmax"`` (default), ``"softmax"``, ``"wtanh"`` or ``"tanh"``.
        monotone: build the monotone network.
        fused: ``True`` evaluates all modules at once with one stacked weight matrix in the
            fused kernel (:func:`hamgrad.models.tied.tied_field`, hand-written backward);
            ``False`` loops over the modules literally (same values to round-off, slower for all
            but tiny batches); ``"auto"`` (default) picks the fused kernel from
            :data:`hamgrad.models.tied.AUTO_MIN_ACTIVATIONS` activations up.
    """

    def __init__(
        self,
        dim: int,
        width: int,
        *,
        modules: int = 4,
        activation: str = "wsoftmax",
        monotone: bool = True,
        fused: bool | str = "auto",
    ) -> None:
        dim = check_positive_int("dim", dim)
        width = check_positive_int("width", width)
        n_modules = check_positive_int("modules", modules)
        activation = _check_activation(activation)
        super().__init__(dim)
        self.width = width
        self.n_modules = n_modules
        self.activation = activation
        self.monotone = bool(monotone)
        self.name = "mgradnet-m" if self.monotone else "gradnet-m"
        self.fused = check_fused(fused)

        self.weight = nn.Parameter(torch.empty(n_modules, width, dim))
        self.bias = nn.Parameter(torch.empty(n_modules, width))
        self.beta = nn.Parameter(torch.empty(n_modules))
        self.alpha = nn.Parameter(torch.empty(n_modules))
        self.out_bias = nn.Parameter(torch.empty(dim))
        self.acts = nn.ModuleList(
            make_activation(activation, width, monotone=self.monotone) for _ in range(n_modules)
        )
        self.reset_parameters()

    @staticmethod
    def param_count(dim: int, width: int, *, modules: int = 4, activation: str = "wsoftmax") -> int:
        """Number of parameters of the network built with these arguments."""
        _check_activation(activation)
        act = activation_param_count(activation, width)
        return modules * (width * dim + width + 1 + act) + modules + dim

    def reset_parameters(self) -> None:
        """The authors' initialisation (``reference/gradnets.md``)."""
        rd, rh = 1.0 / math.sqrt(self.dim), 1.0 / math.sqrt(self.width)
        with torch.no_grad():
            nn.init.uniform_(self.weight, -rd, rd)
            nn.init.uniform_(self.bias, -rd, rd)
            nn.init.uniform_(self.beta, 0.0, 1.0)
            if self.monotone:
                nn.init.uniform_(self.alpha, 0.0, 1.0)
            else:
                nn.init.normal_(self.alpha, 0.0, 1.0)
            nn.init.uniform_(self.out_bias, -rh, rh)

    @property
    def group(self) -> bool:
        """Whether the activation is a softmax-family (group) activation."""
        return isinstance(self.acts[0], GroupActivation)

    def _scalings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta_t = F.softplus(like(self.beta, x))
        alpha = like(self.alpha, x)
        return beta_t, (F.softplus(alpha) if self.monotone else alpha)

    def _pre_activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u_k = β̃_k (W_k x + b_k)`` for all modules, ``(N, K, h)``, and the weights ``(K·h, d)``."""
        k, h, d = self.weight.shape
        weight = like(self.weight, x).reshape(k * h, d)
        beta_t, _ = self._scalings(x)
        s = (x @ weight.T).reshape(-1, k, h)
        u = (s + like(self.bias, x)) * beta_t[:, None]
        return u, weight

    def _stacked_coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return type(self.acts[0]).stacked_coefficients(self.acts, x.dtype, x.device)

    def _field(self, x: torch.Tensor) -> torch.Tensor:
        if not use_fused(self.fused, x.shape[0] * self.width * self.n_modules):
            return self._field_literal(x)
        k, h, d = self.weight.shape
        if self.group and d < SKINNY_DIM and native_available(x):
            # one graph node from the raw parameters (see modular_native)
            return native_softmax_modules_field(
                self.monotone,
                x,
                *(like(p, x) for p in (self.weight, self.bias, self.beta, self.alpha)),
                like(self.out_bias, x),
                *(like(p, x) for module in self.acts for p in module.parameters()),
            )
        weight = like(self.weight, x).reshape(k * h, d)
        beta_t, alpha_t = self._scalings(x)
        cb = (beta_t[:, None] * like(self.bias, x)).reshape(k * h)
        c1, c2 = self._stacked_coefficients(x)
        out_bias = like(self.out_bias, x)
        if self.group and d < SKINNY_DIM:
            return skinny_softmax_field(
                x,
                weight,
                out_bias,
                alpha_t * c1,
                alpha_t * c2,
                beta_t[:, None].expand(k, h).reshape(k * h),
                cb,
            )
        if self.group:
            return tied_field(
                SoftmaxPairCore,
                x,
                weight,
                out_bias,
                alpha_t * c1,
                alpha_t * c2,
                in_scale=beta_t[:, None].expand(k, h).reshape(k * h),
                in_bias=cb,
            )
        # elementwise activations: a one-layer cascade over the K·h units
        a = alpha_t[:, None]
        theta = (
            beta_t[:, None].expand(k, h).reshape(1, k * h),
            cb.reshape(1, k * h),
            (a * c1).reshape(1, k * h),
            (a * c2).reshape(1, k * h),
        )
        if d < SKINNY_DIM and skinny_available(x):
            return skinny_cascade_field(x, weight, out_bias, *theta)
        return tied_field(core_for(x), x, weight, out_bias, *theta)

    def _field_literal(self, x: torch.Tensor) -> torch.Tensor:
        """The published equations, one module at a time."""
        beta_t, alpha_t = self._scalings(x)
        weight, bias = like(self.weight, x), like(self.bias, x)
        out = like(self.out_bias, x).expand(x.shape[0], self.dim)
        for k in range(self.n_modules):
            u = beta_t[k] * (x @ weight[k].T + bias[k])
            out = out + alpha_t[k] * (self.acts[k](u) @ weight[k])
        return out

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        u, _ = self._pre_activations(x)
        beta_t, alpha_t = self._scalings(x)
        c1, c2 = self._stacked_coefficients(x)
        if self.group:
            psi = c1 * torch.logsumexp(u, -1) + c2 * torch.logsumexp(-u, -1)  # (N, K)
        else:
            psi = (c1 * log_cosh(u) + 0.5 * c2 * u * u).sum(-1)
        return psi @ (alpha_t / beta_t) + x @ like(self.out_bias, x)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, width={self.width}, modules={self.n_modules}, "
            f"activation={self.activation!r}, monotone={self.monotone}, fused={self.fused}"
        )


class GradNetM(ModularGradNet):
    """GradNet-M: modular gradient network of a general smooth potential."""

    def __init__(self, dim: int, width: int, **options) -> None:
        super().__init__(dim, width, monotone=False, **options)


class MGradNetM(ModularGradNet):
    """mGradNet-M: modular monotone gradient network (convex potential)."""

    def __init__(self, dim: int, width: int, **options) -> None:
        super().__init__(dim, width, monotone=True, **options)
