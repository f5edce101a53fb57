"""rollout() and the integrator registry: shapes, dtypes, errors, divergence, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_integrators_systems import (
    AutogradHamiltonian,
    DoublePendulum,
    HarmonicOscillator,
    LearnableOscillator,
    Pendulum,
)

from hamgrad.errors import ConvergenceError, DivergenceError
from hamgrad.integrators import (
    Integrator,
    get_integrator,
    integrator_names,
    integrators_table,
    list_integrators,
    rollout,
)
from hamgrad.integrators.splitting import YOSHIDA4_WEIGHTS, YOSHIDA6_WEIGHTS, YOSHIDA8_WEIGHTS

F64 = torch.float64
SPLITTING = ["leapfrog", "symplectic-euler", "yoshida4", "yoshida6", "yoshida8", "blanes-moan4"]
FIXED_GRID = ["euler", "midpoint", "heun2", "heun3", "rk4"]
ADAPTIVE = ["dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive-heun"]
ALL = [*SPLITTING, "implicit-midpoint", *FIXED_GRID, *ADAPTIVE]


def states(b: int, dim: int = 2, dtype=F64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (0.5 * torch.randn(b, dim, generator=gen, dtype=F64)).to(dtype)


# --- registry -------------------------------------------------------------------------------


def test_every_method_is_registered_and_described():
    infos = {i.name: i for i in list_integrators()}
    assert set(ALL) <= set(infos) and set(infos) == set(integrator_names())
    expected_order = {"leapfrog": 2, "symplectic-euler": 1, "yoshida4": 4, "yoshida6": 6}
    expected_order |= {"yoshida8": 8, "blanes-moan4": 4, "implicit-midpoint": 2, "euler": 1}
    expected_order |= {"rk4": 4, "dopri5": 5}
    for name, order in expected_order.items():
        assert infos[name].order == order
    for name in SPLITTING:
        assert infos[name].symplectic and infos[name].separable_only
    assert infos["implicit-midpoint"].symplectic and not infos["implicit-midpoint"].separable_only
    for name in FIXED_GRID + ADAPTIVE:
        assert not infos[name].symplectic and not infos[name].separable_only
        assert infos[name].adaptive == (name in ADAPTIVE)
    table = integrators_table()
    assert all(name in table for name in ALL) and "symplectic" in table


def test_adding_a_method_is_one_class():
    from hamgrad.integrators import register_integrator
    from hamgrad.integrators.base import _REGISTRY
    from hamgrad.integrators.splitting import SplittingIntegrator

    @register_integrator("test-position-verlet")
    class PositionVerlet(SplittingIntegrator):
        order, symmetric, summary = 2, True, "drift-kick-drift"
        kicks, drifts = (0.0, 1.0, 0.0), (0.5, 0.5)

    try:
        h = HarmonicOscillator()
        x0 = states(3)
        traj = rollout(h, x0, 0.01, 100, method="test-position-verlet")
        exact = h.exact(x0, 1.0)
        assert (traj[:, -1] - exact).abs().max() < 1e-4
        assert "test-position-verlet" in integrator_names()
    finally:
        del _REGISTRY["test-position-verlet"]


# --- shapes, dtypes, batching ----------------------------------------------------------------


@pytest.mark.parametrize("method", ALL)
def test_shape_initial_state_and_dtype(method, dtype):
    h = HarmonicOscillator(dof=2)
    x0 = states(3, 4, dtype)
    traj = rollout(h, x0, 0.05, 6, method=method, save_every=2)
    assert traj.shape == (3, 4, 4) and traj.dtype == dtype
    assert torch.equal(traj[:, 0], x0)
    exact = h.exact(x0.double(), 0.3)
    assert (traj[:, -1].double() - exact).abs().max() < (
        2e-2 if method in ("euler", "symplectic-euler") else 1e-3
    )


@pytest.mark.parametrize("method", ["leapfrog", "yoshida4", "implicit-midpoint", "rk4", "dopri5"])
def test_float32_follows_float64(method):
    h = Pendulum()
    x0 = states(4)
    t64 = rollout(h, x0, 0.05, 40, method=method)
    t32 = rollout(h, x0.float(), 0.05, 40, method=method)
    assert t32.dtype == torch.float32
    torch.testing.assert_close(t32.double(), t64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["leapfrog", "yoshida8", "implicit-midpoint", "rk4", "dopri5"])
def test_batch_equals_single_trajectories(method):
    h = Pendulum()
    x0 = states(5)
    batch = rollout(h, x0, 0.1, 20, method=method)
    for b in range(5):
        single = rollout(h, x0[b : b + 1], 0.1, 20, method=method)
        # adaptive step control sees the whole batch: equal to its tolerance only
        tol = {"dopri5": 1e-6, "implicit-midpoint": 1e-10}.get(method, 1e-13)
        torch.testing.assert_close(single[0], batch[b], rtol=tol, atol=tol)


def test_save_every_keeps_every_kth_state():
    h = Pendulum()
    x0 = states(2)
    full = rollout(h, x0, 0.1, 12, method="yoshida4")
    sparse = rollout(h, x0, 0.1, 12, method="yoshida4", save_every=4)
    assert sparse.shape == (2, 4, 2)
    torch.testing.assert_close(sparse, full[:, ::4], rtol=0, atol=0)
    rk = rollout(h, x0, 0.1, 12, method="rk4", save_every=3)
    torch.testing.assert_close(rk, rollout(h, x0, 0.1, 12, method="rk4")[:, ::3])


def test_leading_axes_and_single_state():
    h = Pendulum()
    x = states(6).reshape(2, 3, 2)
    traj = rollout(h, x, 0.1, 5)
    assert traj.shape == (2, 3, 6, 2)
    torch.testing.assert_close(traj.reshape(6, 6, 2), rollout(h, x.reshape(6, 2), 0.1, 5))
    single = rollout(h, x[0, 0], 0.1, 5)
    assert single.shape == (6, 2)
    torch.testing.assert_close(single, traj[0, 0])


def test_long_rollout_crosses_several_blocks():
    from hamgrad.integrators.recorder import BLOCK

    h = HarmonicOscillator()
    x0 = states(2)
    n = 2 * BLOCK + 7
    traj = rollout(h, x0, 0.01, n)
    assert traj.shape == (2, n + 1, 2)
    assert (traj[:, -1] - h.exact(x0, 0.01 * n)).abs().max() < 1e-4
    with torch.no_grad():
        torch.testing.assert_close(rollout(h, x0, 0.01, n), traj, rtol=0, atol=0)


# --- the mass: the drift uses ∂H/∂p, never p itself ---------------------------------------------


@settings(deadline=None, max_examples=25)
@given(
    m=st.floats(0.2, 5.0),
    k=st.floats(0.2, 5.0),
    dt=st.floats(-0.5, 0.5).filter(lambda v: abs(v) > 1e-3),
    q=st.floats(-2, 2),
    p=st.floats(-2, 2),
)
def test_leapfrog_step_is_kick_drift_kick_with_grad_p(m, k, dt, q, p):
    h = HarmonicOscillator(m=m, k=k)
    x1 = rollout(h, torch.tensor([[q, p]], dtype=F64), dt, 1)[0, 1]
    p_half = p - dt / 2 * k * q
    q1 = q + dt * p_half / m
    p1 = p_half - dt / 2 * k * q1
    torch.testing.assert_close(x1, torch.tensor([q1, p1], dtype=F64), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("method", [*SPLITTING, "implicit-midpoint", "rk4"])
def test_non_unit_mass_follows_exact_solution(method):
    h = HarmonicOscillator(m=4.0, k=0.5, dof=2)
    x0 = states(3, 4)
    dt = 0.005 if method == "symplectic-euler" else 0.05
    n = round(2.0 / dt)
    err = (rollout(h, x0, dt, n, method=method)[:, -1] - h.exact(x0, 2.0)).abs().max()
    assert err < (2e-3 if method == "symplectic-euler" else 1e-4)
    h1 = HarmonicOscillator(m=1.0, k=0.5, dof=2)  # a drift by p instead of p/m would match this
    wrong = (rollout(h, x0, dt, n, method=method)[:, -1] - h1.exact(x0, 2.0)).abs().max()
    assert wrong > 100 * err


@settings(deadline=None, max_examples=10)
@given(dt=st.floats(0.01, 0.4), q=st.floats(-2, 2), p=st.floats(-2, 2))
def test_compositions_are_leapfrog_steps_with_their_weights(dt, q, p):
    h = Pendulum()
    x0 = torch.tensor([[q, p]], dtype=F64)
    for method, weights in [
        ("yoshida4", YOSHIDA4_WEIGHTS),
        ("yoshida6", YOSHIDA6_WEIGHTS),
        ("yoshida8", YOSHIDA8_WEIGHTS),
    ]:
        assert math.isclose(math.fsum(weights), 1.0, abs_tol=1e-15)
        x = x0
        for w in weights:
            x = rollout(h, x, w * dt, 1)[:, -1]
        torch.testing.assert_close(rollout(h, x0, dt, 1, method=method)[:, -1], x)


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_method_lists_the_methods():
    with pytest.raises(ValueError, match="unknown integration method 'verlet'.*leapfrog.*rk4"):
        rollout(Pendulum(), states(1), 0.1, 5, method="verlet")


@pytest.mark.parametrize("method", SPLITTING)
def test_separable_only_method_refuses_non_separable_h(method):
    with pytest.raises(ValueError, match=f"{method}.*separable.*implicit-midpoint.*rk4"):
        rollout(DoublePendulum(), states(1, 4), 0.1, 5, method=method)


def test_separable_flag_without_parts_is_a_type_error():
    class Broken(HarmonicOscillator):
        grad_p = None

    with pytest.raises(TypeError, match="grad_p"):
        rollout(Broken(), states(1), 0.1, 5)


def test_not_a_hamiltonian():
    with pytest.raises(TypeError, match="Hamiltonian protocol"):
        rollout(object(), states(1), 0.1, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"n_steps": -3}, ValueError, "n_steps"),
        ({"n_steps": 2.5}, TypeError, "n_steps"),
        ({"dt": 0.0}, ValueError, "dt"),
        ({"dt": float("nan")}, ValueError, "dt"),
        ({"dt": float("inf")}, ValueError, "dt"),
        ({"save_every": 0}, ValueError, "save_every"),
        ({"save_every": 3}, ValueError, "save_every must divide n_steps"),
        ({"x0": torch.zeros(2, 3, dtype=F64)}, ValueError, "x0 must have last axis of length 2"),
        ({"x0": torch.zeros(2, 2, dtype=torch.int64)}, TypeError, "floating-point"),
        ({"x0": torch.tensor([[0.0, float("nan")]])}, ValueError, "finite"),
        ({"tol": 1e-8}, TypeError, "unknown option.*'leapfrog'"),
        ({"method": "rk4", "rtol": 1e-3}, TypeError, "step_size"),
        ({"method": "implicit-midpoint", "solver": "magic"}, ValueError, "solver"),
        ({"method": "implicit-midpoint", "max_iter": 0}, ValueError, "max_iter"),
        ({"method": "dopri5", "rtol": -1.0}, ValueError, "rtol"),
    ],
)
def test_bad_arguments(kwargs, error, pattern):
    args = {"h": Pendulum(), "x0": states(2), "dt": 0.1, "n_steps": 4, **kwargs}
    with pytest.raises(error, match=pattern):
        rollout(**args)


@pytest.mark.parametrize("method", ["leapfrog", "implicit-midpoint", "rk4"])
def test_negative_dt_integrates_backward(method):
    h = HarmonicOscillator()
    x0 = states(2)
    traj = rollout(h, x0, -0.01, 100, method=method)
    assert (traj[:, -1] - h.exact(x0, -1.0)).abs().max() < 1e-4


# --- divergence and convergence failures -------------------------------------------------------


class Cliff:
    """H = p + V(q) with V'(q) = −sqrt(1.05 − q): q grows by dt per step, the force is NaN past q = 1.05."""

    dof, dim, separable = 1, 2, True

    def grad_q(self, q):
        return -torch.sqrt(1.05 - q)

    def grad_p(self, p):
        return torch.ones_like(p)

    def grad(self, x):
        return torch.cat((self.grad_q(x[..., :1]), self.grad_p(x[..., 1:])), -1)


