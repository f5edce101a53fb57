"""Fused evaluation of tied-weight gradient networks ``f(x) = Wᵀ v(W x) + c``.

Every GradNet in this package has this shape: ``s = x Ŵᵀ + a`` (``(N, h)``) with
``Ŵ = diag(r) W`` (an optional row scaling ``r`` and input bias ``a``), an elementwise or
per-group *core* ``v = core(s; θ)`` (``(N, h)``) and ``f = v W + c`` (``(N, d)``), with the same
``W ∈ R^{h×d}`` on both sides. :func:`tied_field` runs the two matrix products and the core inside
one ``torch.autograd.Function`` whose backward is written by hand:

    g_v = g_f W,     (g_s, ∂θ) = core.backward(g_v),     M = g_sᵀ x
    ∂c = Σ_n g_f,   ∂a = Σ_n g_s,   ∂r = rowsum(M ⊙ W),   ∂W = vᵀ g_f + diag(r) M,   ∂x = g_s Ŵ

It chooses the memory layout of each product by shape (skinny products with small ``d`` are
several times faster with the transposed operands on CPU BLAS) and keeps no autograd graph of
the many elementwise steps.

A *core* is an object with these members (see :mod:`hamgrad.models.cascade_kernel` and
:mod:`hamgrad.models.modular_kernel`):

* ``tag``: a name for its scratch buffers;
* ``n_keep(theta)``: how many ``(N, h)`` arrays its backward reads (the last one is ``v``);
  ``n_roll(theta)``: how many a forward pass that keeps nothing needs; ``n_work(theta)``: how
  many scratch arrays its backward needs besides ``g_v``;
* ``forward(s, theta, bufs, keep) -> v``: the values; ``bufs`` is an ``(n, N, h)`` block; with
  ``keep`` it fills the ``n_keep`` arrays, otherwise it may recycle ``n_roll`` buffers;
* ``backward(s, theta, kept, work, needs, x=None, weight=None, need_s=True)``
  ``-> (g_s, M, *g_theta)``:
  back-propagation from the ``kept`` block; ``work`` is an ``(n_work + 1, N, h)`` block whose
  last array holds ``g_v = ∂ℓ/∂v`` (it may be overwritten); ``needs[i]`` says whether
  ``theta[i]`` needs a gradient (``None`` where not). When ``x`` and ``weight`` are given
  (then ``s = x Wᵀ``) the core may return ``M = g_sᵀ x`` (``(h, d)``) itself, and then ``g_s``
  only if ``need_s``; otherwise it returns ``g_s`` and ``M = None``;
* ``reference(s, *theta) -> v``: the same map in differentiable torch ops.

Memory: the kept arrays live in a block from :data:`hamgrad.models.workspace.saved_pool`, given
back to the pool when the graph node is freed (exactly the lifetime of autograd's own saved
tensors, so ``retain_graph=True`` works), and all other temporaries in reused per-thread scratch
buffers. On CPU this matters: fresh multi-megabyte arrays on every call cost page faults that can
take longer than the arithmetic. Double backward (``create_graph=True``, e.g. a loss on a Jacobian) re-evaluates the
reference inside the backward, so higher derivatives are exact as well.
"""

from __future__ import annotations

import functools
import weakref

import torch

from hamgrad.models.workspace import saved_pool, scratch

#: Below this input size the products use transposed operands (faster skinny BLAS calls).
SKINNY_DIM = 32
#: With ``fused="auto"`` the fused kernel is used from this many hidden activations (N·h) up;
#: below it the fixed cost per call outweighs the savings and the eager equations run.
AUTO_MIN_ACTIVATIONS = 4096


def check_fused(value: object) -> bool | str:
    """Validate the ``fused`` option: ``True``, ``False`` or ``"auto"``."""
    if value is True or value is False or value == "auto":
        return value
    raise ValueError(f"fused must be True, False or 'auto', got {value!r}")


