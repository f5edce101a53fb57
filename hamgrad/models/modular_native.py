"""The softmax-family GradNet-M field for small ``d``, compiled from C (``modular_native.c``).

The same map as :func:`hamgrad.models.modular_kernel.skinny_softmax_field`,
``f = c + Σ_k W_kᵀ (A_k softmax(u_k) − B_k softmax(−u_k))`` with ``u = r ⊙ (W x) + a``, but
no ``(N, K·h)`` array is ever written: the products with ``W`` (``d`` small) run inside the
loops, one module at a time so that its accumulators stay in cache, and the backward pass
recomputes each row's softmax pair instead of storing it (one exponential per unit: ``σ⁻``
comes from the reciprocals of ``σ⁺``'s exponentials whenever that cannot overflow).
"""

from __future__ import annotations

import torch

from hamgrad.models import native
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


class _NativeSkinnySoftmaxField(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, A, B, in_scale, in_bias):
        n, d = x.shape
        k = A.shape[0]
        hk = weight.shape[0]
        h = hk // k
        dtype = x.dtype
        f = torch.empty((n, d), dtype=dtype)
        inputs = (x, weight.t(), bias, in_scale, in_bias, A, B)
        args = [*map(native.detached, inputs), f]  # kept alive until the calls return
        wt = args[1]
        native.run_row_blocks(
            native.kernel(_library(), "softmax_skinny_forward", dtype),
            list(map(native.pointer, args)),
            [SPREAD_LIMIT[dtype], k, h, d],
            n_rows=n,
            n_cols=hk,
            dtype=dtype,
            scratch=int(_library().softmax_skinny_rows()) * h,
        )
        ctx.save_for_backward(x, weight, bias, A, B, in_scale, in_bias)
        ctx.wt = wt  # reused by the backward pass
        return f

    @staticmethod
    def backward(ctx, g_f):
        x, weight, bias, A, B, in_scale, in_bias = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: differentiate the reference
            inputs = (x, weight, bias, A, B, in_scale, in_bias)
            return differentiate_reference(skinny_softmax_reference, inputs, needs, g_f)
        n, d = x.shape
        k = A.shape[0]
        hk = weight.shape[0]
        h = hk // k
        dtype = x.dtype
        g_x = torch.empty((n, d), dtype=dtype) if needs[0] else None
        args = [native.detached(x), ctx.wt, *map(native.detached, (in_scale, in_bias, A, B, g_f))]
        total = native.run_row_blocks(
            native.kernel(_library(), "softmax_skinny_backward", dtype),
            [*map(native.pointer, args), None if g_x is None else native.pointer(g_x)],
            [SPREAD_LIMIT[dtype], k, h, d],
            n_rows=n,
            n_cols=hk,
            dtype=dtype,
            scratch=int(_library().softmax_skinny_rows()) * h,
            accumulators=(d + 2) * hk + 2 * k,
        )
        d_w = total[: d * hk].view(d, hk).t()
        d_r = total[d * hk : (d + 1) * hk]
        d_a = total[(d + 1) * hk : (d + 2) * hk]
        d_big_a = total[(d + 2) * hk : (d + 2) * hk + k]
        d_big_b = total[(d + 2) * hk + k :]
        d_c = g_f.sum(0) if needs[2] else None
        grads = (g_x, d_w, d_c, d_big_a, d_big_b, d_r, d_a)
        return tuple(g if need else None for g, need in zip(grads, needs, strict=True))


def native_skinny_softmax_field(x, weight, bias, A, B, in_scale, in_bias) -> torch.Tensor:
    """:func:`hamgrad.models.modular_kernel.skinny_softmax_field` through the compiled loops.

    Requires :func:`available` (CPU float32/float64 and the compiled library).
    """
    return _NativeSkinnySoftmaxField.apply(x, weight, bias, A, B, in_scale, in_bias)


def available(x: torch.Tensor) -> bool:
    """Whether :func:`native_skinny_softmax_field` can take ``x``."""
    return x.dim() == 2 and native.usable(x) and _library() is not None
