"""The elementwise core of the cascade (GradNet-C), fused, with a hand-derived backward.

With ``s = W x`` (``(N, h)``) the cascade of ``reference/gradnets.md`` is, unit by unit,

    z_1 = β̃_1 ⊙ s + c_1
    z_ℓ = β̃_ℓ ⊙ s + c_ℓ + P_{ℓ−1} ⊙ tanh(z_{ℓ−1}) + Q_{ℓ−1} ⊙ z_{ℓ−1}     ℓ = 2..L
    v   = P_L ⊙ tanh(z_L) + Q_L ⊙ z_L

where ``c_ℓ = β̃_ℓ ⊙ b_ℓ`` and ``(P_ℓ, Q_ℓ) = α̃_ℓ ⊙ (p_ℓ, q_ℓ)`` fold the layer scalings into
the tanh-family activation ``σ_ℓ(z) = p_ℓ ⊙ tanh z + q_ℓ ⊙ z``. The network output is
``f = Wᵀ v + c``. :func:`cascade_core` evaluates ``v`` with one saved ``(z_ℓ, tanh z_ℓ)`` pair per
layer and a backward written by hand (gradients for ``s`` and all four coefficient arrays), which
avoids the autograd bookkeeping and most temporaries of the eager formulation.

Back-propagation, with ``g_{L+1} = ∂ℓ/∂v`` and ``d_ℓ = P_ℓ ⊙ (1 − tanh² z_ℓ) + Q_ℓ``:

    ∂P_ℓ = Σ_n g_{ℓ+1} ⊙ tanh z_ℓ,   ∂Q_ℓ = Σ_n g_{ℓ+1} ⊙ z_ℓ,   g_ℓ = g_{ℓ+1} ⊙ d_ℓ
    ∂β̃_ℓ = Σ_n g_ℓ ⊙ s,             ∂c_ℓ = Σ_n g_ℓ,               ∂s = Σ_ℓ β̃_ℓ ⊙ g_ℓ

Double backward (``create_graph=True``) is supported by recomputing the core with the
differentiable reference :func:`cascade_core_reference` inside the backward.
"""

from __future__ import annotations

import torch


def cascade_core_reference(
    s: torch.Tensor, beta: torch.Tensor, cb: torch.Tensor, P: torch.Tensor, Q: torch.Tensor
) -> torch.Tensor:
    """The core in plain differentiable torch ops. ``s``: ``(N, h)``; coefficients ``(L, h)``."""
    z = beta[0] * s + cb[0]
    for layer in range(1, beta.shape[0]):
        z = beta[layer] * s + cb[layer] + P[layer - 1] * torch.tanh(z) + Q[layer - 1] * z
    return P[-1] * torch.tanh(z) + Q[-1] * z


def _forward_saving(s, beta, cb, P, Q):
    """Forward pass in the variable ``y = 2z`` with ``tanh z = 2·sigmoid(y) − 1``.

    Returns ``v`` and the stacks ``Y`` (``y_ℓ``) and ``S`` (``sigmoid(y_ℓ)``), each ``(L, N, h)``.
    Sigmoid is several times cheaper than tanh on CPU; in ``y`` the cascade reads
    ``y_ℓ = 2β̃_ℓ s + 2(c_ℓ − P_{ℓ−1}) + 4P_{ℓ−1} sg_{ℓ−1} + Q_{ℓ−1} y_{ℓ−1}`` and
    ``v = 2P_L sg_L + (Q_L/2) y_L − P_L``.
    """
    n_layers = beta.shape[0]
    ys = torch.empty((n_layers,) + s.shape, dtype=s.dtype, device=s.device)
    sgs = torch.empty_like(ys)
    beta2 = 2.0 * beta
    const = 2.0 * cb
    const[1:] -= 2.0 * P[:-1]
    p4 = 4.0 * P
    torch.addcmul(const[0], s, beta2[0], out=ys[0])
    torch.sigmoid(ys[0], out=sgs[0])
    for layer in range(1, n_layers):
        y = ys[layer]
        torch.addcmul(const[layer], s, beta2[layer], out=y)
        y.addcmul_(sgs[layer - 1], p4[layer - 1])
        y.addcmul_(ys[layer - 1], Q[layer - 1])
        torch.sigmoid(y, out=sgs[layer])
    v = torch.addcmul(-P[-1], sgs[-1], 2.0 * P[-1])
    v.addcmul_(ys[-1], 0.5 * Q[-1])
    return v, ys, sgs


