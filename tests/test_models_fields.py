"""The gradient networks are gradient fields: symmetric (and, when monotone, PSD) Jacobians,
potentials whose gradient is the output; batch shapes and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from hamgrad.models import MODEL_NAMES, build_model
from hamgrad.models.quadrature import panels_needed, ridge_integral
from hamgrad.testing import assert_conservative, assert_monotone, field_jacobian

F64 = torch.float64


def _points(n, dim, scale=2.0, seed=0, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, dim, generator=gen, dtype=dtype) - 1) * scale


cascade_configs = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["gradnet-c", "mgradnet-c"]),
        "dim": st.integers(1, 5),
        "width": st.integers(1, 10),
        "layers": st.integers(1, 5),
        "activation": st.sampled_from(["tanh", "wtanh"]),
        "seed": st.integers(0, 2**16),
    }
)
modular_configs = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["gradnet-m", "mgradnet-m"]),
        "dim": st.integers(1, 5),
        "width": st.integers(1, 10),
        "modules": st.integers(1, 5),
        "activation": st.sampled_from(["softmax", "wsoftmax", "tanh", "wtanh"]),
        "seed": st.integers(0, 2**16),
    }
)
gradnet_configs = st.one_of(cascade_configs, modular_configs)


def _build(config, **extra):
    config = dict(config)
    name, dim, width, seed = (config.pop(k) for k in ("name", "dim", "width", "seed"))
    return build_model(name, dim, width=width, seed=seed, dtype=F64, **config, **extra)


@settings(deadline=None, max_examples=25)
@given(config=gradnet_configs, fused=st.booleans())
def test_jacobian_symmetric_and_psd_when_monotone(config, fused):
    model = _build(config, fused=fused)
    x = _points(24, model.dim, scale=3.0, seed=config["seed"])
    assert assert_conservative(model, x, rtol=1e-10) <= 1e-10
    if model.monotone:
        assert assert_monotone(model, x, rtol=1e-10, tol=1e-10) >= -1e-10


@pytest.mark.parametrize(
    ("name", "activation"),
    [("gradnet-c", "tanh"), ("gradnet-c", "wtanh")]
    + [("gradnet-m", a) for a in ("tanh", "wtanh", "softmax", "wsoftmax")],
)
def test_general_nets_have_indefinite_jacobians(name, activation):
    """The PSD check discriminates: the general networks are not monotone somewhere."""
    x = _points(200, 3, scale=3.0)
    found = 0
    for seed in range(3):
        model = build_model(name, 3, width=8, activation=activation, seed=seed, dtype=F64)
        assert_conservative(model, x)
        with pytest.raises(AssertionError, match="not monotone"):
            assert_monotone(model, x)
        jac = field_jacobian(model, x)
        eig = torch.linalg.eigvalsh(jac)
        found += int((eig[:, 0] < -1e-3 * eig.abs().amax(-1)).any())
        monotone = build_model("m" + name, 3, width=8, activation=activation, seed=seed)
        assert_monotone(monotone.double(), x)
    assert found == 3


def test_hnn_is_conservative_mlp_is_not():
    x = _points(30, 4, seed=3)
    assert_conservative(build_model("hnn", 4, width=16, dtype=F64), x)
    with pytest.raises(AssertionError, match="not conservative"):
        assert_conservative(build_model("mlp", 4, width=16, dtype=F64), x)


def _potential_gradient_error(model, x):
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.potential(xr).sum(), xr)
    field = model(x)
    return float(torch.linalg.norm(grad - field.detach()) / torch.linalg.norm(field.detach()))


@settings(deadline=None, max_examples=25)
@given(config=gradnet_configs, scale=st.sampled_from([0.5, 3.0, 20.0]))
def test_potential_gradient_is_the_field(config, scale):
    model = _build(config)
    x = _points(16, model.dim, scale=scale, seed=config["seed"] + 1)
    assert _potential_gradient_error(model, x) <= 1e-8


def test_hnn_potential_gradient_is_the_field():
    model = build_model("hnn", 3, width=20, dtype=F64, seed=0)
    assert _potential_gradient_error(model, _points(20, 3)) <= 1e-12


def _scipy_ridge_integral(model, unit: int, upper: float) -> float:
    """∫₀^upper φ_unit(t) dt of the cascade's 1-D profile by scipy's adaptive quad (width 5)."""

    def phi(t):
        row = torch.zeros(1, 5, dtype=F64)
        row[0, unit] = t
        with torch.no_grad():
            return float(model.profile(row)[0, unit])

    return quad(phi, 0.0, upper, epsabs=1e-13, epsrel=1e-13, limit=200)[0]


@pytest.mark.parametrize("name", ["gradnet-c", "mgradnet-c"])
def test_cascade_potential_against_independent_quadrature(name):
    """Φ_i(s) = ∫₀ˢ φ_i from the Gauss–Legendre rule agrees with scipy's adaptive quad."""
    model = build_model(name, 2, width=5, layers=4, seed=4, dtype=F64)
    s = torch.tensor([[-7.0, -1.3, 0.0, 2.2, 11.0]], dtype=F64)
    with torch.no_grad():
        ours = ridge_integral(model.profile, s, model.profile_gain())[0]
    for i in range(5):
        expected = _scipy_ridge_integral(model, i, float(s[0, i]))
        assert abs(float(ours[i]) - expected) <= 1e-11 * max(1.0, abs(expected))


