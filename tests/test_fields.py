"""Static gradient fields: analytic gradients, PolyMax's matrices and normalisation, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hamgrad.systems.fields  # noqa: F401  (registers the fields)
from hamgrad.systems import get_system, list_systems
from hamgrad.systems.fields import (
    POLYMAX_NORM_POINTS,
    POLYMAX_NORM_SEED,
    GradientField,
    polymax_matrices,
)

FIELDS = [("convex-2d", {}), ("nonconvex-2d", {}), ("polymax", {"dim": 2}), ("polymax", {"dim": 7})]


def autograd_grad(field: GradientField, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(field.potential(x).sum(), x)
    return g


def test_fields_are_registered_as_kind_field():
    names = list_systems(kind="field")
    assert {"convex-2d", "nonconvex-2d", "polymax"} <= set(names)
    for name in ("convex-2d", "nonconvex-2d", "polymax"):
        assert isinstance(get_system(name), GradientField)
        assert get_system(name).kind == "field"


@pytest.mark.parametrize(("name", "params"), FIELDS)
def test_analytic_gradient_matches_autograd_of_potential(name, params):
    field = get_system(name, **params)
    x = field.sample(500, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(field.grad(x), autograd_grad(field, x), rtol=0, atol=1e-12)


def test_convex_2d_formula_at_a_point():
    field = get_system("convex-2d")
    x = torch.tensor([0.3, 0.7], dtype=torch.float64)
    x1, x2 = 0.3, 0.7
    f = x1**4 + x1**2 / 2 + x1 * x2 / 2 + 1.5 * x2**2 - x2**3 / 3
    g = [4 * x1**3 + x1 + x2 / 2, 3 * x2 - x2**2 + x1 / 2]
    assert float(field.potential(x)) == pytest.approx(f, abs=1e-15)
    torch.testing.assert_close(
        field.grad(x), torch.tensor(g, dtype=torch.float64), rtol=0, atol=1e-15
    )


def test_nonconvex_2d_formula_at_a_point():
    field = get_system("nonconvex-2d")
    x1, x2 = 0.2, 0.9
    x = torch.tensor([x1, x2], dtype=torch.float64)
    g1 = math.pi / 2 * math.cos(2 * math.pi * x1) * math.cos(math.pi * x2) + x2 / 2
    g2 = -math.pi / 4 * math.sin(2 * math.pi * x1) * math.sin(math.pi * x2) + x1 / 2 - x2
    torch.testing.assert_close(
        field.grad(x), torch.tensor([g1, g2], dtype=torch.float64), rtol=0, atol=1e-15
    )


def test_convex_2d_hessian_is_positive_definite_on_the_box():
    field = get_system("convex-2d")
    for x in field.grid(9):
        hess = torch.autograd.functional.hessian(lambda v: field.potential(v), x)
        assert torch.linalg.eigvalsh(hess).min() > 0


@settings(deadline=None, max_examples=20)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=2),
    st.sampled_from(["convex-2d", "nonconvex-2d"]),
)
def test_2d_gradient_matches_central_differences(point, name):
    field = get_system(name)
    x = torch.tensor(point, dtype=torch.float64)
    h = 1e-6
    fd = torch.stack(
        [
            (field.potential(x + h * e) - field.potential(x - h * e)) / (2 * h)
            for e in torch.eye(2, dtype=torch.float64)
        ]
    )
    torch.testing.assert_close(field.grad(x), fd, rtol=0, atol=1e-8)


@pytest.mark.parametrize("dim", [2, 3, 5, 8, 32, 100])
def test_polymax_matrices_symmetric_positive_definite(dim):
    m = polymax_matrices(dim)
    assert m.shape == (3, dim, dim) and m.dtype == torch.float64
    torch.testing.assert_close(m, m.transpose(-1, -2), rtol=0, atol=0)
    assert torch.linalg.eigvalsh(m).min() > 0


def test_polymax_matrix_s_is_indefinite_at_dim_4():
    # The published formula gives S a negative eigenvalue at d = 4 (documented in polymax_matrices).
    eig = torch.linalg.eigvalsh(polymax_matrices(4))
    assert eig[0].min() < 0 and eig[1:].min() > 0


def test_polymax_matrices_entries():
    d = 5
    m = polymax_matrices(d)
    i, j = 1, 3  # 0-based -> a = (i + j) / (2d - 2)
    a = (i + j) / (2 * d - 2)
    t = 1 / (math.log(d) * (1 + abs(i - j)))
    assert float(m[0, i, j]) == pytest.approx((2 + math.sin(4 * math.pi * a)) * t, abs=1e-15)
    assert float(m[1, i, j]) == pytest.approx((1 + 2 * a) * t, abs=1e-15)
    assert float(m[2, i, j]) == pytest.approx((3 - 2 * a) * t, abs=1e-15)


@pytest.mark.parametrize("dim", [2, 16, 64])
def test_polymax_normalisation_constant_is_deterministic_and_mean_norm_is_one(dim):
    field = get_system("polymax", dim=dim)
    gen = torch.Generator().manual_seed(POLYMAX_NORM_SEED)
    x = torch.rand(POLYMAX_NORM_POINTS, dim, generator=gen, dtype=torch.float64)
    # on the normalisation sample itself the mean norm is 1 to round-off
    assert float(field.grad(x).norm(dim=-1).mean()) == pytest.approx(1.0, abs=1e-12)
    # on an independent sample it is 1 up to sampling error
    other = field.sample(POLYMAX_NORM_POINTS, generator=torch.Generator().manual_seed(123))
    assert float(field.grad(other).norm(dim=-1).mean()) == pytest.approx(1.0, abs=0.03)


def test_polymax_gradient_is_a_scaled_matrix_times_shift():
    field = get_system("polymax", dim=6)
    x = field.sample(200, generator=torch.Generator().manual_seed(5))
    u = x - 0.5
    forms = torch.einsum("kij,nj->kni", field.matrices, u)
    values = (forms * u).sum(-1)  # (3, n)
    best = values.argmax(0)
    expected = 2 * forms[best, torch.arange(200)] / field.norm_constant
    torch.testing.assert_close(field.grad(x), expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(field.potential(x), values.max(0).values / field.norm_constant)


def test_output_dtype_and_batch_shapes_follow_input():
    field = get_system("polymax", dim=3)
    x = torch.rand(4, 5, 3, dtype=torch.float32)
    assert field.grad(x).shape == (4, 5, 3) and field.grad(x).dtype == torch.float32
    assert field.potential(x).shape == (4, 5) and field.potential(x).dtype == torch.float32
    assert field.grad(x[0, 0]).shape == (3,)
    for name in ("convex-2d", "nonconvex-2d"):
        f2 = get_system(name)
        y = torch.rand(7, 2, dtype=torch.float32)
        assert f2.grad(y).dtype == torch.float32 and f2.potential(y).shape == (7,)


def test_sample_is_float64_in_the_box_and_seeded():
    field = get_system("polymax", dim=4)
    a = field.sample(1000, generator=torch.Generator().manual_seed(3))
    b = field.sample(1000, generator=torch.Generator().manual_seed(3))
    assert a.shape == (1000, 4) and a.dtype == torch.float64
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1


def test_grid_covers_the_box():
    g = get_system("convex-2d").grid(100)
    assert g.shape == (10_000, 2)
    assert g.min() == 0 and g.max() == 1
    assert len(torch.unique(g[:, 0])) == 100


def test_params_and_repr():
    assert get_system("polymax", dim=12).params == {"dim": 12}
    assert get_system("convex-2d").params == {}
    assert "dim=12" in repr(get_system("polymax", dim=12))


@pytest.mark.parametrize("dim", [1, 0, -3])
def test_polymax_refuses_small_dims(dim):
    with pytest.raises(ValueError, match="dim"):
        get_system("polymax", dim=dim)


def test_polymax_refuses_non_integer_dim():
    with pytest.raises(TypeError, match="dim"):
        get_system("polymax", dim=2.5)


def test_bad_inputs_are_refused():
    field = get_system("convex-2d")
    with pytest.raises(ValueError, match="last axis"):
        field.grad(torch.zeros(5, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        field.grad([[0.1, 0.2]])
    with pytest.raises(ValueError, match="n must be"):
        field.sample(0)
    with pytest.raises(ValueError, match="10\\*\\*7"):
        get_system("polymax", dim=8).grid(100)
    with pytest.raises(TypeError):
        get_system("convex-2d", dim=3)
    with pytest.raises(ValueError, match="choose one of"):
        get_system("polymaxx")
