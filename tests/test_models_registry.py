"""Registry, parameter counts and budgets, construction options and argument errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamgrad.models import (
    MODEL_NAMES,
    build_model,
    count_params,
    param_count_for,
    width_for_budget,
)

GRADNETS = ("gradnet-c", "gradnet-m", "mgradnet-c", "mgradnet-m")

# The authors' widths for a budget of 1024·d (reference/gradnets.md).
AUTHORS_TABLE = [
    # d, C width, C params, M width, M params
    (2, 93, 2048, 169, 2046),
    (32, 629, 32740, 247, 32652),
    (256, 948, 261904, 254, 261384),
    (1024, 1003, 1048156, 255, 1046540),
]


def test_model_names():
    assert set(MODEL_NAMES) >= {"gradnet-c", "gradnet-m", "mgradnet-c", "mgradnet-m", "hnn", "mlp"}


@pytest.mark.parametrize(("d", "c_width", "c_params", "m_width", "m_params"), AUTHORS_TABLE)
def test_authors_width_table(d, c_width, c_params, m_width, m_params):
    budget = 1024 * d
    assert width_for_budget("mgradnet-c", d, budget, activation="wtanh", layers=4) == c_width
    assert width_for_budget("mgradnet-m", d, budget, activation="wsoftmax", modules=4) == m_width
    assert param_count_for("mgradnet-c", d, c_width) == c_params
    assert param_count_for("mgradnet-m", d, m_width) == m_params
    # the general variants have the same parametrisation
    assert width_for_budget("gradnet-c", d, budget) == c_width
    assert width_for_budget("gradnet-m", d, budget) == m_width


@pytest.mark.parametrize(("d", "c_width", "c_params", "m_width", "m_params"), AUTHORS_TABLE)
def test_authors_table_built_models(d, c_width, c_params, m_width, m_params):
    c = build_model("mgradnet-c", d, param_budget=1024 * d)
    m = build_model("mgradnet-m", d, param_budget=1024 * d)
    assert (c.width, count_params(c)) == (c_width, c_params)
    assert (m.width, count_params(m)) == (m_width, m_params)


def test_paper_2d_models():
    assert count_params(build_model("mgradnet-c", 2, width=7, activation="tanh", layers=4)) == 100
    assert count_params(build_model("gradnet-c", 2, width=7, activation="tanh", layers=4)) == 100
    assert (
        count_params(build_model("mgradnet-m", 2, width=7, activation="softmax", modules=4)) == 94
    )
    assert count_params(build_model("gradnet-m", 2, width=7, activation="softmax", modules=4)) == 94


def test_hnn_default_size():
    hnn = build_model("hnn", 2)
    assert hnn.width == 200 and hnn.hidden_layers == 2
    # 2·200 + 200 + 200·200 + 200 + 200 (no output bias)
    assert count_params(hnn) == 41000
    assert count_params(build_model("mlp", 2)) == 2 * 200 + 200 + 200 * 200 + 200 + 200 * 2 + 2


OPTIONS = {
    "gradnet-c": [{}, {"activation": "tanh"}, {"layers": 2}, {"depth": 1}],
    "mgradnet-c": [{}, {"activation": "tanh", "layers": 3}],
    "gradnet-m": [{}, {"activation": "softmax"}, {"activation": "wtanh", "modules": 2}],
    "mgradnet-m": [{}, {"activation": "tanh"}, {"modules": 1}],
    "hnn": [{}, {"hidden_layers": 3}, {"depth": 1}],
    "mlp": [{}, {"hidden_layers": 1}],
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_count_formula_matches_built_model(name):
    for options in OPTIONS[name]:
        for dim, width in [(1, 1), (3, 5), (6, 11)]:
            model = build_model(name, dim, width=width, **options)
            assert count_params(model) == param_count_for(name, dim, width, **options)


@settings(deadline=None, max_examples=30)
@given(
    name=st.sampled_from(MODEL_NAMES),
    dim=st.integers(1, 64),
    budget=st.integers(1, 200_000),
)
def test_width_for_budget_is_largest_that_fits(name, dim, budget):
    smallest = param_count_for(name, dim, 1)
    if budget < smallest:
        with pytest.raises(ValueError, match="param_budget"):
            width_for_budget(name, dim, budget)
        return
    w = width_for_budget(name, dim, budget)
    assert param_count_for(name, dim, w) <= budget < param_count_for(name, dim, w + 1)


def test_build_with_budget_fits():
    for name in MODEL_NAMES:
        model = build_model(name, 4, param_budget=5000)
        assert count_params(model) <= 5000
        assert model.width == width_for_budget(name, 4, 5000)


def test_attributes():
    flags = {
        "gradnet-c": (True, False),
        "gradnet-m": (True, False),
        "mgradnet-c": (True, True),
        "mgradnet-m": (True, True),
        "hnn": (True, False),
        "mlp": (False, False),
    }
    for name, (conservative, monotone) in flags.items():
        model = build_model(name, 3, width=4)
        assert model.dim == 3
        assert (model.conservative, model.monotone) == (conservative, monotone)
        assert model.name == name


def test_seed_reproducible_and_leaves_global_rng():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = build_model("mgradnet-m", 3, width=5, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    b = build_model("mgradnet-m", 3, width=5, seed=7)
    c = build_model("mgradnet-m", 3, width=5, seed=8)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.weight, c.weight)


def test_dtype_option():
    model = build_model("gradnet-c", 3, width=4, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_authors_initialisation_ranges():
    d, h = 16, 50
    c = build_model("mgradnet-c", d, width=h, seed=0)
    assert c.weight.abs().max() <= d**-0.5 and c.bias[0].abs().max() <= d**-0.5
    assert c.bias[1:].abs().max() <= h**-0.5 and c.out_bias.abs().max() <= h**-0.5
    assert c.alpha.min() >= 0 and c.alpha.max() <= 1 and c.beta.min() >= 0
    assert torch.allclose(c.acts[0].a, torch.full((h,), 1.0 / h))
    g = build_model("gradnet-c", d, width=h, seed=0)
    assert g.alpha.abs().max() <= 0.5 and g.beta.abs().max() <= 0.5
    m = build_model("mgradnet-m", d, width=h, seed=0)
    assert m.acts[0].a.item() == 0.5 and m.acts[0].b.item() == 0.5
    assert m.alpha.min() >= 0 and m.beta.min() >= 0 and m.beta.max() <= 1


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_model_lists_allowed():
    with pytest.raises(ValueError, match="gradnet-c") as err:
        build_model("gradnet-x", 2)
    assert "unknown model" in str(err.value)


def test_unknown_activation_lists_allowed():
    with pytest.raises(ValueError, match="wtanh"):
        build_model("gradnet-m", 2, activation="relu")


@pytest.mark.parametrize("name", ["gradnet-c", "mgradnet-c"])
@pytest.mark.parametrize("activation", ["softmax", "wsoftmax"])
def test_group_activation_refused_in_cascade(name, activation):
    with pytest.raises(ValueError, match="group activation") as err:
        build_model(name, 2, activation=activation)
    assert "cascade" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"dim": 0}, "dim"),
        ({"dim": -3}, "dim"),
        ({"width": 0}, "width"),
        ({"layers": 0}, "layers"),
        ({"param_budget": 0}, "param_budget"),
        ({"param_budget": 5}, "param_budget"),
    ],
)
def test_bad_sizes_name_the_argument(kwargs, argument):
    args = {"dim": 3, **kwargs}
    with pytest.raises(ValueError, match=argument):
        build_model("gradnet-c", **args)


def test_bad_types():
    with pytest.raises(TypeError, match="width"):
        build_model("hnn", 2, width=2.5)
    with pytest.raises(TypeError, match="dim"):
        build_model("hnn", "2")
    with pytest.raises(TypeError, match="modules"):
        build_model("gradnet-m", 2, modules=None)
    with pytest.raises(TypeError, match="dtype"):
        build_model("hnn", 2, dtype=torch.int64)


def test_width_and_budget_exclusive():
    with pytest.raises(ValueError, match="width or param_budget"):
        build_model("mlp", 2, width=3, param_budget=1000)


def test_unknown_option():
    with pytest.raises(TypeError, match="modules"):
        build_model("gradnet-c", 2, modules=3)
    with pytest.raises(TypeError, match="given twice"):
        build_model("hnn", 2, depth=2, hidden_layers=2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bad_input(name):
    model = build_model(name, 3, width=4)
    with pytest.raises(ValueError, match="last axis of length 3"):
        model(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="last axis"):
        model(torch.tensor(1.0))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(5, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0, 0.0, 0.0]])


def test_mlp_has_no_potential():
    model = build_model("mlp", 2, width=4)
    with pytest.raises(NotImplementedError, match="no potential"):
        model.potential(torch.zeros(1, 2))


@pytest.mark.parametrize("name", ["tanh", "wtanh", "softmax", "wsoftmax"])
@pytest.mark.parametrize("monotone", [True, False])
def test_stacked_coefficients_equal_each_activations_own(name, monotone):
    """The one-call stacking a network uses equals stacking every activation's coefficients."""
    from hamgrad.models.activations import Activation, make_activation

    acts = [make_activation(name, 5, monotone=monotone) for _ in range(3)]
    for i, act in enumerate(acts):
        for p in act.parameters():
            torch.nn.init.normal_(p, 0.0, 1.0, generator=torch.Generator().manual_seed(i))
    cls = type(acts[0])
    fast = cls.stacked_coefficients(acts, torch.float64)
    generic = Activation.stacked_coefficients.__func__(cls, acts, torch.float64)
    for a, b in zip(fast, generic, strict=True):
        assert a.dtype == torch.float64 and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=0)
