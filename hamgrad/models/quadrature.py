"""Potentials of ridge networks by composite Gauss–Legendre quadrature.

A cascade GradNet is ``f(x) = Σ_i w_i φ_i(w_iᵀx) + c``, so its potential is
``F(x) = Σ_i Φ_i(w_iᵀx) + cᵀx`` with ``Φ_i(s) = ∫₀ˢ φ_i(t) dt``. The profiles φ_i are analytic
(compositions of tanh and affine maps), so Gauss–Legendre quadrature converges geometrically at a
rate set by the distance from the real axis to the nearest complex singularity. For a cascade the
nearest singularity of unit i lies about ``(π/2)/G_i`` away, where ``G_i`` bounds
``|dz_ℓ/ds|`` over the layers (see :func:`hamgrad.models.cascade.CascadeGradNet.profile_gain`).
:func:`ridge_integral` splits ``[0, s]`` into panels no longer than ``1/G_i`` and uses
:data:`NODES_PER_PANEL` nodes on each, which makes the relative error ~1e-20 in theory and
round-off in practice (tested against a reference with four times as many nodes).

:func:`ridge_integral` applies the batch-wide panel count to every sample and unit, which costs
``N·h·panels·nodes`` evaluations and becomes prohibitive once trained parameters make the gains
large. The cascade potentials therefore use :func:`ridge_integral_tabulated`: the same panels,
laid once per unit on a grid anchored at 0, accumulated into a table of ``Φ_i`` at the grid
points, plus one partial panel per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

#: Gauss–Legendre nodes per panel.
NODES_PER_PANEL = 16
#: Largest number of profile evaluations held in memory at once (elements of ``(m, N, h)``).
CHUNK_ELEMENTS = 1 << 21


@lru_cache(maxsize=32)
def _gauss_legendre_01(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``n``-point Gauss–Legendre rule on ``[0, 1]``."""
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1.0) / 2.0, w / 2.0


