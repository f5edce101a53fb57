"""The softmax-family GradNet-M field for small ``d``, compiled from C (``modular_native.c``).

The same map as :func:`hamgrad.models.modular_kernel.skinny_softmax_field`,
``f = c + Σ_k W_kᵀ (A_k softmax(u_k) − B_k softmax(−u_k))`` with ``u = r ⊙ (W x) + a``, but
no ``(N, K·h)`` array is ever written: the products with ``W`` (``d`` small) run inside the
loops, one module at a time so that its accumulators stay in cache, and the backward pass
recomputes each row's softmax pair instead of storing it (one exponential per unit: ``σ⁻``
comes from the reciprocals of ``σ⁺``'s exponentials whenever that cannot overflow). Modules of at
most 16 units (the 2-D benchmarks' h = 7) run loops over blocks of 32 rows instead, which fill
the vector registers where a loop over 7 units cannot.

:func:`native_softmax_modules_field` takes the network's raw parameters and is one autograd node:
for small networks the torch operations that would otherwise map the parameters to the kernel's
coefficients, and their graph, cost more than the loops themselves.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from hamgrad.models import native
from hamgrad.models.activations import WSoftmax
from hamgrad.models.modular_kernel import skinny_softmax_reference
from hamgrad.models.tied import differentiate_reference

#: Largest ``max(u) − min(u)`` of a module for which ``σ⁻`` is taken from ``1/exp(u − max u)``:
#: the reciprocals stay below ``e^limit``, far inside the dtype's range.
SPREAD_LIMIT = {torch.float32: 60.0, torch.float64: 600.0}


def _declare(lib) -> None:
    P, I = native.POINTER, native.INDEX
    for dtype, suffix in native.SUFFIX.items():
        real = native.REAL[dtype]
        getattr(lib, f"softmax_skinny_forward_{suffix}").argtypes = [P] * 9 + [real] + [I] * 5
        getattr(lib, f"softmax_skinny_backward_{suffix}").argtypes = [P] * 10 + [real] + [I] * 5
    lib.softmax_skinny_rows.restype = I


def _library():
    return native.load("modular_native", _declare)


def _forward_call(x, wt, bias, A, B, in_scale, in_bias) -> torch.Tensor:
    """``f`` through the compiled forward loops; ``wt`` is ``Wᵀ`` ``(d, K·h)``, contiguous."""
    n, d = x.shape
    k = A.shape[0]
    hk = wt.shape[1]
    dtype = x.dtype
    f = torch.empty((n, d), dtype=dtype)
    args = [*map(native.detached, (x, wt, bias, in_scale, in_bias, A, B)), f]  # kept alive
    lib = _library()
    native.run_row_blocks(
        native.kernel(lib, "softmax_skinny_forward", dtype),
        list(map(native.pointer, args)),
        [SPREAD_LIMIT[dtype], k, hk // k, d],
        n_rows=n,
        n_cols=hk,
        dtype=dtype,
        scratch=int(lib.softmax_skinny_rows()) * (hk // k),
    )
    return f


def _backward_call(x, wt, A, B, in_scale, in_bias, g_f, need_x: bool):
    """``(g_x, ∂W (K·h, d), ∂r, ∂a, ∂A, ∂B)`` through the compiled backward loops."""
    n, d = x.shape
    k = A.shape[0]
    hk = wt.shape[1]
    h = hk // k
    dtype = x.dtype
    g_x = torch.empty((n, d), dtype=dtype) if need_x else None
    args = [native.detached(x), wt, *map(native.detached, (in_scale, in_bias, A, B, g_f))]
    lib = _library()
    total = native.run_row_blocks(
        native.kernel(lib, "softmax_skinny_backward", dtype),
        [*map(native.pointer, args), None if g_x is None else native.pointer(g_x)],
        [SPREAD_LIMIT[dtype], k, h, d],
        n_rows=n,
        n_cols=hk,
        dtype=dtype,
        scratch=int(lib.softmax_skinny_rows()) * h,
        accumulators=(d + 2) * hk + 2 * k,
    )
    d_w = total[: d * hk].view(d, hk).t()
    d_r = total[d * hk : (d + 1) * hk]
    d_a = total[(d + 1) * hk : (d + 2) * hk]
    d_big_a = total[(d + 2) * hk : (d + 2) * hk + k]
    d_big_b = total[(d + 2) * hk + k :]
    return g_x, d_w, d_r, d_a, d_big_a, d_big_b


def _activation_coefficients(monotone: bool, like_t: torch.Tensor, act) -> tuple:
    """``(c₁, c₂)`` ``(K,)`` of the modules' activations: the wsoftmax map of ``act`` (``a_1, b_1,
    …``), or softmax's ``(1, 0)`` when ``act`` is empty."""
    if not act:
        return torch.ones_like(like_t), torch.zeros_like(like_t)
    return WSoftmax.map(torch.stack(act[0::2]), torch.stack(act[1::2]), monotone)


def _scalings(monotone: bool, beta, alpha, act) -> tuple:
    """``(β̃, α̃, c₁, c₂)``, each ``(K,)``: the modules' scalings and activation coefficients."""
    alpha_t = F.softplus(alpha) if monotone else alpha
    return (F.softplus(beta), alpha_t, *_activation_coefficients(monotone, alpha, act))