@pytest.mark.parametrize("method", ["leapfrog", "rk4", "yoshida4"])
@pytest.mark.parametrize("grad", [False, True])
def test_divergence_names_step_and_trajectories(method, grad):
    x0 = torch.tensor([[-20.0, 0.0], [0.0, 0.0], [-30.0, 1.0], [0.0, 2.0]], dtype=F64)
    x0.requires_grad_(grad)
    expected = {"leapfrog": 11, "rk4": 11, "yoshida4": 11}[method]
    with pytest.raises(DivergenceError, match=rf"at step {expected} .*trajectories \[1, 3\]"):
        rollout(Cliff(), x0, 0.1, 200, method=method)


def test_adaptive_divergence_names_time_and_trajectories():
    x0 = torch.tensor([[-20.0, 0.0], [0.0, 0.0], [-30.0, 1.0]], dtype=F64)
    with pytest.raises(DivergenceError, match=r"step size collapsed.*after t = 0\.\d+.*\[1\]"):
        rollout(Cliff(), x0, 0.1, 200, method="dopri5")


def test_divergence_with_save_every_names_the_interval():
    x0 = torch.tensor([[0.0, 0.0]], dtype=F64)
    with pytest.raises(DivergenceError, match=r"between steps 10 and 15"):
        rollout(Cliff(), x0, 0.1, 200, save_every=5)


