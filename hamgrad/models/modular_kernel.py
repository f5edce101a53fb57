"""The softmax-family activation of all modules at once, fused, with a hand-derived backward.

For pre-activations ``u`` of shape ``(N, K, h)`` (module k on axis 1) and per-module scalars
``A, B`` (``(K,)``, the module weight α̃_k already folded in)::

    v = A·softmax(u) − B·softmax(−u)          (softmax over the last axis)

With ``s = softmax(u)``, ``m = softmax(−u)`` and ``g = ∂ℓ/∂v`` the backward is

    ∂A_k = Σ_{n,i} g ⊙ s,   ∂B_k = −Σ_{n,i} g ⊙ m,
    ∂u   = A·s ⊙ (g − ⟨s, g⟩) + B·m ⊙ (g − ⟨m, g⟩)

(``diag(s) − s sᵀ`` is the Jacobian of softmax). Double backward (``create_graph=True``) recomputes
:func:`softmax_pair_reference` inside the backward.
"""

from __future__ import annotations

import torch


def softmax_pair_reference(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A·softmax(u) − B·softmax(−u)`` in plain differentiable ops; ``u`` ``(N, K, h)``."""
    return A[:, None] * torch.softmax(u, -1) - B[:, None] * torch.softmax(-u, -1)


class _SoftmaxPair(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, A, B):
        s = torch.softmax(u, -1)
        m = torch.softmax(torch.neg(u), -1)
        v = s * A[:, None]
        v.addcmul_(m, B[:, None], value=-1.0)
        ctx.save_for_backward(u, A, B, s, m)
        return v

    @staticmethod
    def backward(ctx, g):
        u, A, B, s, m = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():
            with torch.enable_grad():
                leaves = [t if t.requires_grad else t.detach().requires_grad_(True) for t in (u, A, B)]
                v = softmax_pair_reference(*leaves)
                chosen = [leaf for leaf, n in zip(leaves, needs, strict=True) if n]
                grads = iter(torch.autograd.grad(v, chosen, g, create_graph=True))
            return tuple(next(grads) if n else None for n in needs)
        gs = g * s
        r1 = gs.sum(-1, keepdim=True)  # ⟨s, g⟩, (N, K, 1)
        gm = g * m
        r2 = gm.sum(-1, keepdim=True)
        d_a = r1.sum((0, 2)) if needs[1] else None
        d_b = -r2.sum((0, 2)) if needs[2] else None
        d_u = None
        if needs[0]:
            gs.addcmul_(s, r1, value=-1.0).mul_(A[:, None])
            gm.addcmul_(m, r2, value=-1.0).mul_(B[:, None])
            d_u = gs.add_(gm)
        return d_u, d_a, d_b


def softmax_pair_core(u: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Fused ``A·softmax(u) − B·softmax(−u)``: ``u`` ``(N, K, h)``, ``A, B`` ``(K,)``."""
    return _SoftmaxPair.apply(u.contiguous(), A, B)
