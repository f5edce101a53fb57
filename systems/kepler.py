"""The exact Kepler flow (relative motion of two bodies) by universal variables.

For the relative position ``r`` and velocity ``v`` of two bodies with ``μ = G (m_1 + m_2)``,
``d²r/dt² = −μ r / |r|³``. With ``α = 2/|r_0| − |v_0|²/μ`` (reciprocal semi-major axis; ``> 0``
bound, ``< 0`` unbound), the universal anomaly ``χ`` at time ``t`` solves

    √μ t = (r_0·v_0/√μ) χ² C(z) + (1 − α|r_0|) χ³ S(z) + |r_0| χ,    z = α χ²

with the Stumpff functions ``C(z) = (1 − cos √z)/z`` and ``S(z) = (√z − sin √z)/z^{3/2}``
(continued to ``z ≤ 0`` by cosh/sinh, by their series near 0). The state follows from the
Lagrange coefficients: ``r(t) = f r_0 + g v_0``, ``v(t) = ḟ r_0 + ġ v_0`` with
``f = 1 − χ² C/|r_0|``, ``g = t − χ³ S/√μ``, ``ḟ = √μ χ (z S − 1)/(|r| |r_0|)``,
``ġ = 1 − χ² C/|r|``. The equation is solved by Laguerre's iteration (robust from a rough start
for every conic); for bound orbits ``t`` is first reduced modulo the period. Accuracy is
round-off limited (relative energy error ~1e-14 on HNN's orbits; it grows to ~1e-11 on nearly
radial orbits whose pericentre is ~1e-2 of their size, where ``f`` and ``g`` cancel).
"""

from __future__ import annotations

import math

import torch

from hamgrad.errors import ConvergenceError

Tensor = torch.Tensor

_SERIES_TERMS = 11  # Stumpff series for |z| < 1: terms k < 11 (the next is below 1e-22)
_LAGUERRE_ORDER = 5
_MAX_ITER = 60


def stumpff(z: Tensor) -> tuple[Tensor, Tensor]:
    """Stumpff functions ``C(z)``, ``S(z)`` (elementwise, any real ``z``).

    cos/sin for ``z > 0``, cosh/sinh for ``z < 0``, and the series where ``|z| < 1`` (where the
    closed forms cancel).
    """
    neg = z < 0
    az = z.abs()
    sq = az.sqrt()
    if bool(neg.any()):
        pos = ~neg
        one_minus_cos = torch.where(pos, 1.0 - torch.cos(sq), torch.cosh(sq) - 1.0)
        sq_minus_sin = torch.where(pos, sq - torch.sin(sq), torch.sinh(sq) - sq)
    else:  # bound orbits only: skip the hyperbolic branch
        one_minus_cos = 1.0 - torch.cos(sq)
        sq_minus_sin = sq - torch.sin(sq)
    c = one_minus_cos / az
    s = sq_minus_sin / (az * sq)
    small = az < 1.0
    if bool(small.any()):
        zs = z[small]
        # C = Σ (−z)^k/(2k+2)!, S = Σ (−z)^k/(2k+3)!  (Horner from the last term)
        cs = torch.full_like(zs, 1.0 / math.factorial(2 * _SERIES_TERMS))
        ss = torch.full_like(zs, 1.0 / math.factorial(2 * _SERIES_TERMS + 1))
        for k in range(_SERIES_TERMS - 2, -1, -1):
            cs = 1.0 / math.factorial(2 * k + 2) - zs * cs
            ss = 1.0 / math.factorial(2 * k + 3) - zs * ss
        c[small], s[small] = cs, ss
    return c, s


def kepler_flow(r0: Tensor, v0: Tensor, mu: float, t: Tensor) -> tuple[Tensor, Tensor]:
    """Exact relative motion at times ``t``.

    Args:
        r0, v0: relative positions and velocities ``(B, d)`` (any dimension ``d``, float64).
        mu: ``G (m_1 + m_2)`` (> 0).
        t: times ``(T,)`` after the initial state.

    Returns:
        ``r, v`` of shape ``(B, T, d)``.
    """
    r0n = torch.linalg.vector_norm(r0, dim=-1, keepdim=True)  # (B, 1)
    vr = (r0 * v0).sum(-1, keepdim=True) / r0n
    v2 = (v0 * v0).sum(-1, keepdim=True)
    alpha = 2.0 / r0n - v2 / mu
    sqmu = math.sqrt(mu)
    tt = t.reshape(1, -1).expand(r0.shape[0], -1)
    bound = alpha > 0
    # reduce bound orbits modulo the period P = 2π / (√μ α^{3/2})
    period = torch.where(bound, 2.0 * math.pi / (sqmu * alpha.clamp(min=1e-300) ** 1.5), 1.0)
    tau = torch.where(bound, torch.remainder(tt, period), tt)
    a0 = r0n * vr / sqmu
    a1 = 1.0 - alpha * r0n
    chi = torch.where(bound, sqmu * alpha * tau, sqmu * tau / r0n)
    n = _LAGUERRE_ORDER
    previous = torch.full_like(chi, math.inf)
    for _ in range(_MAX_ITER):
        z = alpha * chi * chi
        c, s = stumpff(z)
        chi2 = chi * chi
        f = a0 * chi2 * c + a1 * chi2 * chi * s + r0n * chi - sqmu * tau
        df = a0 * chi * (1.0 - z * s) + a1 * chi2 * c + r0n
        ddf = a0 * (1.0 - z * c) + a1 * chi * (1.0 - z * s)
        root = ((n - 1) ** 2 * df * df - n * (n - 1) * f * ddf).abs().sqrt()
        delta = n * f / (df + torch.copysign(root, df))
        chi = chi - delta
        # converged: a correction at round-off, or one that stopped shrinking near round-off
        size = delta.abs() / (1.0 + chi.abs())
        if bool(((size <= 4e-16) | ((size <= 1e-12) & (size >= 0.5 * previous))).all()):
            break
        previous = size
    else:
        raise ConvergenceError("Kepler's equation did not converge (a near-collision orbit?)")
    # C and S of the last iterate: the final correction is below round-off
    z = alpha * chi * chi
    chi2 = chi * chi
    fl = 1.0 - chi2 * c / r0n
    gl = tau - chi2 * chi * s / sqmu
    r = fl.unsqueeze(-1) * r0.unsqueeze(1) + gl.unsqueeze(-1) * v0.unsqueeze(1)
    rn = torch.linalg.vector_norm(r, dim=-1)
    fdot = sqmu * chi * (z * s - 1.0) / (rn * r0n)
    gdot = 1.0 - chi2 * c / rn
    v = fdot.unsqueeze(-1) * r0.unsqueeze(1) + gdot.unsqueeze(-1) * v0.unsqueeze(1)
    return r, v