def test_unstable_step_diverges_with_an_error_not_nan():
    with pytest.raises(DivergenceError, match="non-finite"):
        rollout(HarmonicOscillator(k=100.0, m=1.0), states(3), 0.5, 2000)
    with pytest.raises(DivergenceError):
        rollout(HarmonicOscillator(k=100.0, m=1.0), states(3), 0.5, 2000, method="rk4")


def test_implicit_midpoint_reports_non_convergence():
    h = HarmonicOscillator(
        k=100.0, m=1.0
    )  # dt/2 · ω = 3: the fixed-point iteration cannot contract
    x0 = states(3)
    with pytest.raises(ConvergenceError, match=r"step 1 .*trajectories \[0, 1, 2\]"):
        rollout(h, x0, 0.6, 5, method="implicit-midpoint")
    with pytest.raises(ConvergenceError, match="max_iter=2"):
        rollout(Pendulum(), x0, 0.1, 5, method="implicit-midpoint", max_iter=2)
    # Newton solves the (linear) step exactly, and the midpoint rule stays on the energy shell
    traj = rollout(h, x0, 0.6, 5, method="implicit-midpoint", solver="newton")
    energy = h.hamiltonian(traj)
    torch.testing.assert_close(energy, energy[:, :1].expand_as(energy), rtol=1e-12, atol=1e-12)