def _kernel_coefficients(scalings, bias) -> tuple:
    """``(A, B, r, a)`` of the kernel from :func:`_scalings` and the hidden biases ``(K, h)``."""
    beta_t, alpha_t, c1, c2 = scalings
    k, h = bias.shape
    r = beta_t[:, None].expand(k, h).reshape(k * h)
    return alpha_t * c1, alpha_t * c2, r, (beta_t[:, None] * bias).reshape(k * h)


def module_coefficients(monotone: bool, beta, alpha, bias, act):
    """The kernel's coefficients from a GradNet-M's parameters, in differentiable torch ops.

    ``beta``, ``alpha`` ``(K,)``, ``bias`` ``(K, h)``, ``act`` the activations' parameters
    ``(a_1, b_1, …, a_K, b_K)`` (0-d each; empty for plain softmax). Returns
    ``(A, B, r, a)``: ``A = α̃·c₁``, ``B = α̃·c₂`` ``(K,)``, the input scaling ``r = β̃`` per unit and
    bias ``a = β̃·b`` ``(K·h,)``.
    """
    return _kernel_coefficients(_scalings(monotone, beta, alpha, act), bias)


def _modules_reference(monotone, x, weight, bias, beta, alpha, out_bias, *act):
    k, h, d = weight.shape
    A, B, r, a = module_coefficients(monotone, beta, alpha, bias, act)
    return skinny_softmax_reference(x, weight.reshape(k * h, d), out_bias, A, B, r, a)


class _NativeSoftmaxModules(torch.autograd.Function):
    """The whole softmax-family GradNet-M field from its raw parameters, in one graph node.

    With a few hundred parameters (the 2-D benchmarks) the small torch operations that turn the
    parameters into the kernel's coefficients, and their autograd nodes, cost more than the
    compiled loops; here they run without a graph and their chain rule is written out:
    ``∂b = ∂a·β̃``, ``∂β = Σ_units(∂r + ∂a·b)·σ(β)``, ``∂α = (∂A·c₁ + ∂B·c₂)·(σ(α) or 1)``,
    ``∂c₁ = ∂A·α̃``, ``∂c₂ = ∂B·α̃`` (times σ of the raw value for the monotone softplus maps).
    """

    @staticmethod
    def forward(ctx, monotone, x, weight, bias, beta, alpha, out_bias, *act):
        k, h, d = weight.shape
        scalings = _scalings(monotone, beta, alpha, act)
        A, B, r, a = _kernel_coefficients(scalings, bias)
        wt = weight.detach().reshape(k * h, d).t().contiguous()
        f = _forward_call(x, wt, out_bias, A, B, r, a)
        ctx.save_for_backward(x, weight, bias, beta, alpha, out_bias, *act)
        ctx.monotone, ctx.wt, ctx.scalings, ctx.coefficients = monotone, wt, scalings, (A, B, r, a)
        return f

    @staticmethod
    def backward(ctx, g_f):
        saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[1:]
        monotone = ctx.monotone
        if torch.is_grad_enabled():  # create_graph=True: differentiate the reference
            reference = functools.partial(_modules_reference, monotone)
            return (None, *differentiate_reference(reference, saved, needs, g_f))
        x, weight, bias, beta, alpha, out_bias, *act = saved
        k, h, d = weight.shape
        A, B, r, a = ctx.coefficients
        g_x, d_w, d_r, d_a, d_big_a, d_big_b = _backward_call(x, ctx.wt, A, B, r, a, g_f, needs[0])
        beta_t, alpha_t, c1, c2 = ctx.scalings
        d_a = d_a.view(k, h)
        d_beta = (d_r.view(k, h) + d_a * bias).sum(1) * torch.sigmoid(beta)
        d_alpha = d_big_a * c1 + d_big_b * c2
        if monotone:
            d_alpha = d_alpha * torch.sigmoid(alpha)
        d_act: list[torch.Tensor] = []
        if act:
            d1, d2 = d_big_a * alpha_t, d_big_b * alpha_t
            if monotone:  # through softplus
                d1 = d1 * torch.sigmoid(torch.stack(act[0::2]))
                d2 = d2 * torch.sigmoid(torch.stack(act[1::2]))
            d_act = [g for pair in zip(d1.unbind(), d2.unbind(), strict=True) for g in pair]
        grads = (
            g_x,
            d_w.reshape(k, h, d),
            d_a * beta_t[:, None],
            d_beta,
            d_alpha,
            g_f.sum(0),
            *d_act,
        )
        return (None, *(g if need else None for g, need in zip(grads, needs, strict=True)))


def native_softmax_modules_field(
    monotone: bool, x, weight, bias, beta, alpha, out_bias, *act
) -> torch.Tensor:
    """A softmax-family GradNet-M field ``(N, d)`` from its parameters, through the compiled loops.

    ``weight`` ``(K, h, d)``, ``bias`` ``(K, h)``, ``beta``/``alpha`` ``(K,)``, ``out_bias``
    ``(d,)``, ``act`` the wsoftmax parameters ``a_1, b_1, …, a_K, b_K`` (none for softmax); all in
    ``x``'s dtype. Requires :func:`available`.
    """
    return _NativeSoftmaxModules.apply(monotone, x, weight, bias, beta, alpha, out_bias, *act)


def available(x: torch.Tensor) -> bool:
    """Whether :func:`native_softmax_modules_field` can take ``x``."""
    return x.dim() == 2 and native.usable(x) and _library() is not None
