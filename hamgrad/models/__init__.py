"""hamgrad.models: gradient networks (GradNet-C/M, mGradNet-C/M) and the HNN and MLP baselines.

Build models by name with :func:`build_model`; every model maps ``(..., dim) -> (..., dim)`` and
conservative ones also have ``potential(x) -> (...)`` with ``∇potential = forward``.
"""

from hamgrad.models.activations import ACTIVATION_NAMES, make_activation
from hamgrad.models.base import GradientModel
from hamgrad.models.baselines import HNN, MLP
from hamgrad.models.cascade import CascadeGradNet, GradNetC, MGradNetC
from hamgrad.models.modular import GradNetM, MGradNetM, ModularGradNet
from hamgrad.models.registry import (
    DEFAULT_WIDTH,
    MODEL_NAMES,
    build_model,
    count_params,
    model_class,
    param_count_for,
    width_for_budget,
)

__all__ = [
    "ACTIVATION_NAMES",
    "DEFAULT_WIDTH",
    "MODEL_NAMES",
    "CascadeGradNet",
    "GradNetC",
    "GradNetM",
    "GradientModel",
    "HNN",
    "MGradNetC",
    "MGradNetM",
    "MLP",
    "ModularGradNet",
    "build_model",
    "count_params",
    "make_activation",
    "model_class",
    "param_count_for",
    "width_for_budget",
]
