"""The elementwise core of the cascade (GradNet-C), fused, with a hand-derived backward.

With ``s = W x`` (``(N, h)``) the cascade of ``reference/gradnets.md`` is, unit by unit,

    z_1 = β̃_1 ⊙ s + c_1
    z_ℓ = β̃_ℓ ⊙ s + c_ℓ + P_{ℓ−1} ⊙ tanh(z_{ℓ−1}) + Q_{ℓ−1} ⊙ z_{ℓ−1}     ℓ = 2..L
    v   = P_L ⊙ tanh(z_L) + Q_L ⊙ z_L

where ``c_ℓ = β̃_ℓ ⊙ b_ℓ`` and ``(P_ℓ, Q_ℓ) = α̃_ℓ ⊙ (p_ℓ, q_ℓ)`` fold the layer scalings into
the tanh-family activation ``σ_ℓ(z) = p_ℓ ⊙ tanh z + q_ℓ ⊙ z``. The network output is
``f = Wᵀ v + c``. :class:`CascadeCore` evaluates ``v`` saving one pair of ``(N, h)`` arrays per
layer, with a backward written by hand (gradients for ``s`` and all four coefficient arrays);
:func:`hamgrad.models.tied.tied_field` wraps it together with the products with ``W``. This
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


def _prepare(beta, cb, P):
    """Per-layer constants of the ``y = 2z`` form: ``(2β̃, 2(c_ℓ − P_{ℓ−1}), 4P)``."""
    const = 2.0 * cb
    if beta.shape[0] > 1:
        const[1:] -= 2.0 * P[:-1]
    return 2.0 * beta, const, 4.0 * P


def _layer(s, beta2, const, p4, Q, layer, y_prev, sg_prev, y, sg):
    """``y_ℓ`` and ``sg_ℓ = sigmoid(y_ℓ)`` into the buffers ``y`` and ``sg``."""
    torch.addcmul(const[layer], s, beta2[layer], out=y)
    if layer > 0:
        y.addcmul_(sg_prev, p4[layer - 1])
        y.addcmul_(y_prev, Q[layer - 1])
    torch.sigmoid(y, out=sg)


def _output(P, Q, y, sg, out):
    """``v = 2P_L sg_L + (Q_L/2) y_L − P_L`` into ``out``."""
    torch.addcmul(-P[-1], sg, 2.0 * P[-1], out=out)
    out.addcmul_(y, 0.5 * Q[-1])
    return out


class CascadeCore:
    """The cascade core for :func:`hamgrad.models.tied.tied_field`; ``theta = (β̃, c, P, Q)``.

    The forward pass works in ``y = 2z`` with ``tanh z = 2·sigmoid(y) − 1`` (sigmoid is several
    times cheaper than tanh on CPU)::

        y_ℓ = 2β̃_ℓ s + 2(c_ℓ − P_{ℓ−1}) + 4P_{ℓ−1} sg_{ℓ−1} + Q_{ℓ−1} y_{ℓ−1},   sg_ℓ = sigmoid(y_ℓ)
        v   = 2P_L sg_L + (Q_L/2) y_L − P_L

    It keeps ``(y_1..y_L, sg_1..sg_L, v)``. The backward uses ``1 − tanh² z = 4 sg (1 − sg)``,
    ``z = y/2`` and ``Σ_n G tanh z = 2 Σ_n G sg − Σ_n G`` (reusing the bias-gradient sum).
    """

    tag = "cascade"
    reference = staticmethod(cascade_core_reference)

    @staticmethod
    def n_keep(theta) -> int:
        return 2 * theta[0].shape[0] + 1

    @staticmethod
    def n_roll(theta) -> int:
        return 5

    @staticmethod
    def n_work(theta) -> int:
        return 2 * theta[0].shape[0]

    @staticmethod
    def forward(s, theta, bufs, keep):
        beta, cb, P, Q = theta
        n_layers = beta.shape[0]
        beta2, const, p4 = _prepare(beta, cb, P)
        y_prev = sg_prev = None
        for layer in range(n_layers):
            if keep:
                y, sg = bufs[layer], bufs[n_layers + layer]
            else:
                y, sg = bufs[2 * (layer % 2)], bufs[2 * (layer % 2) + 1]
            _layer(s, beta2, const, p4, Q, layer, y_prev, sg_prev, y, sg)
            y_prev, sg_prev = y, sg
        return _output(P, Q, y_prev, sg_prev, bufs[2 * n_layers if keep else 4])

    @staticmethod
    def backward(s, theta, kept, work, needs, x=None, weight=None, need_s=True):
        """``work`` = ``[T_1..T_L | G_1..G_L | G_{L+1} = g_v]`` with ``G_ℓ = ∂ℓ/∂z_ℓ``.

        The recursion ``G_ℓ = G_{ℓ+1} ⊙ (Q_ℓ + 4P_ℓ sg_ℓ(1 − sg_ℓ))`` runs layer by layer; all
        parameter reductions then run as a few operations on the stacked layers. Given ``x`` and
        ``W`` with ``s = x Wᵀ`` (small ``d``), ``∂β̃_ℓ = Σ_n G_ℓ ⊙ s`` and ``M = g_sᵀx = Σ_ℓ β̃_ℓ ⊙ (G_ℓᵀ x)`` come from
        the ``L`` products ``xᵀ G_ℓ`` (``∂β̃_ℓ,i = Σ_j W_ij (G_ℓᵀ x)_ij``), which is cheaper than
        the elementwise reductions when ``d`` is small.
        """
        beta, cb, P, Q = theta
        n_layers = beta.shape[0]
        ys, sgs = kept[:n_layers], kept[n_layers : 2 * n_layers]
        temp = work[:n_layers]
        g_all = work[n_layers:]  # G_1 .. G_{L+1}
        p4 = 4.0 * P
        for layer in range(n_layers - 1, -1, -1):
            sg, t = sgs[layer], temp[layer]
            torch.addcmul(sg, sg, sg, value=-1.0, out=t)
            torch.addcmul(Q[layer], t, p4[layer], out=t)
            torch.mul(t, g_all[layer + 1], out=g_all[layer])
        g_layers, g_next = g_all[:n_layers], g_all[1:]
        need_beta, need_cb, need_p, need_q = needs
        sums = g_all.sum(1) if (need_cb or need_p) else None  # (L+1, h)
        d_beta = d_p = d_q = m = g_s = None
        d_cb = sums[:n_layers] if need_cb else None
        if need_p:
            d_p = torch.mul(g_next, sgs, out=temp).sum(1).mul_(2.0).sub_(sums[1:])
        if need_q:
            d_q = torch.mul(g_next, ys, out=temp).sum(1).mul_(0.5)
        if x is not None:
            m_layers = torch.matmul(x.t(), g_layers)  # (L, d, h): (G_ℓᵀ x)ᵀ
            if need_beta:
                d_beta = (m_layers * weight.t()).sum(1)
            m = (m_layers * beta[:, None, :]).sum(0).t()
        elif need_beta:
            d_beta = torch.mul(g_layers, s, out=temp).sum(1)
        if x is None or need_s:
            g_s = torch.mul(g_layers, beta[:, None, :], out=temp).sum(0)
        return g_s, m, d_beta, d_cb, d_p, d_q
