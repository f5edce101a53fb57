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

For small ``d`` (:data:`hamgrad.models.tied.SKINNY_DIM`), :func:`skinny_softmax_field` is used
instead: it never forms ``v`` and gets ``⟨σ±, g⟩`` from the small per-module products
``W_kᵀ σ±_k``, saving several passes over the ``(N, K·h)`` arrays.
"""

from __future__ import annotations

import weakref

import torch

from hamgrad.models.tied import differentiate_reference
from hamgrad.models.workspace import saved_pool, scratch


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
        _plus_minus(u3, plus, minus)
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


class _SkinnySoftmaxField(torch.autograd.Function):
    """``f = c + Σ_k W_kᵀ (A_k σ⁺_k − B_k σ⁻_k)`` for small ``d``, without forming ``v``.

    The output is assembled from the per-module products ``E±_k = W_kᵀ σ±_k`` (``(K, d, N)``),
    which also give ``⟨σ±_k, g_k⟩ = g_fᵀ E±_k`` in the backward without another pass over the
    ``(N, K·h)`` arrays (``g = g_f Wᵀ``). Fewer full-size passes than the generic kernel; worth
    it when ``d`` is small (the ``E±`` products cost ``2 N·K·h·d``).
    """

    @staticmethod
    def forward(ctx, recording, x, weight, bias, A, B, in_scale, in_bias):
        n, d = x.shape
        k = A.shape[0]
        hk = weight.shape[0]
        h = hk // k
        keep = recording and any(ctx.needs_input_grad)
        if keep:
            block = saved_pool.acquire(2, (n, hk), x.dtype, x.device)
            weakref.finalize(ctx, saved_pool.release, block)
        else:
            block = scratch("skinny-softmax/fwd", 2, (n, hk), x.dtype, x.device)
        u = scratch("skinny-softmax/u", 1, (n, hk), x.dtype, x.device)[0]
        weight_hat = weight * in_scale[:, None]
        torch.addmm(in_bias, x, weight_hat.t(), out=u)
        _plus_minus(u.view(n, k, h), block[0].view(n, k, h), block[1].view(n, k, h))
        w3t = weight.view(k, h, d).transpose(1, 2)  # (K, d, h)
        e_plus = torch.bmm(w3t, block[0].view(n, k, h).permute(1, 2, 0))  # (K, d, N)
        e_minus = torch.bmm(w3t, block[1].view(n, k, h).permute(1, 2, 0))
        f_t = (e_plus * A[:, None, None]).sum(0) - (e_minus * B[:, None, None]).sum(0)
        f = f_t.add_(bias[:, None]).t()
        if keep:
            ctx.block, ctx.e_plus, ctx.e_minus = block, e_plus, e_minus
        ctx.save_for_backward(x, weight, bias, A, B, in_scale, in_bias)
        return f

    @staticmethod
    def backward(ctx, g_f):
        x, weight, bias, A, B, in_scale, in_bias = ctx.saved_tensors
        needs = ctx.needs_input_grad[1:]
        if torch.is_grad_enabled():  # create_graph=True: differentiate the reference
            inputs = (x, weight, bias, A, B, in_scale, in_bias)
            return (None, *differentiate_reference(skinny_softmax_reference, inputs, needs, g_f))

        need_x, need_w, need_c, need_a, need_b, need_r, need_in = needs
        n, d = x.shape
        k = A.shape[0]
        hk = weight.shape[0]
        h = hk // k
        plus, minus = ctx.block[0], ctx.block[1]
        gft = g_f.t()
        r_plus = (ctx.e_plus * gft[None]).sum(1)  # (K, N): ⟨σ⁺_k, g_k⟩
        r_minus = (ctx.e_minus * gft[None]).sum(1)
        grads = [None] * 7
        if need_c:
            grads[2] = g_f.sum(0)
        if need_a:
            grads[3] = r_plus.sum(1)
        if need_b:
            grads[4] = -r_minus.sum(1)
        if not (need_x or need_w or need_r or need_in):
            return (None, *grads)
        work = scratch("skinny-softmax/bwd", 2, (n, hk), x.dtype, x.device)
        g = torch.mm(g_f, weight.t(), out=work[0]).view(n, k, h)
        gp = torch.sub(g, r_plus.t()[:, :, None], out=work[1].view(n, k, h))
        gp.mul_(plus.view(n, k, h)).mul_(A[:, None])
        g.sub_(r_minus.t()[:, :, None]).mul_(minus.view(n, k, h))
        g_u = gp.addcmul_(g, B[:, None]).view(n, hk)
        if need_x:
            grads[0] = torch.mm(g_u, weight * in_scale[:, None])
        if need_in:
            grads[6] = g_u.sum(0)
        if need_w or need_r:
            m_t = torch.mm(x.t(), g_u)  # (d, K·h) = (g_uᵀ x)ᵀ
            if need_r:
                grads[5] = (m_t * weight.t()).sum(0)
            if need_w:
                a_row = A.repeat_interleave(h)
                b_row = B.repeat_interleave(h)
                dw_t = torch.mm(gft, plus).mul_(a_row)
                dw_t.addcmul_(torch.mm(gft, minus), b_row, value=-1.0)
                grads[1] = dw_t.addcmul_(m_t, in_scale).t()
        return (None, *grads)


def _plus_minus(u3, plus, minus):
    """σ⁺ = softmax(u) and σ⁻ = softmax(−u) over the last axis into ``plus`` and ``minus``."""
    _softmax_into(u3, plus)
    torch.reciprocal(plus, out=minus)
    norm = minus.sum(-1, keepdim=True)
    if norm.numel() and float(norm.max()) <= _reciprocal_limit(u3.dtype):
        minus.div_(norm)
    else:
        _softmax_into(torch.neg(u3, out=minus), minus)


def skinny_softmax_reference(x, weight, bias, A, B, in_scale, in_bias):
    """The same map as :func:`skinny_softmax_field` in plain differentiable ops."""
    u = torch.addmm(in_bias, x, (weight * in_scale[:, None]).t())
    return torch.addmm(bias, softmax_pair_reference(u, A, B), weight)


def skinny_softmax_field(x, weight, bias, A, B, in_scale, in_bias) -> torch.Tensor:
    """Fused softmax-family GradNet-M field for small ``d`` (see :class:`_SkinnySoftmaxField`).

    ``x`` ``(N, d)``, ``weight`` ``(K·h, d)`` (stacked modules), ``bias`` ``(d,)``, ``A, B``
    ``(K,)``, ``in_scale``/``in_bias`` ``(K·h,)``. First and higher derivatives supported.
    """
    return _SkinnySoftmaxField.apply(
        torch.is_grad_enabled(), x, weight, bias, A, B, in_scale, in_bias
    )
