"""hamgrad.testing's gradient-field helpers pass on gradient fields and fail on others."""

from __future__ import annotations

import pytest
import torch

from hamgrad.models import build_model
from hamgrad.testing import assert_conservative, assert_monotone, field_jacobian

F64 = torch.float64


def _points(n=40, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(n, d, generator=gen, dtype=F64) - 1


def _quadratic(matrix):
    """The field x ↦ A x (the gradient of ½xᵀAx when A is symmetric)."""
    return lambda x: x @ matrix.T


def test_field_jacobian_of_linear_and_nonlinear_fields():
    a = torch.tensor([[2.0, 1.0, 0.0], [-1.0, 3.0, 0.5], [0.0, 4.0, 1.0]], dtype=F64)
    x = _points()
    assert torch.equal(field_jacobian(_quadratic(a), x), a.expand(40, 3, 3))
    # f(x) = sin(x) elementwise: J = diag(cos x)
    jac = field_jacobian(torch.sin, x)
    assert torch.allclose(jac, torch.diag_embed(torch.cos(x)), rtol=0, atol=1e-15)


def test_conservative_passes_on_gradient_fields():
    x = _points()
    sym = torch.tensor([[2.0, 1.0, 0.0], [1.0, -3.0, 0.5], [0.0, 0.5, 1.0]], dtype=F64)
    assert assert_conservative(_quadratic(sym), x) <= 1e-15

    def grad_of_nonquadratic(x):  # ∇(Σ cos(x_i x_{i+1}) + Σ x_i^4)
        xr = x
        return torch.func.grad(lambda y: torch.cos(y[:-1] * y[1:]).sum() + (y**4).sum())(xr)

    assert assert_conservative(torch.vmap(grad_of_nonquadratic), x) <= 1e-12


def test_conservative_fails_on_rotation_and_mlp():
    x = _points()
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    with pytest.raises(AssertionError, match="not conservative") as err:
        assert_conservative(_quadratic(rotation), x)
    assert "asymmetry" in str(err.value)
    mlp = build_model("mlp", 3, width=8, seed=0, dtype=F64)
    with pytest.raises(AssertionError, match="not conservative"):
        assert_conservative(mlp, x)


def test_small_asymmetry_detected_at_the_tolerance():
    x = _points()
    eps = 1e-6
    almost = torch.tensor([[1.0, eps, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    with pytest.raises(AssertionError):
        assert_conservative(_quadratic(almost), x)  # default float64 tolerance 1e-10
    assert assert_conservative(_quadratic(almost), x, rtol=1e-5) < 1e-5


def test_monotone_passes_on_convex_and_fails_on_indefinite():
    x = _points()
    convex = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]], dtype=F64)
    assert assert_monotone(_quadratic(convex), x) > 0
    semidefinite = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    assert assert_monotone(_quadratic(semidefinite), x) >= -1e-15
    indefinite = torch.tensor([[1.0, 0.0, 0.0], [0.0, -0.5, 0.0], [0.0, 0.0, 2.0]], dtype=F64)
    with pytest.raises(AssertionError, match="smallest Jacobian eigenvalue"):
        assert_monotone(_quadratic(indefinite), x)
    rotation = torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    with pytest.raises(AssertionError, match="not symmetric"):
        assert_monotone(_quadratic(rotation), x)  # monotone in the ⟨f(x)−f(y), x−y⟩ sense only


def test_monotone_on_models():
    x = _points(30, 2)
    assert_monotone(build_model("mgradnet-c", 2, width=6, seed=1, dtype=F64), x)
    assert_monotone(build_model("mgradnet-m", 2, width=6, seed=1, dtype=F64), x)


def test_float32_default_tolerance():
    x = _points().float()
    sym = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])
    assert assert_conservative(_quadratic(sym), x) <= 1e-4


def test_bad_points():
    with pytest.raises(ValueError, match="points"):
        assert_conservative(torch.sin, torch.zeros(3))
    with pytest.raises(ValueError, match="points"):
        assert_conservative(torch.sin, torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="field must map"):
        assert_conservative(lambda x: x.sum(-1), torch.zeros(3, 2))