@settings(deadline=None, max_examples=15)
@given(config=cascade_configs, scale=st.sampled_from([1.0, 10.0, 50.0]))
def test_cascade_quadrature_converged(config, scale):
    """The default rule agrees with one using 4x the panels and 3x the nodes per panel."""
    model = _build(config)
    x = _points(8, model.dim, scale=scale, seed=config["seed"])
    s = x @ model.weight.T
    gain = model.profile_gain()
    with torch.no_grad():
        ours = ridge_integral(model.profile, s, gain)
        ref = ridge_integral(
            model.profile, s, gain, nodes_per_panel=48, n_panels=4 * panels_needed(s, gain)
        )
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max() + 1))


def test_modular_potential_closed_form_against_line_integral():
    """F(x) − F(y) equals ∫₀¹ f(y + t(x − y))·(x − y) dt (high-order quadrature)."""
    for name, activation in [("gradnet-m", "wsoftmax"), ("mgradnet-m", "softmax")]:
        model = build_model(name, 3, width=6, activation=activation, seed=2, dtype=F64)
        x, y = _points(4, 3, seed=1), _points(4, 3, seed=2)
        nodes, weights = np.polynomial.legendre.leggauss(60)
        t = torch.tensor((nodes + 1) / 2, dtype=F64)
        w = torch.tensor(weights / 2, dtype=F64)
        path = y[None] + t[:, None, None] * (x - y)[None]  # (T, B, d)
        with torch.no_grad():
            line = torch.einsum("t,tb->b", w, (model(path) * (x - y)[None]).sum(-1))
            diff = model.potential(x) - model.potential(y)
        assert torch.allclose(diff, line, rtol=1e-12, atol=1e-12)