def test_newton_and_fixed_point_agree():
    h = DoublePendulum()
    x0 = states(4, 4)
    a = rollout(h, x0, 0.05, 20, method="implicit-midpoint", tol=1e-14)
    b = rollout(h, x0, 0.05, 20, method="implicit-midpoint", tol=1e-14, solver="newton")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# --- differentiability -------------------------------------------------------------------------


def _finite_difference(fn, params, eps=1e-6):
    out = []
    for p in params:
        g = torch.zeros_like(p)
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            plus = fn().item()
            flat[i] = old - eps
            minus = fn().item()
            flat[i] = old
            g.view(-1)[i] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("leapfrog", {}),
        ("yoshida4", {}),
        ("symplectic-euler", {}),
        ("implicit-midpoint", {"tol": 1e-14}),
        ("implicit-midpoint", {"tol": 1e-14, "solver": "newton"}),
        ("rk4", {}),
        ("rk4", {"adjoint": True, "step_size": 0.01}),
        ("dopri5", {"adjoint": True, "rtol": 1e-10, "atol": 1e-12}),
    ],
)
def test_gradients_to_parameters_and_x0_match_finite_differences(method, options):
    h = LearnableOscillator()
    target = states(3, seed=4)
    x0 = states(3).requires_grad_(True)

    def loss():
        traj = rollout(h, x0, 0.1, 15, method=method, save_every=5, **options)
        return ((traj[:, 1:] - target[:, None]) ** 2).sum()

    grads = torch.autograd.grad(loss(), [h.log_m, h.log_k, x0])
    with torch.no_grad():
        fd = _finite_difference(loss, [h.log_m, h.log_k, x0])
    tol = 1e-5 if method == "dopri5" else 1e-7
    for g, f in zip(grads, fd, strict=True):
        torch.testing.assert_close(g, f, rtol=tol, atol=tol)


@pytest.mark.parametrize("solver", ["fixed-point", "newton"])
def test_implicit_midpoint_gradient_through_autograd_hamiltonian(solver):
    """An HNN-like joint H (∇H by autograd): implicit-function gradients match finite differences."""
    h = AutogradHamiltonian(width=4)
    x0 = states(2).requires_grad_(True)

    def loss():
        traj = rollout(h, x0, 0.1, 6, method="implicit-midpoint", tol=1e-14, solver=solver)
        return (traj[:, -1] ** 2).sum() + traj[:, 3, 0].sum()

    params = [h.w1, h.b1, x0]
    grads = torch.autograd.grad(loss(), params)
    with torch.no_grad():
        fd = _finite_difference(loss, params)
    for g, f in zip(grads, fd, strict=True):
        torch.testing.assert_close(g, f, rtol=1e-7, atol=1e-8)


