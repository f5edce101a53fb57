"""The GradNet-C cascade core compiled from C (``cascade_native.c``), one pass per direction.

Same interface and arithmetic as :class:`hamgrad.models.cascade_kernel.CascadeCore` (the
``y = 2z`` sigmoid form), but each direction is one loop over the rows that keeps a row's
``L`` layers in L1 cache: the forward pass reads ``s`` once and writes ``y_ℓ, sg_ℓ, v``; the
backward pass reads them once, writes ``g_s`` and accumulates every per-unit parameter gradient
on the way (no ``(L, N, h)`` gradient stack, no separate reductions). :func:`core_for` picks it
when the compiled library is available (:mod:`hamgrad.models.native`) and the tensors are
CPU float32/float64; otherwise the torch kernel.

For small ``d`` (< :data:`hamgrad.models.tied.SKINNY_DIM`) :func:`skinny_cascade_field` goes
further: the products with ``W`` run inside the loops too (``d`` multiply-adds per unit), so the
whole field and its backward never write an ``(N, h)`` array; the backward recomputes each row's
forward pass in cache instead of storing the layers. Layers of at most 16 units (the 2-D
benchmarks' h = 7) run loops over blocks of 32 rows, one unit at a time, which fill the vector
registers where a loop over 7 units cannot.
"""

from __future__ import annotations

import torch

from hamgrad.models import native
from hamgrad.models.cascade_kernel import CascadeCore, _prepare, cascade_core_reference
from hamgrad.models.tied import differentiate_reference


def _declare(lib) -> None:
    P, I = native.POINTER, native.INDEX
    for suffix in native.SUFFIX.values():
        getattr(lib, f"cascade_forward_{suffix}").argtypes = [P] * 9 + [I] * 5
        getattr(lib, f"cascade_backward_{suffix}").argtypes = [P] * 12 + [I] * 5
        getattr(lib, f"cascade_skinny_forward_{suffix}").argtypes = [P] * 10 + [I] * 5
        getattr(lib, f"cascade_skinny_backward_{suffix}").argtypes = [P] * 12 + [I] * 5
    lib.cascade_skinny_chunk.restype = I


def _library():
    return native.load("cascade_native", _declare)


def _chunk() -> int:
    """Columns per block of the skinny C loops (sizes their per-thread row scratch)."""
    return int(_library().cascade_skinny_chunk())


class NativeCascadeCore:
    """Core object for :func:`hamgrad.models.tied.tied_field` running the compiled loops."""

    tag = "cascade-native"
    reference = staticmethod(cascade_core_reference)

    @staticmethod
    def n_keep(theta) -> int:
        return 2 * theta[0].shape[0] + 1

    n_roll = n_keep

    @staticmethod
    def n_work(theta) -> int:
        return 1

    @staticmethod
    def forward(s, theta, bufs, keep):
        beta, cb, P, Q = theta
        layers = beta.shape[0]
        n, h = s.shape
        b2, const, p4 = _prepare(beta.detach(), cb.detach(), P.detach())
        v = bufs[2 * layers]
        Q_, P_ = native.detached(Q), native.detached(P)
        args = [s, b2, const, p4, Q_, P_, bufs[0], bufs[layers], v]  # keeps them alive
        fn = native.kernel(_library(), "cascade_forward", s.dtype)
        native.run_columns(fn, n, h, *map(native.pointer, args), layers)
        return v

    @staticmethod
    def backward(s, theta, kept, work, needs, x=None, weight=None, need_s=True):
        """``work = [g_s | g_v]``; returns ``(g_s, None, ∂β̃, ∂c, ∂P, ∂Q)`` (all computed)."""
        beta, cb, P, Q = theta
        layers = beta.shape[0]
        n, h = s.shape
        grads = torch.empty((4, layers, h), dtype=s.dtype, device=s.device)
        g_s, g_v = work[0], work[1]
        beta_, p4, Q_ = native.detached(beta), 4.0 * P.detach(), native.detached(Q)
        args = [s, beta_, p4, Q_, kept[0], kept[layers], g_v, g_s, *grads]
        fn = native.kernel(_library(), "cascade_backward", s.dtype)
        native.run_columns(fn, n, h, *map(native.pointer, args), layers)
        d_beta, d_cb, d_p, d_q = grads.unbind(0)
        return g_s, None, d_beta, d_cb, d_p, d_q