# -- batch shapes, dtypes, devices ----------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (0,)])
def test_batch_shapes(name, shape, dtype):
    model = build_model(name, 3, width=4, seed=0, dtype=dtype)
    x = torch.randn(*shape, 3, dtype=dtype, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (*shape, 3) and out.dtype == dtype
    if model.conservative:
        pot = model.potential(x)
        assert pot.shape == shape and pot.dtype == dtype
    # each sample is independent of the others in its batch (to round-off: a batched product
    # may sum in another order, so entries near 0 are held to the output's scale)
    if len(shape) == 2:
        single = model(x[1, 2])
        tol = (1e-5 if dtype == torch.float32 else 1e-12) * float(out.detach().abs().max())
        torch.testing.assert_close(single, out[1, 2], rtol=0, atol=tol)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_dtype_follows_input(name):
    model = build_model(name, 2, width=3, seed=0)  # float32 parameters
    x = torch.randn(4, 2, dtype=F64)
    assert model(x).dtype == F64
    assert model.double()(x.float()).dtype == torch.float32
    assert model(x).device == x.device


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_no_grad_and_training(name):
    model = build_model(name, 3, width=5, seed=1)
    x = torch.randn(7, 3)
    with torch.no_grad():
        quiet = model(x)
    assert not quiet.requires_grad
    out = model(x)
    assert out.requires_grad
    assert torch.allclose(out, quiet)
    loss = ((out - 1.0) ** 2).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# -- the tabulated ridge quadrature used by the cascade potentials (trained-like parameters) ------


def _scaled_cascade(name, dim, factor, seed=0):
    """A cascade whose parameters are scaled up as after training (large profile gains)."""
    model = build_model(name, dim, width=64, seed=seed, dtype=F64)
    with torch.no_grad():
        for attr in ("weight", "bias", "alpha", "beta"):
            getattr(model, attr).mul_(factor)
    return model


def _counting_profile(model, x, counter):
    beta, cb, P, Q = model.core_coefficients(x)
    from hamgrad.models.cascade_kernel import cascade_core_reference

    def prof(t, units):
        counter[0] += t.numel()
        if units is None:
            return cascade_core_reference(t, beta, cb, P, Q)
        return cascade_core_reference(t, beta[:, units], cb[:, units], P[:, units], Q[:, units])

    return prof


@pytest.mark.parametrize(("name", "dim", "factor"), [("gradnet-c", 2, 5.0), ("mgradnet-c", 4, 3.0)])
def test_scaled_cascade_potential_gradient_and_reference(name, dim, factor):
    model = _scaled_cascade(name, dim, factor)
    x = _points(400, dim, scale=3.0, seed=5)
    assert _potential_gradient_error(model, x) <= 1e-8
    # against the plain composite rule with twice the panels and 3x the nodes (a few states)
    xs = x[:6]
    s = xs @ model.weight.T
    gain = model.profile_gain()
    with torch.no_grad():
        ref = (
            ridge_integral(
                model.profile, s, gain, nodes_per_panel=48, n_panels=2 * panels_needed(s, gain)
            ).sum(-1)
            + xs @ model.out_bias
        )
        ours = model.potential(xs)
    assert torch.allclose(ours, ref, rtol=1e-11, atol=1e-11 * float(ref.abs().max() + 1))


def test_tabulated_quadrature_evaluation_count_is_bounded():
    """Profile evaluations: nodes·(N·h + Σ_i panels_i), not nodes·N·h·(batch-wide panels)."""
    from hamgrad.models.quadrature import NODES_PER_PANEL, ridge_integral_tabulated

    model = _scaled_cascade("mgradnet-c", 2, 5.0)
    x = _points(2000, 2, scale=3.0, seed=7)
    s = x @ model.weight.T
    gain = model.profile_gain()
    counter = [0]
    with torch.no_grad():
        ours = ridge_integral_tabulated(_counting_profile(model, x, counter), s, gain)
    n, h = s.shape
    per_unit = torch.ceil(s.amax(0).clamp(min=0) * gain).clamp(min=1) + torch.ceil(
        (-s.amin(0)).clamp(min=0) * gain
    ).clamp(min=1)
    bound = NODES_PER_PANEL * (n * h + int(per_unit.sum()))
    assert counter[0] <= bound
    assert counter[0] * 20 < NODES_PER_PANEL * n * h * panels_needed(s, gain)
    # same values as the plain rule on a few samples
    with torch.no_grad():
        plain = ridge_integral(model.profile, s[:5], gain, n_panels=panels_needed(s, gain))
    assert torch.allclose(ours[:5], plain, rtol=1e-12, atol=1e-12 * float(plain.abs().max() + 1))


@pytest.mark.parametrize("name", ["gradnet-c", "mgradnet-c"])
def test_tabulated_quadrature_against_scipy(name):
    from hamgrad.models.quadrature import ridge_integral_tabulated

    model = build_model(name, 2, width=5, layers=4, seed=4, dtype=F64)
    s = torch.tensor([[-7.0, -1.3, 0.0, 2.2, 11.0], [3.0, 0.4, -2.0, -5.5, 0.0]], dtype=F64)
    with torch.no_grad():
        ours = ridge_integral_tabulated(_counting_profile(model, s, [0]), s, model.profile_gain())
    for r in range(2):
        for i in range(5):
            expected = _scipy_ridge_integral(model, i, float(s[r, i]))
            assert abs(float(ours[r, i]) - expected) <= 1e-11 * max(1.0, abs(expected))