def use_fused(option: bool | str, n_activations: int) -> bool:
    """Whether a model with ``fused=option`` runs the fused kernel for this many activations."""
    if option == "auto":
        return n_activations >= AUTO_MIN_ACTIVATIONS
    return bool(option)


def _scaled(weight, in_scale):
    return weight if in_scale is None else weight * in_scale[:, None]


def _pre(x, weight_hat, in_bias, out=None):
    if in_bias is None:
        return torch.mm(x, weight_hat.t(), out=out)
    return torch.addmm(in_bias, x, weight_hat.t(), out=out)


def differentiate_reference(reference, inputs, needs, grad_out) -> tuple:
    """Gradients of ``reference(*inputs)`` against ``grad_out`` with ``create_graph=True``.

    The double-backward path of every fused kernel: their hand-written backward passes are not
    themselves differentiable, so under ``create_graph`` they re-evaluate the plain reference.
    ``needs[i]`` says whether ``inputs[i]`` wants a gradient (``None`` in the result where not;
    ``None`` inputs stay ``None``).
    """
    with torch.enable_grad():
        # fresh aliases, so that each gradient is the partial derivative with respect to that
        # argument even when the arguments depend on one another upstream
        leaves = [
            None
            if t is None
            else (t.view_as(t) if t.requires_grad else t.detach().requires_grad_(True))
            for t in inputs
        ]
        out = reference(*leaves)
        chosen = [leaf for leaf, need in zip(leaves, needs, strict=True) if need]
        grads = iter(torch.autograd.grad(out, chosen, grad_out, create_graph=True))
    return tuple(next(grads) if need else None for need in needs)


def tied_field_reference(core, x, weight, bias, in_scale, in_bias, *theta) -> torch.Tensor:
    """``f = core(x Ŵᵀ + a) W + c`` in plain differentiable ops; ``x`` ``(N, d)``, ``W`` ``(h, d)``."""
    s = _pre(x, _scaled(weight, in_scale), in_bias)
    return torch.addmm(bias, core.reference(s, *theta), weight)


