"""Explicit symplectic splitting methods for separable H = T(p) + V(q).

Every method here is a sequence of *kicks* ``p ← p − a·dt·∂H/∂q(q)`` and *drifts*
``q ← q + b·dt·∂H/∂p(p)``: kick coefficients ``a_0 … a_s`` and drift coefficients ``b_1 … b_s``
(kick, drift, kick, …, drift, kick). Each kick and drift is the exact flow of V or T, hence
symplectic; so is their composition.

The force ``∂H/∂q`` at the end of a step is the one the next step's first kick needs (first same as
last), so a step costs ``s`` evaluations of ``grad_q`` and ``s`` of ``grad_p``: leapfrog one of each.
The drift always uses ``grad_p(p)`` (never ``p`` itself), so any kinetic energy works, not only
``|p|²/2``.

Compositions: a symmetric composition ``S(w_1 dt) ∘ … ∘ S(w_s dt)`` of leapfrog steps ``S`` merges
adjacent half kicks, giving ``b = w`` and ``a = (w_1/2, (w_1+w_2)/2, …, (w_{s-1}+w_s)/2, w_s/2)``.

Splittings that are not compositions of leapfrog steps give their kick and drift coefficients
directly (``blanes-moan4``).

References for the coefficients:
  H. Yoshida, "Construction of higher order symplectic integrators", Phys. Lett. A 150 (1990)
  262–268: the triple jump (4th order, eq. 4.14; also Forest & Ruth 1990, Creutz & Gocksch 1989),
  the 6th-order solution A (Table 1) and the 8th-order solution D (Table 2).
  S. Blanes and P. C. Moan, "Practical symplectic partitioned Runge–Kutta and Runge–Kutta–Nyström
  methods", J. Comput. Appl. Math. 142 (2002) 313–330: the 6-stage 4th-order partitioned
  Runge–Kutta splitting S6.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from hamgrad.integrators.base import Integrator, register_integrator
from hamgrad.integrators.recorder import TrajectoryRecorder


def composition_coefficients(
    weights: tuple[float, ...],
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Kick and drift coefficients of the composition of leapfrog steps with the given weights."""
    kicks = [weights[0] / 2]
    kicks += [(a + b) / 2 for a, b in zip(weights[:-1], weights[1:], strict=True)]
    kicks.append(weights[-1] / 2)
    return tuple(kicks), tuple(weights)


def symmetric_weights(outer_to_inner: tuple[float, ...]) -> tuple[float, ...]:
    """The palindrome ``w_m … w_1 w_0 w_1 … w_m`` from ``(w_m, …, w_1)``; ``w_0 = 1 − 2 Σ w_i``."""
    w0 = 1.0 - 2.0 * math.fsum(outer_to_inner)
    return (*outer_to_inner, w0, *reversed(outer_to_inner))


_CBRT2 = 2.0 ** (1.0 / 3.0)
#: Yoshida (1990) triple jump: w_1 = 1/(2 − 2^{1/3}), w_0 = −2^{1/3}/(2 − 2^{1/3})
YOSHIDA4_WEIGHTS = symmetric_weights((1.0 / (2.0 - _CBRT2),))
#: Yoshida (1990) Table 1, solution A: (w_3, w_2, w_1)
YOSHIDA6_WEIGHTS = symmetric_weights((0.784513610477560, 0.235573213359357, -1.17767998417887))
#: Yoshida (1990) Table 2, solution D: (w_7, …, w_1)
YOSHIDA8_WEIGHTS = symmetric_weights(
    (
        0.914844246229740,
        0.253693336566229,
        -1.44485223686048,
        -0.158240635368243,
        1.93813913762276,
        -1.96061023297549,
        0.102799849391985,
    )
)

#: Blanes & Moan (2002), method S6: (a_1, a_2, a_3) of the flow applied 7 times (here the kick),
#: a_4 = 1 − 2(a_1 + a_2 + a_3); (b_1, b_2) of the flow applied 6 times (the drift),
#: b_3 = 1/2 − (b_1 + b_2). The step is the palindrome
#: A(a_1) B(b_1) A(a_2) B(b_2) A(a_3) B(b_3) A(a_4) B(b_3) A(a_3) B(b_2) A(a_2) B(b_1) A(a_1).
BLANES_MOAN4_KICKS = symmetric_weights((0.0792036964311957, 0.353172906049774, -0.0420650803577195))
_BM_B1, _BM_B2 = 0.209515106613362, -0.143851773179818
_BM_B3 = 0.5 - (_BM_B1 + _BM_B2)
BLANES_MOAN4_DRIFTS = (_BM_B1, _BM_B2, _BM_B3, _BM_B3, _BM_B2, _BM_B1)


