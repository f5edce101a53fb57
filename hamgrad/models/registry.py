"""Model registry: build any model by name, at a width or within a parameter budget.

``MODEL_NAMES`` lists the names; ``build_model(name, dim, width=..., **options)`` or
``build_model(name, dim, param_budget=..., **options)`` builds one. Options per model:

=====================  =========================================================================
gradnet-c, mgradnet-c  ``activation`` (``"wtanh"`` | ``"tanh"``), ``layers`` (alias ``depth``, 4),
                       ``fused`` (``"auto"``)
gradnet-m, mgradnet-m  ``activation`` (``"wsoftmax"`` | ``"softmax"`` | ``"wtanh"`` | ``"tanh"``),
                       ``modules`` (4), ``fused`` (``"auto"``)
hnn, mlp               ``hidden_layers`` (alias ``depth``, 2); ``width`` is the hidden width
=====================  =========================================================================

Every model also takes ``seed`` (initialise from this seed without touching the global RNG) and
``dtype`` (e.g. ``torch.float64``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hamgrad.models.baselines import HNN, MLP
from hamgrad.models.cascade import GradNetC, MGradNetC
from hamgrad.models.modular import GradNetM, MGradNetM
from hamgrad.validation import check_choice, check_positive_int

_CLASSES: dict[str, type[nn.Module]] = {
    "gradnet-c": GradNetC,
    "gradnet-m": GradNetM,
    "mgradnet-c": MGradNetC,
    "mgradnet-m": MGradNetM,
    "hnn": HNN,
    "mlp": MLP,
}

#: Registry names of every model.
MODEL_NAMES: tuple[str, ...] = tuple(_CLASSES)

#: Width used when neither ``width`` nor ``param_budget`` is given.
DEFAULT_WIDTH: dict[str, int] = {
    "gradnet-c": 64,
    "gradnet-m": 32,
    "mgradnet-c": 64,
    "mgradnet-m": 32,
    "hnn": 200,
    "mlp": 200,
}

_OPTIONS: dict[str, tuple[str, ...]] = {
    "gradnet-c": ("activation", "layers", "fused"),
    "mgradnet-c": ("activation", "layers", "fused"),
    "gradnet-m": ("activation", "modules", "fused"),
    "mgradnet-m": ("activation", "modules", "fused"),
    "hnn": ("hidden_layers",),
    "mlp": ("hidden_layers",),
}
_ALIASES: dict[str, dict[str, str]] = {
    "gradnet-c": {"depth": "layers"},
    "mgradnet-c": {"depth": "layers"},
    "hnn": {"depth": "hidden_layers"},
    "mlp": {"depth": "hidden_layers"},
}
# options that change the parameter count (passed to param_count)
_SHAPE_OPTIONS = ("activation", "layers", "modules", "hidden_layers")


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {name!r} ({type(name).__name__})")
    return check_choice("model", name, MODEL_NAMES)


def _normalise_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        real = _ALIASES.get(name, {}).get(key, key)
        if real not in _OPTIONS[name]:
            allowed = list(_OPTIONS[name]) + list(_ALIASES.get(name, {}))
            raise TypeError(
                f"unknown option {key!r} for model {name!r}; allowed: {', '.join(allowed)}"
            )
        if real in out:
            raise TypeError(f"option {real!r} given twice (as {key!r} and its alias)")
        out[real] = value
    return out


def model_class(name: str) -> type[nn.Module]:
    """The class registered under ``name``."""
    return _CLASSES[_check_name(name)]


def param_count_for(name: str, dim: int, width: int, **options: Any) -> int:
    """Number of parameters ``build_model(name, dim, width, **options)`` would have."""
    name = _check_name(name)
    dim = check_positive_int("dim", dim)
    width = check_positive_int("width", width)
    opts = _normalise_options(name, options)
    shape = {k: v for k, v in opts.items() if k in _SHAPE_OPTIONS}
    for key in ("layers", "modules", "hidden_layers"):
        if key in shape:
            shape[key] = check_positive_int(key, shape[key])
    return _CLASSES[name].param_count(dim, width, **shape)


def width_for_budget(name: str, dim: int, budget: int, **options: Any) -> int:
    """The largest width whose parameter count is at most ``budget``.

    Raises ``ValueError`` (naming ``param_budget``) when even width 1 does not fit.
    """
    budget = check_positive_int("param_budget", budget)
    smallest = param_count_for(name, dim, 1, **options)
    if smallest > budget:
        raise ValueError(
            f"param_budget must be at least {smallest} for model {name!r} with dim={dim} "
            f"(its size at width 1), got {budget}"
        )
    lo, hi = 1, 2
    while param_count_for(name, dim, hi, **options) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # count(lo) <= budget < count(hi)
        mid = (lo + hi) // 2
        if param_count_for(name, dim, mid, **options) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def count_params(model: nn.Module) -> int:
    """Number of learnable (``requires_grad``) parameter elements of ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(
    name: str,
    dim: int,
    width: int | None = None,
    param_budget: int | None = None,
    *,
    seed: int | None = None,
    dtype: torch.dtype | None = None,
    **options: Any,
) -> nn.Module:
    """Build the model ``name`` for inputs of size ``dim``.

    Give at most one of ``width`` (hidden units: per layer for C/HNN/MLP, per module for M) and
    ``param_budget`` (the largest width whose parameter count fits is used); with neither,
    :data:`DEFAULT_WIDTH` applies. ``options`` are the model's options (see the module docstring).
    ``seed`` initialises the parameters from that seed and leaves the global random state as it
    was; ``dtype`` converts the parameters (e.g. ``torch.float64``).
    """
    name = _check_name(name)
    dim = check_positive_int("dim", dim)
    opts = _normalise_options(name, options)
    if width is not None and param_budget is not None:
        raise ValueError("give either width or param_budget, not both")
    if param_budget is not None:
        width = width_for_budget(name, dim, param_budget, **opts)
    elif width is None:
        width = DEFAULT_WIDTH[name]
    width = check_positive_int("width", width)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    cls = _CLASSES[name]
    if seed is None:
        model = cls(dim, width, **opts)
    else:
        seed = check_positive_int("seed", seed, allow_zero=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(dim, width, **opts)
    if dtype is not None:
        model = model.to(dtype)
    return model