class _SkinnyCascadeField(torch.autograd.Function):
    """``f = Wᵀ core(x Wᵀ) + c`` with every ``(N, h)`` quantity kept inside the C loops.

    Nothing of size ``(N, h)`` is stored: the backward pass recomputes each row's forward pass
    (the ``L`` sigmoids again) in cache, which costs less than writing and reading the layers.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, beta, cb, P, Q):
        n, d = x.shape
        h = weight.shape[0]
        layers = beta.shape[0]
        f = torch.empty((n, d), dtype=x.dtype, device=x.device)
        coefficients = _skinny_coefficients(weight, beta, cb, P, Q)
        args = [native.detached(x), *coefficients, native.detached(bias), f]  # kept alive
        x_, wt, b2, const, p4, Q_, P_, _, c, f_ = map(native.pointer, args)
        native.run_row_blocks(
            native.kernel(_library(), "cascade_skinny_forward", x.dtype),
            [x_, wt, c, b2, const, p4, Q_, P_, f_],
            [layers, h, d],
            n_rows=n,
            n_cols=h,
            dtype=x.dtype,
            scratch=(4 + 2 * layers) * _chunk(),
        )
        ctx.save_for_backward(x, weight, bias, beta, cb, P, Q)
        ctx.coefficients = coefficients  # reused by the backward pass
        return f

    @staticmethod
    def backward(ctx, g_f):
        x, weight, bias, beta, cb, P, Q = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: differentiate the reference
            inputs = (x, weight, bias, beta, cb, P, Q)
            return differentiate_reference(_skinny_reference, inputs, needs, g_f)
        n, d = x.shape
        h = weight.shape[0]
        layers = beta.shape[0]
        g_x = torch.empty((n, d), dtype=x.dtype) if needs[0] else None
        args = [native.detached(x), *ctx.coefficients, native.detached(g_f)]  # kept alive
        total = native.run_row_blocks(
            native.kernel(_library(), "cascade_skinny_backward", x.dtype),
            [*map(native.pointer, args), None if g_x is None else native.pointer(g_x)],
            [layers, h, d],
            n_rows=n,
            n_cols=h,
            dtype=x.dtype,
            scratch=(4 + 2 * layers) * _chunk(),
            accumulators=(4 * layers + d) * h,
        )
        d_beta, d_cb, d_p, d_q = total[: 4 * layers * h].view(4, layers, h).unbind(0)
        d_w = total[4 * layers * h :].view(d, h).t()
        d_bias = g_f.sum(0) if needs[2] else None
        return g_x, d_w if needs[1] else None, d_bias, d_beta, d_cb, d_p, d_q


def _skinny_coefficients(weight, beta, cb, P, Q) -> list[torch.Tensor]:
    """``[Wᵀ, 2β̃, const, 4P, Q, P, β̃]`` detached and contiguous, in the C argument order."""
    b2, const, p4 = _prepare(beta.detach(), cb.detach(), P.detach())
    wt, Q_, P_, beta_ = map(native.detached, (weight.t(), Q, P, beta))
    return [wt, b2, const, p4, Q_, P_, beta_]


def _skinny_reference(x, weight, bias, beta, cb, P, Q) -> torch.Tensor:
    return torch.addmm(bias, cascade_core_reference(x @ weight.t(), beta, cb, P, Q), weight)


def skinny_cascade_field(x, weight, bias, beta, cb, P, Q) -> torch.Tensor:
    """``f(x)`` of the cascade for small ``d`` through the compiled skinny loops.

    ``x`` ``(N, d)`` CPU float32/float64, ``weight`` ``(h, d)``, ``bias`` ``(d,)``, coefficients
    ``(L, h)`` as :meth:`CascadeGradNet.core_coefficients` gives them. Requires the compiled
    library (:func:`skinny_available`).
    """
    return _SkinnyCascadeField.apply(x, weight, bias, beta, cb, P, Q)


def skinny_available(x: torch.Tensor) -> bool:
    """Whether :func:`skinny_cascade_field` can take ``x``."""
    return x.dim() == 2 and native.usable(x) and _library() is not None


def core_for(x: torch.Tensor):
    """The fastest cascade core available for tensors like ``x``."""
    if native.usable(x) and _library() is not None:
        return NativeCascadeCore
    return CascadeCore
