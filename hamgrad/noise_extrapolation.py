"""Learned Hamiltonians corrected for noise in the training states by extrapolation (SIMEX).

Derivative matching on noisy states ``x̃ = x + σε`` with exact targets ``ẋ(x)`` learns
``E[ẋ(x) | x̃]``, not ``ẋ``: a field attenuated where the data are sparse (near the centre and the
edge of a ring of orbits), so the learned flow turns too slowly and its rollouts lose phase. To
first order the bias grows linearly with the noise variance. Simulation–extrapolation (Cook and
Stefanski, 1994) fits a second model on states with extra noise of the same std (total variance
2σ²) and extrapolates the two fits linearly in variance back to zero:

    H = 2·H_σ − H_{σ√2},      ∇H = 2·∇H_σ − ∇H_{σ√2}

A fixed linear combination of gradient fields is the gradient of the same combination of their
potentials, so the result is conservative (and separable when both parts are), and every
integrator takes it. It is not monotone in general (the difference of two monotone fields).
"""

from __future__ import annotations

import torch
from torch import nn

from hamgrad.hamiltonian import LearnedHamiltonianBase
from hamgrad.validation import check_positive_float


class NoiseExtrapolatedHamiltonian(LearnedHamiltonianBase):
    """``H = 2·fit − noisier``: ``fit`` trained on the data, ``noisier`` on the data plus noise.

    ``fit`` and ``noisier`` are learned Hamiltonians of the same structure and dimension
    (:class:`~hamgrad.hamiltonian.JointHamiltonian` or
    :class:`~hamgrad.hamiltonian.SeparableHamiltonian`); ``noise_std`` (> 0, state units) is the
    std of the noise in the data's states, which is also the std added for ``noisier``. Shapes
    follow the parts: ``grad``/``vector_field`` ``(..., 2n)``, ``energy`` ``(...)``, and
    ``grad_q``/``grad_p`` ``(..., n)`` when separable.
    """

    def __init__(self, fit: nn.Module, noisier: nn.Module, noise_std: float):
        super().__init__()
        for what, part in (("fit", fit), ("noisier", noisier)):
            if not getattr(part, "conservative", False) or not hasattr(part, "energy"):
                raise ValueError(
                    f"noise extrapolation needs learned Hamiltonians; {what} is a "
                    f"{type(part).__name__} (an unconstrained vector field has no energy to combine)"
                )
        if (fit.dim, fit.separable) != (noisier.dim, noisier.separable):
            raise ValueError(
                "fit and noisier must have the same dimension and structure, got "
                f"dim {fit.dim} / {noisier.dim}, separable {fit.separable} / {noisier.separable}"
            )
        self.fit = fit
        self.noisier = noisier
        self.noise_std = check_positive_float("noise_std", noise_std)
        self.dim = fit.dim
        self.dof = fit.dof
        self.separable = bool(fit.separable)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇H(x) = 2·∇H_fit(x) − ∇H_noisier(x), shape ``(..., 2n)``."""
        return 2.0 * self.fit.grad(x) - self.noisier.grad(x)

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        """∂H/∂q (separable parts only), shape ``(..., n)``."""
        self._need_separable("grad_q")
        return 2.0 * self.fit.grad_q(q) - self.noisier.grad_q(q)

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        """∂H/∂p (separable parts only), shape ``(..., n)``."""
        self._need_separable("grad_p")
        return 2.0 * self.fit.grad_p(p) - self.noisier.grad_p(p)

    def _need_separable(self, what: str) -> None:
        if not self.separable:
            raise TypeError(f"{what} needs separable parts (H = T(p) + V(q)); these are joint")

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x) = 2·H_fit(x) − H_noisier(x), shape ``(...)``."""
        return 2.0 * self.fit.energy(x) - self.noisier.energy(x)

    def extra_repr(self) -> str:
        return f"noise_std={self.noise_std:g}"