class _TiedField(torch.autograd.Function):
    @staticmethod
    def forward(ctx, core, recording, x, weight, bias, in_scale, in_bias, *theta):
        n, d = x.shape
        h = weight.shape[0]
        keep = recording and any(ctx.needs_input_grad)
        n_keep = core.n_keep(theta)
        ctx.skinny = skinny = d < SKINNY_DIM
        # with a row scaling and wide inputs, s = r ⊙ (x Wᵀ) + a from the unscaled product,
        # which is kept (one more (N, h) array) for ∂r = Σ_n g_s ⊙ x Wᵀ: no (h, d) temporaries
        unscaled = in_scale is not None and not skinny
        if keep:
            # kept for the backward; back to the pool when this graph node is freed
            bufs = saved_pool.acquire(n_keep + 1 + unscaled, (n, h), x.dtype, x.device)
            weakref.finalize(ctx, saved_pool.release, bufs)
            ctx.block = bufs[: n_keep + 1]
        else:
            rolled = core.n_roll(theta) + 1
            bufs = scratch(core.tag + "/fwd", rolled + unscaled, (n, h), x.dtype, x.device)
        if unscaled:
            raw = torch.mm(x, weight.t(), out=bufs[-1])
            ctx.raw = raw if keep else None
            if in_bias is None:
                s = torch.mul(raw, in_scale, out=bufs[0])
            else:
                s = torch.addcmul(in_bias, raw, in_scale, out=bufs[0])
        else:
            s = _pre(x, _scaled(weight, in_scale), in_bias, out=bufs[0])
        v = core.forward(s, theta, bufs[1:], keep)
        if skinny:
            f = torch.addmm(bias[:, None], weight.t(), v.t()).t()
        else:
            f = torch.addmm(bias, v, weight)
        ctx.core = core
        ctx.save_for_backward(x, weight, bias, in_scale, in_bias, *theta)
        return f

    @staticmethod
    def backward(ctx, g_f):
        core = ctx.core
        x, weight, bias, in_scale, in_bias, *theta = ctx.saved_tensors
        block = ctx.block
        needs = ctx.needs_input_grad[2:]  # x, weight, bias, in_scale, in_bias, *theta

        if torch.is_grad_enabled():  # create_graph=True: differentiate the reference
            inputs = (x, weight, bias, in_scale, in_bias, *theta)
            reference = functools.partial(tied_field_reference, core)
            return (None, None, *differentiate_reference(reference, inputs, needs, g_f))

        need_x, need_w, need_b, need_r, need_a = needs[:5]
        need_theta = needs[5:]
        grads = [None] * (5 + len(theta))
        if need_b:
            grads[2] = g_f.sum(0)
        if not (need_x or need_w or need_r or need_a or any(need_theta)):
            return (None, None, *grads)
        n, h = x.shape[0], weight.shape[0]
        s, kept = block[0], block[1:]
        work = scratch(core.tag + "/bwd", core.n_work(theta) + 1, (n, h), x.dtype, x.device)
        torch.mm(g_f, weight.t(), out=work[-1])
        if not ctx.skinny:
            # wide inputs: ∂W = vᵀ g_f + (g_s ⊙ r)ᵀ x in one product-and-add (no (h, d)
            # temporaries) and ∂r = Σ_n g_s ⊙ (x Wᵀ) from the product kept by the forward pass
            g_s, _, *g_theta = core.backward(s, theta, kept, work, need_theta, need_s=True)
            grads[5:] = g_theta
            if need_a:
                grads[4] = g_s.sum(0)
            if need_r:
                grads[3] = (g_s * ctx.raw).sum(0)
            g_in = g_s if in_scale is None else g_s * in_scale  # ∂ℓ/∂(x Wᵀ)
            if need_x:
                grads[0] = torch.mm(g_in, weight)
            if need_w:
                grads[1] = torch.addmm(torch.mm(kept[-1].t(), g_f), g_in.t(), x)
            return (None, None, *grads)
        # skinny products (small d): transposed operands, and the core may return M = g_sᵀ x
        want_m = need_w or need_r
        offer = want_m and in_scale is None and in_bias is None  # then s = x Wᵀ
        g_s, m, *g_theta = core.backward(
            s,
            theta,
            kept,
            work,
            need_theta,
            x=x if offer else None,
            weight=weight if offer else None,
            need_s=need_x or need_a,
        )
        v = kept[-1]
        grads[5:] = g_theta
        if need_x:
            grads[0] = torch.mm(g_s, _scaled(weight, in_scale))
        if need_a:
            grads[4] = g_s.sum(0)
        if want_m:
            if m is None:  # M = g_sᵀ x, (h, d)
                m = torch.mm(x.t(), g_s).t()
            if need_r:
                grads[3] = (m * weight).sum(1)
            if need_w:
                out_part = torch.mm(g_f.t(), v).t()
                if in_scale is None:
                    grads[1] = out_part.add_(m)
                else:
                    grads[1] = out_part.addcmul_(m, in_scale[:, None])
        return (None, None, *grads)


def tied_field(
    core,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *theta: torch.Tensor,
    in_scale: torch.Tensor | None = None,
    in_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused ``f = core(x Ŵᵀ + a; θ) W + c`` with ``Ŵ = diag(in_scale) W`` and ``a = in_bias``.

    ``x`` ``(N, d)``, ``weight`` ``(h, d)``, ``bias`` ``(d,)``, ``in_scale``/``in_bias`` ``(h,)``
    or None. Values equal :func:`tied_field_reference` to round-off; first and higher derivatives
    with respect to every tensor argument are supported.
    """
    recording = torch.is_grad_enabled()
    return _TiedField.apply(core, recording, x, weight, bias, in_scale, in_bias, *theta)
