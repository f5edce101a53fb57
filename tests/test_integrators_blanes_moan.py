"""The Blanes–Moan 4th-order splitting ``blanes-moan4`` against mathematics (float64).

The step is the palindrome of exact kick and drift flows published as method S6 in S. Blanes and
P. C. Moan, J. Comput. Appl. Math. 142 (2002) 313–330; the checks: the coefficients and the step
itself, the evaluation count (first-same-as-last force reuse), symplecticity at several steps and
in several degrees of freedom, a non-unit mass and a smaller error than the triple jump at equal
cost. Order, reversibility and bounded energy are rows of the shared tables in
``test_integrators_accuracy.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_integrators_systems import HarmonicOscillator, Pendulum, pendulum_reference

from hamgrad.integrators import integrators_table, list_integrators, rollout
from hamgrad.integrators.splitting import BLANES_MOAN4_DRIFTS, BLANES_MOAN4_KICKS
from hamgrad.testing import assert_symplectic

F64 = torch.float64
METHOD = "blanes-moan4"
X0 = torch.tensor([[1.0, 0.5], [-0.5, 1.2], [2.0, -0.3]], dtype=F64)

# The published coefficients, written out here independently of the module's table.
A1, A2, A3 = 0.0792036964311957, 0.353172906049774, -0.0420650803577195
A4 = 1 - 2 * (A1 + A2 + A3)
B1, B2 = 0.209515106613362, -0.143851773179818
B3 = 0.5 - (B1 + B2)


class CountingPendulum(Pendulum):
    """The pendulum counting its ``grad_q`` and ``grad_p`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"grad_q": 0, "grad_p": 0}

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        self.calls["grad_q"] += 1
        return super().grad_q(q)

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        self.calls["grad_p"] += 1
        return super().grad_p(p)


def _final_error(h, x0, t_end: float, n_steps: int, reference: torch.Tensor, method=METHOD):
    final = rollout(h, x0, t_end / n_steps, n_steps, method=method, save_every=n_steps)[:, -1]
    return float((final - reference).abs().max())


# --- registry and coefficients ---------------------------------------------------------------


def test_registered_as_a_symmetric_symplectic_order_4_splitting():
    info = {i.name: i for i in list_integrators()}[METHOD]
    assert (info.order, info.symplectic, info.symmetric) == (4, True, True)
    assert info.separable_only and not info.adaptive
    assert METHOD in integrators_table()


def test_coefficients_are_the_published_palindromes():
    assert BLANES_MOAN4_KICKS == pytest.approx((A1, A2, A3, A4, A3, A2, A1), abs=1e-16)
    assert BLANES_MOAN4_DRIFTS == pytest.approx((B1, B2, B3, B3, B2, B1), abs=1e-16)
    # consistency (order 1): each flow's weights sum to one step
    assert math.isclose(math.fsum(BLANES_MOAN4_KICKS), 1.0, abs_tol=1e-15)
    assert math.isclose(math.fsum(BLANES_MOAN4_DRIFTS), 1.0, abs_tol=1e-15)


@settings(deadline=None, max_examples=10)
@given(dt=st.floats(0.01, 0.5), q=st.floats(-2, 2), p=st.floats(-2, 2))
def test_step_is_the_published_sequence_of_kicks_and_drifts(dt, q, p):
    h = Pendulum()
    kicks, drifts = (A1, A2, A3, A4, A3, A2, A1), (B1, B2, B3, B3, B2, B1)
    qq, pp = q, p
    for i, a in enumerate(kicks):
        pp -= a * dt * h.mgl * math.sin(qq)  # kick: exact flow of V
        if i < len(drifts):
            qq += drifts[i] * dt * pp / h.inertia  # drift: exact flow of T
    out = rollout(h, torch.tensor([[q, p]], dtype=F64), dt, 1, method=METHOD)[0, -1]
    torch.testing.assert_close(out, torch.tensor([qq, pp], dtype=F64), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("n_steps", [1, 7])
def test_a_step_costs_six_force_and_six_velocity_evaluations(n_steps):
    """The last kick's force is the next step's first: 6 n + 1 calls of grad_q, 6 n of grad_p."""
    h = CountingPendulum()
    rollout(h, X0, 0.1, n_steps, method=METHOD)
    assert h.calls == {"grad_q": 6 * n_steps + 1, "grad_p": 6 * n_steps}


def test_output_follows_the_input_dtype(dtype, tol):
    h = Pendulum()
    out = rollout(h, X0.to(dtype), 0.2, 10, method=METHOD)
    assert out.dtype == dtype and out.shape == (3, 11, 2)
    assert torch.equal(out[:, 0], X0.to(dtype))
    reference = rollout(h, X0, 0.2, 10, method=METHOD).to(dtype)
    torch.testing.assert_close(out, reference, rtol=100 * tol, atol=100 * tol)


# --- accuracy --------------------------------------------------------------------------------


def test_non_unit_mass_follows_the_exact_solution():
    h = HarmonicOscillator(m=4.0, k=0.5, dof=2)
    x0 = 0.5 * torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    err = _final_error(h, x0, 2.0, 40, h.exact(x0, 2.0))
    assert err < 1e-6
    unit_mass = HarmonicOscillator(m=1.0, k=0.5, dof=2)  # a drift by p instead of p/m matches this
    wrong = _final_error(h, x0, 2.0, 40, unit_mass.exact(x0, 2.0))
    assert wrong > 1e4 * err


def test_more_accurate_than_the_triple_jump_at_equal_cost():
    """yoshida4 costs 3 + 3 evaluations per step, blanes-moan4 6 + 6: compare at dt and dt/2."""
    h = Pendulum()
    t_end = 20.0
    reference = pendulum_reference(h, X0, t_end)
    ours = _final_error(h, X0, t_end, 100, reference)
    triple_jump = _final_error(h, X0, t_end, 200, reference, method="yoshida4")
    assert ours < triple_jump / 10


# --- geometry --------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [0.05, 0.3, 1.0])
def test_one_step_map_is_symplectic(dt):
    assert assert_symplectic((Pendulum(), METHOD, dt), X0, tol=1e-12) <= 1e-12


def test_symplectic_in_several_degrees_of_freedom():
    h = HarmonicOscillator(m=0.7, k=2.0, dof=3)
    x = 0.5 * torch.randn(4, 6, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert_symplectic((h, METHOD, 0.2), x, tol=1e-12)


# --- differentiability -----------------------------------------------------------------------


def test_gradient_to_the_initial_state_matches_finite_differences():
    h = Pendulum()
    x0 = X0[:2].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: rollout(h, x, 0.2, 5, method=METHOD), (x0,))
