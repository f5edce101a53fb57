"""Baselines: the Hamiltonian Neural Network (HNN) and the unconstrained MLP vector field.

* ``HNN``: a scalar MLP ``H(x)`` (tanh, two hidden layers of 200 by default, orthogonal weight
  initialisation, no bias on the output layer, as in Greydanus et al. 2019); its field is
  ``∇H`` computed by autograd. While gradients are being recorded the field keeps its graph
  (``create_graph=True``) so a loss on it can be trained; under ``torch.no_grad()`` it is
  detached.
* ``MLP``: an unconstrained map ``R^d -> R^d`` with the same hidden layers (the "baseline NN" of
  the HNN paper). Not conservative: it has no potential.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hamgrad.models.base import GradientModel, like
from hamgrad.validation import check_positive_int


def _mlp_layers(sizes: list[int], last_bias: bool) -> nn.ModuleList:
    layers = nn.ModuleList()
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = i == len(sizes) - 2
        layer = nn.Linear(n_in, n_out, bias=(last_bias or not last))
        nn.init.orthogonal_(layer.weight)
        layers.append(layer)
    return layers


def _run_mlp(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    h = x
    for i, layer in enumerate(layers):
        bias = None if layer.bias is None else like(layer.bias, x)
        h = F.linear(h, like(layer.weight, x), bias)
        if i < len(layers) - 1:
            h = torch.tanh(h)
    return h


def mlp_param_count(n_in: int, n_out: int, width: int, hidden_layers: int, last_bias: bool) -> int:
    """Parameters of an MLP ``n_in -> width (×hidden_layers) -> n_out``."""
    count = n_in * width + width + (hidden_layers - 1) * (width * width + width) + width * n_out
    return count + (n_out if last_bias else 0)


class _TanhMLPModel(GradientModel):
    """Shared body of the two baselines: a tanh MLP ``dim -> width (×hidden_layers) -> n_out``."""

    #: whether the output layer has a bias (the output size is ``_out_size(dim)``)
    last_bias: bool

    def __init__(self, dim: int, width: int = 200, *, hidden_layers: int = 2) -> None:
        dim = check_positive_int("dim", dim)
        width = check_positive_int("width", width)
        hidden_layers = check_positive_int("hidden_layers", hidden_layers)
        super().__init__(dim)
        self.width = width
        self.hidden_layers = hidden_layers
        sizes = [dim] + [width] * hidden_layers + [self._out_size(dim)]
        self.net = _mlp_layers(sizes, last_bias=self.last_bias)

    @staticmethod
    def _out_size(dim: int) -> int:
        raise NotImplementedError

    @classmethod
    def param_count(cls, dim: int, width: int, *, hidden_layers: int = 2) -> int:
        """Number of parameters of the network built with these arguments."""
        return mlp_param_count(dim, cls._out_size(dim), width, hidden_layers, cls.last_bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, width={self.width}, hidden_layers={self.hidden_layers}"


class HNN(_TanhMLPModel):
    """Hamiltonian Neural Network: ``forward(x) = ∇H(x)`` with ``H`` a scalar tanh MLP.

    Args:
        dim: input size d.
        width: hidden units per layer (default 200).
        hidden_layers: number of hidden layers (default 2).
    """

    name = "hnn"
    conservative = True
    monotone = False

    last_bias = False

    @staticmethod
    def _out_size(dim: int) -> int:
        return 1

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        return _run_mlp(self.net, x).squeeze(-1)

    def _field(self, x: torch.Tensor) -> torch.Tensor:
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            energy = self._potential(xg).sum()
            (grad,) = torch.autograd.grad(energy, xg, create_graph=keep_graph)
        return grad


class MLP(_TanhMLPModel):
    """Unconstrained vector field ``R^d -> R^d``: a tanh MLP (not conservative, no potential).

    Args:
        dim: input/output size d.
        width: hidden units per layer (default 200).
        hidden_layers: number of hidden layers (default 2).
    """

    name = "mlp"
    conservative = False
    monotone = False

    last_bias = True

    @staticmethod
    def _out_size(dim: int) -> int:
        return dim

    def _field(self, x: torch.Tensor) -> torch.Tensor:
        return _run_mlp(self.net, x)