class SplittingIntegrator(Integrator):
    """Kick-drift-...-kick splitting with first-same-as-last force reuse (separable H only)."""

    symplectic: ClassVar[bool] = True
    separable_only: ClassVar[bool] = True
    kicks: ClassVar[tuple[float, ...]]
    drifts: ClassVar[tuple[float, ...]]

    def integrate(
        self, h: Any, x0: torch.Tensor, dt: float, n_steps: int, save_every: int
    ) -> torch.Tensor:
        n = x0.shape[-1] // 2
        q, p = x0[..., :n], x0[..., n:]
        grad_q, grad_p = h.grad_q, h.grad_p
        stages = [(-a * dt, b * dt) for a, b in zip(self.kicks[:-1], self.drifts, strict=True)]
        last_kick = -self.kicks[-1] * dt
        recorder = TrajectoryRecorder(x0, n_steps // save_every, save_every, dt, self.name)
        force = grad_q(q)
        for step in range(1, n_steps + 1):
            for kick, drift in stages:
                if kick:
                    p = torch.add(p, force, alpha=kick)
                q = torch.add(q, grad_p(p), alpha=drift)
                force = grad_q(q)
            if last_kick:
                p = torch.add(p, force, alpha=last_kick)
            if step % save_every == 0:
                recorder.save(step // save_every, q, p)
        return recorder.result()


@register_integrator("leapfrog")
class Leapfrog(SplittingIntegrator):
    """Störmer–Verlet, kick-drift-kick: p −= dt/2 ∂H/∂q; q += dt ∂H/∂p; p −= dt/2 ∂H/∂q."""

    order = 2
    symmetric = True
    summary = "Störmer–Verlet kick-drift-kick; one grad_q and one grad_p per step"
    kicks = (0.5, 0.5)
    drifts = (1.0,)


@register_integrator("symplectic-euler")
class SymplecticEuler(SplittingIntegrator):
    """Symplectic Euler: p_{k+1} = p_k − dt ∂H/∂q(q_k); q_{k+1} = q_k + dt ∂H/∂p(p_{k+1})."""

    order = 1
    symmetric = False
    summary = "kick then drift (first order)"
    kicks = (1.0, 0.0)
    drifts = (1.0,)


@register_integrator("yoshida4")
class Yoshida4(SplittingIntegrator):
    """Yoshida's triple jump: three leapfrog steps with weights (w_1, w_0, w_1)."""

    order = 4
    symmetric = True
    summary = "triple-jump composition of leapfrog (Yoshida 1990), 3 stages"
    kicks, drifts = composition_coefficients(YOSHIDA4_WEIGHTS)


@register_integrator("yoshida6")
class Yoshida6(SplittingIntegrator):
    """Yoshida's 6th-order composition (solution A), seven leapfrog stages."""

    order = 6
    symmetric = True
    summary = "6th-order composition of leapfrog (Yoshida 1990, solution A), 7 stages"
    kicks, drifts = composition_coefficients(YOSHIDA6_WEIGHTS)


@register_integrator("yoshida8")
class Yoshida8(SplittingIntegrator):
    """Yoshida's 8th-order composition (solution D), fifteen leapfrog stages."""

    order = 8
    symmetric = True
    summary = "8th-order composition of leapfrog (Yoshida 1990, solution D), 15 stages"
    kicks, drifts = composition_coefficients(YOSHIDA8_WEIGHTS)


@register_integrator("blanes-moan4")
class BlanesMoan4(SplittingIntegrator):
    """Blanes & Moan's 6-stage 4th-order splitting S6 (J. Comput. Appl. Math. 142, 2002).

    Seven kicks and six drifts per step; with the last force reused by the next step's first
    kick, a step costs six ``grad_q`` and six ``grad_p``. Its leading error constant is far smaller
    than the triple jump's, so at equal cost it is much more accurate than ``yoshida4``. The
    published splitting is of order 4 whichever flow takes the seven-fold coefficients; here the
    kick does.
    """

    order = 4
    symmetric = True
    summary = "6-stage 4th-order splitting S6 (Blanes & Moan 2002), 6 grad_q + 6 grad_p per step"
    kicks = BLANES_MOAN4_KICKS
    drifts = BLANES_MOAN4_DRIFTS