def composite_rule(
    n_panels: int, nodes_per_panel: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Gauss–Legendre rule on ``[0, 1]``: ``(fractions, weights)``, each ``(m,)``."""
    u, w = _gauss_legendre_01(nodes_per_panel)
    j = np.arange(n_panels)[:, None]
    frac = ((j + u[None, :]) / n_panels).reshape(-1)
    weights = np.broadcast_to(w[None, :] / n_panels, (n_panels, nodes_per_panel)).reshape(-1)
    return (
        torch.as_tensor(frac, dtype=dtype, device=device),
        torch.as_tensor(weights.copy(), dtype=dtype, device=device),
    )


def panels_needed(s: torch.Tensor, gain: torch.Tensor) -> int:
    """Panels so that every interval ``[0, s_ni]`` is cut into pieces of length ≤ ``1/gain_i``."""
    with torch.no_grad():
        if s.numel() == 0:
            return 1
        reach = (s.detach().abs().amax(0) * gain.detach().abs()).max().item()
    if not math.isfinite(reach):
        raise FloatingPointError("non-finite input or parameters in the ridge potential")
    return max(1, math.ceil(reach))


def ridge_integral(
    profile: Callable[[torch.Tensor], torch.Tensor],
    s: torch.Tensor,
    gain: torch.Tensor,
    *,
    nodes_per_panel: int = NODES_PER_PANEL,
    n_panels: int | None = None,
) -> torch.Tensor:
    """``Φ_i(s_ni) = ∫₀^{s_ni} φ_i(t) dt`` for every sample n and unit i.

    Args:
        profile: maps ``(M, h) -> (M, h)``, unit i of column i evaluated at its own abscissa.
        s: ``(N, h)`` upper limits of integration.
        gain: ``(h,)`` bound on the rate at which each profile varies (sets the panel length).
        nodes_per_panel, n_panels: the rule (``n_panels`` from :func:`panels_needed` if None).

    Returns ``(N, h)``, differentiable with respect to ``s`` and whatever ``profile`` depends on.
    """
    n, h = s.shape
    if n_panels is None:
        n_panels = panels_needed(s, gain)
    frac, weights = composite_rule(n_panels, nodes_per_panel, s.dtype, s.device)
    return s * _weighted_profile_sum(profile, None, s, frac, weights)


def _weighted_profile_sum(
    profile: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor | None,
    length: torch.Tensor,
    fractions: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """``Σ_j weights_j · profile(start + fractions_j · length)`` (``start`` None: 0), ``(N, h)``.

    ``profile`` maps ``(M, h) -> (M, h)``; the nodes are taken in chunks so that at most
    :data:`CHUNK_ELEMENTS` profile values are held at once.
    """
    n, h = length.shape
    chunk = max(1, CHUNK_ELEMENTS // max(1, n * h))
    acc = None
    for first in range(0, fractions.shape[0], chunk):
        pts = fractions[first : first + chunk, None, None] * length.unsqueeze(0)  # (m, N, h)
        if start is not None:
            pts = start.unsqueeze(0) + pts
        vals = profile(pts.reshape(-1, h)).reshape(pts.shape)
        part = torch.tensordot(weights[first : first + chunk], vals, dims=1)
        acc = part if acc is None else acc + part
    return acc


def _grid_side(extent: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per unit, the number of panels (≥ 1) of length ≤ ``1/gain`` covering ``[0, extent]``
    and their common length (0 where ``extent`` is 0)."""
    count = torch.clamp(torch.ceil(extent * gain), min=1.0)
    return count.to(torch.long), extent / count


def ridge_integral_tabulated(
    unit_profile: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    s: torch.Tensor,
    gain: torch.Tensor,
    *,
    nodes_per_panel: int = NODES_PER_PANEL,
) -> torch.Tensor:
    """``Φ_i(s_ni) = ∫₀^{s_ni} φ_i(t) dt`` by tabulating each Φ_i once on a per-unit grid.

    The same composite Gauss–Legendre rule as :func:`ridge_integral` (panels no longer than
    ``1/gain_i``, :data:`NODES_PER_PANEL` nodes each), but the panels are laid once per unit on a
    grid anchored at 0 that covers the batch's range of ``s_i`` (unit i gets
    ``⌈max|s_i|·gain_i⌉`` panels on each side of 0, not the batch-wide maximum), their integrals
    are accumulated into a table ``Φ_i(grid point)``, and each sample then adds one partial panel
    from the grid point below (towards 0) to ``s_ni``. The cost is
    ``nodes · (N·h + Σ_i panels_i)`` profile evaluations instead of ``nodes · N·h·max panels``.

    Args:
        unit_profile: ``unit_profile(t, None)`` maps ``(M, h) -> (M, h)`` (column i is unit i);
            ``unit_profile(t, units)`` with ``t`` and ``units`` both ``(M,)`` evaluates unit
            ``units[k]`` at ``t[k]``.
        s: ``(N, h)`` upper limits; gain: ``(h,)`` profile rate bound (sets the panel length).

    Returns ``(N, h)``, differentiable with respect to ``s`` (the grid is fixed, so ``∂/∂s_ni`` is
    the partial panel's, i.e. ``φ_i(s_ni)`` to quadrature accuracy) and whatever the profile
    depends on.
    """
    n, h = s.shape
    if n == 0 or h == 0:
        return s * 0
    sd = s.detach()
    g = gain.detach().to(sd.dtype).abs()
    hi = sd.amax(0).clamp(min=0.0)
    lo = (-sd.amin(0)).clamp(min=0.0)
    if not (torch.isfinite(hi).all() and torch.isfinite(lo).all() and torch.isfinite(g).all()):
        raise FloatingPointError("non-finite input or parameters in the ridge potential")
    u_np, w_np = _gauss_legendre_01(nodes_per_panel)
    u = torch.as_tensor(u_np, dtype=s.dtype, device=s.device)
    w = torch.as_tensor(w_np, dtype=s.dtype, device=s.device)

    # -- the grid: panels [k H, (k+1) H] (positive side) and [-(k+1) H', -k H'] (negative) ------
    k_pos, h_pos = _grid_side(hi, g)
    k_neg, h_neg = _grid_side(lo, g)
    counts = torch.cat([k_pos, k_neg])  # (2h,): side-major "columns"
    steps = torch.cat([h_pos, -h_neg])  # signed panel length
    col = torch.repeat_interleave(torch.arange(2 * h, device=s.device), counts)
    first = torch.cumsum(counts, 0) - counts
    k = torch.arange(col.shape[0], device=s.device) - first[col]  # panel index within its column
    units = col % h
    left = k.to(s.dtype) * steps[col]
    step = steps[col]
    per_chunk = max(1, CHUNK_ELEMENTS // nodes_per_panel)
    pieces = []
    for start in range(0, col.shape[0], per_chunk):
        sl = slice(start, start + per_chunk)
        pts = left[sl, None] + u[None, :] * step[sl, None]  # (p, nodes)
        unit = units[sl, None].expand_as(pts)
        vals = unit_profile(pts.reshape(-1), unit.reshape(-1)).reshape(pts.shape)
        pieces.append(step[sl] * (vals @ w))
    panel = torch.cat(pieces)  # signed ∫ over each panel (from its end nearer 0 outwards)

    # -- table[c, k] = ∫₀^{k·step_c} φ, exclusive cumulative sums per column ------------------
    k_max = int(counts.max())
    table = torch.zeros(2 * h, k_max, dtype=panel.dtype, device=s.device)
    table = table.index_put((col, k), panel)
    table = torch.cumsum(table, 1) - table

    # -- one partial panel per sample ---------------------------------------------------------
    neg = sd < 0
    cols = torch.arange(h, device=s.device) + h * neg.to(torch.long)  # (N, h)
    stp = steps[cols]
    safe = torch.where(stp != 0, stp, torch.ones_like(stp))
    kk = torch.floor(sd / safe).to(torch.long)
    kk = torch.minimum(kk.clamp(min=0), counts[cols] - 1)
    base = table[cols, kk]
    anchor = kk.to(s.dtype) * stp
    d = s - anchor
    return base + d * _weighted_profile_sum(lambda t: unit_profile(t, None), anchor, d, u, w)