def test_jacobian_of_implicit_midpoint_on_double_pendulum_matches_finite_differences():
    h = DoublePendulum()
    x0 = states(1, 4)[0]
    step = lambda x: rollout(h, x, 0.1, 3, method="implicit-midpoint", tol=1e-15)[-1]  # noqa: E731
    jac = torch.autograd.functional.jacobian(step, x0)
    eps = 1e-6
    fd = torch.stack(
        [(step(x0 + eps * e) - step(x0 - eps * e)) / (2 * eps) for e in torch.eye(4, dtype=F64)], 1
    )
    torch.testing.assert_close(jac, fd, rtol=1e-7, atol=1e-8)


def test_adjoint_works_with_autograd_hamiltonian():
    h = AutogradHamiltonian()
    x0 = states(3)
    # the adjoint solves the continuous adjoint equation on the same grid: its gradients equal the
    # discrete ones up to the discretisation error, made small here with step_size
    plain = rollout(h, x0, 0.1, 10, method="rk4", step_size=0.01)
    adj = rollout(h, x0, 0.1, 10, method="rk4", adjoint=True, step_size=0.01)
    torch.testing.assert_close(plain, adj)
    g1 = torch.autograd.grad(plain[:, -1].sum(), h.w2)[0]
    g2 = torch.autograd.grad(adj[:, -1].sum(), h.w2)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-7, atol=1e-7)
    with torch.no_grad():
        again = rollout(h, x0, 0.1, 10, method="rk4", adjoint=True, step_size=0.01)
    torch.testing.assert_close(again, plain)


@pytest.mark.parametrize("method", ["leapfrog", "implicit-midpoint"])
def test_training_through_a_rollout_recovers_the_stiffness(method):
    truth = HarmonicOscillator(m=2.0, k=3.0)
    x0 = states(8)
    data = rollout(truth, x0, 0.1, 20, method="yoshida8")
    model = LearnableOscillator(m=2.0, k=1.0)
    model.log_m.requires_grad_(False)
    opt = torch.optim.LBFGS([model.log_k], lr=1.0, max_iter=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((rollout(model, x0, 0.1, 20, method=method) - data) ** 2).mean()
        loss.backward()
        return loss

    first = closure().item()
    opt.step(closure)
    assert closure().item() < 1e-3 * first
    assert abs(model.log_k.exp().item() - 3.0) < 0.05
    assert abs(model.log_k.exp().item() - 3.0) < 0.05


def test_no_graph_without_grad():
    h = LearnableOscillator()
    with torch.no_grad():
        traj = rollout(h, states(2), 0.1, 10)
    assert not traj.requires_grad
    assert rollout(Pendulum(), states(2), 0.1, 10).grad_fn is None
    assert rollout(h, states(2), 0.1, 10).requires_grad


def test_integrator_instance_as_method():
    integ = get_integrator("implicit-midpoint", tol=1e-13)
    assert isinstance(integ, Integrator)
    a = rollout(Pendulum(), states(2), 0.1, 5, method=integ)
    b = rollout(Pendulum(), states(2), 0.1, 5, method="implicit-midpoint", tol=1e-13)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(TypeError, match="options"):
        rollout(Pendulum(), states(2), 0.1, 5, method=integ, tol=1e-3)


def test_fixed_grid_step_size_option():
    h = HarmonicOscillator()
    x0 = states(2)
    exact = h.exact(x0, 2.0)
    coarse = (rollout(h, x0, 0.2, 10, method="rk4")[:, -1] - exact).abs().max()
    fine = (rollout(h, x0, 0.2, 10, method="rk4", step_size=0.05)[:, -1] - exact).abs().max()
    assert fine < coarse / 100  # 4th order: 4x smaller step, ~256x smaller error
    odd = rollout(h, x0, 0.2, 10, method="rk4", step_size=0.03)  # not a divisor: interpolated
    assert (odd[:, -1] - exact).abs().max() < 1e-3


def test_every_registered_system_rolls_out():
    """The Hamiltonian protocol as hamgrad.systems implements it: each system runs with a method
    that fits it and keeps its energy to the method's accuracy."""
    from hamgrad.systems import get_system, list_systems

    for name in list_systems("dynamics"):
        system = get_system(name)
        x0 = system.sample_initial(3, seed=0)
        method = "yoshida4" if system.separable else "implicit-midpoint"
        traj = rollout(system, x0, 0.005, 20, method=method)
        assert traj.shape == (3, 21, system.dim) and torch.equal(traj[:, 0], x0)
        energy = system.hamiltonian(traj)
        drift = (energy - energy[:, :1]).abs().max() / energy.abs().max()
        assert drift < 1e-5, (name, float(drift))
        if not system.separable:
            with pytest.raises(ValueError, match="separable"):
                rollout(system, x0, 0.005, 2, method="leapfrog")
