"""The softmax-family module core of GradNet-M, fused, with a hand-derived backward.

All ``K`` modules are evaluated at once. :func:`hamgrad.models.tied.tied_field` supplies the
pre-activations ``u = x Ŵᵀ + a`` of the stacked modules (``Ŵ_k = β̃_k W_k``, ``a_k = β̃_k b_k``),
``(N, K·h)`` viewed as ``(N, K, h)``; with ``theta = (A, B)`` (``(K,)`` each, the module weight
α̃_k folded into the activation's coefficients) the core is::

    v = A_k softmax(u) − B_k softmax(−u)          (softmax over the h units of each module)

With ``σ⁺ = softmax(u)``, ``σ⁻ = softmax(−u)`` and ``g = ∂ℓ/∂v`` the backward is

    ∂A_k = Σ_{n,i} g ⊙ σ⁺,   ∂B_k = −Σ_{n,i} g ⊙ σ⁻,
    ∂u   = A σ⁺ ⊙ (g − ⟨σ⁺, g⟩) + B σ⁻ ⊙ (g − ⟨σ⁻, g⟩)

(``diag(σ) − σσᵀ`` is the Jacobian of softmax). ``σ⁻`` is obtained from ``σ⁺`` without a second
exponential: ``σ⁻_i = (1/σ⁺_i) / Σ_j 1/σ⁺_j`` exactly, used whenever no ``σ⁺`` entry is too small to
invert accurately (otherwise ``softmax(−u)`` is evaluated).
"""

from __future__ import annotations

import torch


def softmax_pair_reference(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The core in plain differentiable ops: ``(N, K·h) -> (N, K·h)``."""
    k = A.shape[0]
    u3 = u.reshape(u.shape[0], k, -1)
    v = A[:, None] * torch.softmax(u3, -1) - B[:, None] * torch.softmax(-u3, -1)
    return v.reshape(u.shape)


def _softmax_into(u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis written into ``out`` (which may be ``u`` itself)."""
    try:
        return torch.ops.aten._softmax.out(u, -1, False, out=out)
    except (RuntimeError, AttributeError):  # pragma: no cover - fallback for other builds
        return out.copy_(torch.softmax(u, -1))


def _reciprocal_limit(dtype: torch.dtype) -> float:
    """Largest allowed ``Σ_j 1/σ⁺_j``: every inverted entry stays far inside the normal range."""
    return float(torch.finfo(dtype).tiny) ** -0.75


class SoftmaxPairCore:
    """Core object for :func:`hamgrad.models.tied.tied_field`; keeps ``(σ⁺, σ⁻, v)``."""

    tag = "softmax-pair"
    reference = staticmethod(softmax_pair_reference)

    @staticmethod
    def n_keep(theta) -> int:
        return 3

    @staticmethod
    def n_roll(theta) -> int:
        return 3

    @staticmethod
    def n_work(theta) -> int:
        return 1

    @staticmethod
    def forward(u, theta, bufs, keep):
        A, B = theta
        shape = (u.shape[0], A.shape[0], u.shape[1] // A.shape[0])
        u3 = u.view(shape)
        plus, minus, v = (b.view(shape) for b in bufs[:3])
        _softmax_into(u3, plus)
        torch.reciprocal(plus, out=minus)
        norm = minus.sum(-1, keepdim=True)
        if norm.numel() and float(norm.max()) <= _reciprocal_limit(u.dtype):
            minus.div_(norm)
        else:
            _softmax_into(torch.neg(u3, out=minus), minus)
        torch.mul(plus, A[:, None], out=v)
        v.addcmul_(minus, B[:, None], value=-1.0)
        return v.view(u.shape)

    @staticmethod
    def backward(u, theta, kept, work, needs, x=None, weight=None, need_s=True):
        A, B = theta
        shape = (u.shape[0], A.shape[0], u.shape[1] // A.shape[0])
        plus, minus = (b.view(shape) for b in kept[:2])
        need_a, need_b = needs
        g = work[1].view(shape)  # g_v
        gp = torch.mul(g, plus, out=work[0].view(shape))
        r_plus = gp.sum(-1, keepdim=True)  # ⟨σ⁺, g⟩, (N, K, 1)
        gm = g.mul_(minus)
        r_minus = gm.sum(-1, keepdim=True)
        d_a = r_plus.sum((0, 2)) if need_a else None
        d_b = -r_minus.sum((0, 2)) if need_b else None
        # ∂u = A σ⁺ ⊙ (g − ⟨σ⁺, g⟩) + B σ⁻ ⊙ (g − ⟨σ⁻, g⟩)
        gp.addcmul_(plus, r_plus, value=-1.0).mul_(A[:, None])
        gm.addcmul_(minus, r_minus, value=-1.0)
        g_u = gp.addcmul_(gm, B[:, None])
        return g_u.view(u.shape), None, d_a, d_b