def _backward(grad_v, s, beta, P, Q, ys, sgs, needs):
    """Hand-written backward; ``needs`` = which of (s, beta, cb, P, Q) need gradients.

    Works with ``G_ℓ = ∂ℓ/∂z_ℓ`` (``G_{L+1} = ∂ℓ/∂v``), ``t = 2sg − 1``, ``z = y/2`` and
    ``1 − t² = 4 sg (1 − sg)``; ``Σ_n G t = 2 Σ_n G sg − Σ_n G`` reuses the bias gradient sum.
    """
    n_layers = beta.shape[0]
    need_s, need_beta, need_cb, need_p, need_q = needs
    need_params = need_beta or need_cb or need_p or need_q
    # all G_ℓ in one buffer so the parameter reductions run as a few large ops at the end
    gs_all = torch.empty((n_layers + 1,) + s.shape, dtype=s.dtype, device=s.device)
    gs_all[n_layers].copy_(grad_v)
    p4 = 4.0 * P
    for layer in range(n_layers - 1, -1, -1):
        sg = sgs[layer]
        d = torch.addcmul(sg, sg, sg, value=-1.0)  # sg (1 − sg)
        torch.addcmul(Q[layer], d, p4[layer], out=d)  # P (1 − t²) + Q
        torch.mul(d, gs_all[layer + 1], out=gs_all[layer])
    g_layers = gs_all[:n_layers]  # G_1..G_L
    g_next = gs_all[1:]  # G_2..G_{L+1}
    d_s = d_beta = d_cb = d_p = d_q = None
    if need_s:
        d_s = (g_layers * beta[:, None, :]).sum(0)
    if need_params:
        sum_g = gs_all.sum(1)  # (L+1, h)
        if need_cb:
            d_cb = sum_g[:n_layers]
        if need_beta:
            d_beta = (g_layers * s).sum(1)
        if need_p:
            d_p = 2.0 * (g_next * sgs).sum(1) - sum_g[1:]
        if need_q:
            d_q = 0.5 * (g_next * ys).sum(1)
    return d_s, d_beta, d_cb, d_p, d_q


class _CascadeCore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, beta, cb, P, Q):
        v, ys, sgs = _forward_saving(s, beta, cb, P, Q)
        ctx.save_for_backward(s, beta, cb, P, Q, ys, sgs)
        return v

    @staticmethod
    def backward(ctx, grad_v):
        s, beta, cb, P, Q, ys, sgs = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():
            # create_graph=True: differentiate the reference so that the result is differentiable.
            inputs = (s, beta, cb, P, Q)
            with torch.enable_grad():
                leaves = [t if t.requires_grad else t.detach().requires_grad_(True) for t in inputs]
                v = cascade_core_reference(*leaves)
                chosen = [leaf for leaf, n in zip(leaves, needs, strict=True) if n]
                grads = torch.autograd.grad(v, chosen, grad_v, create_graph=True)
            it = iter(grads)
            return tuple(next(it) if n else None for n in needs)
        return _backward(grad_v, s, beta, P, Q, ys, sgs, needs)


def cascade_core(
    s: torch.Tensor, beta: torch.Tensor, cb: torch.Tensor, P: torch.Tensor, Q: torch.Tensor
) -> torch.Tensor:
    """Fused cascade core ``v(s)``: ``s`` ``(N, h)``, coefficients ``(L, h)`` -> ``(N, h)``.

    Same values as :func:`cascade_core_reference` (to round-off) with a hand-written backward.
    """
    return _CascadeCore.apply(s.contiguous(), beta, cb, P, Q)
