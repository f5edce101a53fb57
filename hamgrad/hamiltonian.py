"""Learned Hamiltonians: gradient networks presented through the Hamiltonian protocol.

Every class here is a ``torch.nn.Module`` with ``dof``, ``dim = 2·dof``, ``separable`` and
``grad(x) -> (..., 2n)``, so :func:`hamgrad.integrators.rollout` takes it like a physical system.

- :class:`JointHamiltonian`: one gradient network for ∇H(q, p) on the whole state (GradNets, HNN).
  Not separable: integrate it with an implicit symplectic method or a general ODE solver.
- :class:`SeparableHamiltonian`: H = T(p) + V(q) with a monotone network for ∇T (kinetic energy is
  convex) and any gradient network for ∇V. Explicit symplectic integrators (leapfrog, Yoshida) are
  legitimate for it.
- :class:`VectorFieldModel`: the unconstrained "baseline NN" (``mlp``), which predicts dx/dt = f(x)
  directly and is **not** a Hamiltonian. To integrate it through the same ``rollout``, it exposes
  ``grad(x) = −J f(x)`` (since J∇H = f ⇔ ∇H = J⁻¹f = −J f), so ``J·grad(x) = f(x)`` exactly. It is
  marked non-separable and has no energy; use it with non-symplectic methods (rk4, dopri5) only.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "LearnedHamiltonianBase",
    "JointHamiltonian",
    "SeparableHamiltonian",
    "VectorFieldModel",
    "ScaledGradientNetwork",
    "apply_J",
    "apply_J_inverse",
    "build_hamiltonian",
    "default_kinetic_model",
    "split_budget",
]


def apply_J(g: torch.Tensor) -> torch.Tensor:
    """``J g`` with ``J = [[0, I], [-I, 0]]``: ``(g_q, g_p) -> (g_p, −g_q)``; shape ``(..., 2n)``."""
    n = g.shape[-1] // 2
    return torch.cat([g[..., n:], -g[..., :n]], dim=-1)


def apply_J_inverse(f: torch.Tensor) -> torch.Tensor:
    """``J⁻¹ f = −J f``: ``(f_q, f_p) -> (−f_p, f_q)``; shape ``(..., 2n)``."""
    n = f.shape[-1] // 2
    return torch.cat([-f[..., n:], f[..., :n]], dim=-1)


def _net_dim(net: nn.Module, what: str) -> int:
    dim = getattr(net, "dim", None)
    if not isinstance(dim, int) or dim <= 0:
        raise TypeError(f"{what} must have a positive integer attribute 'dim', got {dim!r}")
    return dim


class LearnedHamiltonianBase(nn.Module):
    """Shared protocol attributes and the vector field ``J ∇H``.

    A subclass sets ``dim``, ``dof`` and ``separable`` and defines ``grad(x)`` and ``energy(x)``
    (and ``grad_q``/``grad_p`` when separable); ``vector_field``, ``forward`` and
    ``hamiltonian`` follow."""

    dof: int
    dim: int
    separable: bool
    conservative: bool = True

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        """``dx/dt = J ∇H(x)``; shape ``(..., 2n)``."""
        return apply_J(self.grad(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The vector field ``J ∇H(x)`` (what derivative matching compares with ``dx/dt``)."""
        return self.vector_field(x)

    def hamiltonian(self, x: torch.Tensor) -> torch.Tensor:
        """The learned energy ``H(x)``, shape ``(...)`` (defined up to an additive constant)."""
        return self.energy(x)


class JointHamiltonian(LearnedHamiltonianBase):
    """H(q, p) learned by one gradient network on the whole state.

    ``net`` is any conservative gradient network with ``dim`` even (GradNet-C/M, mGradNet-C/M, HNN):
    ``grad(x) = net(x)`` and ``energy(x) = net.potential(x)``.
    """

    separable = False

    def __init__(self, net: nn.Module):
        super().__init__()
        dim = _net_dim(net, "net")
        if dim % 2:
            raise ValueError(f"a Hamiltonian's state dimension must be even (q, p), got dim={dim}")
        if getattr(net, "conservative", True) is False:
            raise ValueError(
                "JointHamiltonian needs a conservative gradient network; an unconstrained vector "
                "field (e.g. 'mlp') is wrapped by VectorFieldModel instead"
            )
        self.net = net
        self.dim = dim
        self.dof = dim // 2

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇H(x), shape ``(..., 2n)``."""
        return self.net(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x), shape ``(...)``."""
        return self.net.potential(x)


class SeparableHamiltonian(LearnedHamiltonianBase):
    """H(q, p) = T(p) + V(q): ``kinetic`` learns ∇T (monotone network), ``potential`` learns ∇V.

    Both networks act on ``n``-vectors (``dim = n``). ``grad_q(q) = potential(q)``,
    ``grad_p(p) = kinetic(p)``, ``grad(x) = (grad_q, grad_p)`` and
    ``energy(x) = kinetic.potential(p) + potential.potential(q)``.
    """

    separable = True

    def __init__(self, kinetic: nn.Module, potential: nn.Module):
        super().__init__()
        nk = _net_dim(kinetic, "kinetic")
        nv = _net_dim(potential, "potential")
        if nk != nv:
            raise ValueError(
                f"kinetic and potential networks must act on the same number of degrees of freedom, "
                f"got kinetic dim={nk} and potential dim={nv}"
            )
        for what, net in (("kinetic", kinetic), ("potential", potential)):
            if getattr(net, "conservative", True) is False:
                raise ValueError(f"the {what} network must be a conservative gradient network")
        self.kinetic = kinetic
        self.potential = potential
        self.dof = nk
        self.dim = 2 * nk

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        """∂H/∂q = ∇V(q), shape ``(..., n)``."""
        return self.potential(q)

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        """∂H/∂p = ∇T(p), shape ``(..., n)``."""
        return self.kinetic(p)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇H(x) = (∇V(q), ∇T(p)), shape ``(..., 2n)``."""
        n = self.dof
        return torch.cat([self.grad_q(x[..., :n]), self.grad_p(x[..., n:])], dim=-1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x) = T(p) + V(q), shape ``(...)``."""
        n = self.dof
        return self.kinetic.potential(x[..., n:]) + self.potential.potential(x[..., :n])


class VectorFieldModel(nn.Module):
    """An unconstrained learned vector field dx/dt = f(x) (the HNN paper's "baseline NN").

    Not a Hamiltonian: ``conservative = False``, ``separable = False`` and no energy. ``grad(x)``
    returns ``−J f(x)`` so that ``J·grad(x) = f(x)``; this lets the generic ``rollout`` integrate it,
    and must only be used with non-symplectic methods (rk4, dopri5, ...): a "symplectic" method
    applied to a field that is not Hamiltonian preserves nothing.
    """

    separable = False
    conservative = False

    def __init__(self, net: nn.Module):
        super().__init__()
        dim = _net_dim(net, "net")
        if dim % 2:
            raise ValueError(f"the state dimension must be even (q, p), got dim={dim}")
        self.net = net
        self.dim = dim
        self.dof = dim // 2

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = dx/dt, shape ``(..., 2n)``."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vector_field(x)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """``−J f(x)``: the "gradient" whose symplectic rotation is f (see the class docstring)."""
        return apply_J_inverse(self.vector_field(x))


class ScaledGradientNetwork(nn.Module):
    """A gradient network with its output multiplied by a fixed constant: ``c · net(x)``.

    ``c · ∇F = ∇(c·F)``, so the result is conservative with ``potential(x) = c · net.potential(x)``,
    and for ``c > 0`` it is monotone exactly when ``net`` is. The constant sets the initial scale
    of the field: a cascade network on one input (``dim = 1``) starts with a slope of order its
    width (about 13 at width 32 for mGradNet-C), far steeper than the fields of unit-scale
    one-degree-of-freedom systems; ``c ≈ 1/8`` starts it near slope 2. Shapes: ``(..., dim)`` in
    and out; ``potential`` ``(..., dim) -> (...)``.
    """

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        from hamgrad.validation import check_positive_float

        self.dim = _net_dim(net, "net")
        if getattr(net, "conservative", True) is False:
            raise ValueError("ScaledGradientNetwork needs a conservative gradient network")
        self.net = net
        self.scale = check_positive_float("output_scale", scale)
        self.conservative = True
        self.monotone = bool(getattr(net, "monotone", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``c · net(x)``, shape ``(..., dim)``."""
        return self.scale * self.net(x)

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        """``c · net.potential(x)``, shape ``(...)``."""
        return self.scale * self.net.potential(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


def _scaled(net: nn.Module, scale: float | None) -> nn.Module:
    return net if scale is None else ScaledGradientNetwork(net, scale)


# --- builder ----------------------------------------------------------------------------------


def default_kinetic_model(model_name: str) -> str:
    """The monotone network used for T(p) next to a potential network named ``model_name``.

    GradNet variants pair with the monotone network of the same family (``gradnet-c`` ->
    ``mgradnet-c``, ``gradnet-m`` -> ``mgradnet-m``); ``hnn`` pairs with ``hnn``.
    """
    if model_name.startswith("mgradnet-"):
        return model_name
    if model_name.startswith("gradnet-"):
        return "m" + model_name
    return model_name


def split_budget(param_budget: int) -> tuple[int, int]:
    """Split a parameter budget between the kinetic and potential networks: (T, V).

    The potential part gets the larger share (three quarters): T(p) is usually a simple convex
    function (often quadratic) while V(q) carries the structure of the system.
    """
    kinetic = param_budget // 4
    return kinetic, param_budget - kinetic


def build_hamiltonian(
    model_name: str,
    dof: int,
    *,
    separable: bool = False,
    param_budget: int | None = None,
    width: int | None = None,
    kinetic_model: str | None = None,
    kinetic_width: int | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    output_scale: float | None = None,
    **options,
) -> nn.Module:
    """A learned Hamiltonian (or, for ``mlp``, a vector-field model) built from model names.

    - ``separable=False``: one network on the 2n-dimensional state (``JointHamiltonian``;
      ``VectorFieldModel`` for ``mlp``).
    - ``separable=True``: ``SeparableHamiltonian`` with ``model_name`` for V(q) and
      ``kinetic_model`` (default :func:`default_kinetic_model`) for T(p), each on n dimensions.
      ``param_budget`` is split by :func:`split_budget`; ``width`` sets both widths unless
      ``kinetic_width`` is given.

    Give ``param_budget`` (total trainable parameters) or ``width``, not both; with neither the
    model's default width is used. ``seed`` seeds the initialisation. ``output_scale`` (> 0)
    multiplies the output of every gradient network (:class:`ScaledGradientNetwork`; not the
    ``mlp``): it sets the initial scale of the field (``model_options={"output_scale": c}`` of a
    training run). ``options`` go to :func:`hamgrad.models.build_model`.
    """
    from hamgrad.models import MODEL_NAMES, build_model
    from hamgrad.validation import check_choice, check_positive_float, check_positive_int

    check_choice("model", model_name, MODEL_NAMES)
    dof = check_positive_int("dof", dof)
    if param_budget is not None and width is not None:
        raise ValueError("give either param_budget or width, not both")
    if param_budget is not None:
        param_budget = check_positive_int("param_budget", param_budget)
    if width is not None:
        width = check_positive_int("width", width)
    if seed is not None:
        seed = check_positive_int("seed", seed, allow_zero=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_hamiltonian(
                model_name,
                dof,
                separable=separable,
                param_budget=param_budget,
                width=width,
                kinetic_model=kinetic_model,
                kinetic_width=kinetic_width,
                dtype=dtype,
                output_scale=output_scale,
                **options,
            )
    if output_scale is not None:
        check_positive_float("output_scale", output_scale)

    if not separable:
        net = build_model(model_name, 2 * dof, width=width, param_budget=param_budget, **options)
        if getattr(net, "conservative", True) is False:
            if output_scale is not None:
                raise ValueError("output_scale applies to gradient networks, not to 'mlp'")
            model = VectorFieldModel(net)
        else:
            model = JointHamiltonian(_scaled(net, output_scale))
        return model.to(dtype)

    kin_name = kinetic_model or default_kinetic_model(model_name)
    check_choice("kinetic model", kin_name, MODEL_NAMES)
    for role, name in (("potential", model_name), ("kinetic", kin_name)):
        if name == "mlp":
            raise ValueError(
                f"a separable Hamiltonian needs gradient networks; {role} model 'mlp' is an "
                "unconstrained vector field (use it with separable=False)"
            )
    if param_budget is not None:
        kin_budget, pot_budget = split_budget(param_budget)
        kinetic = build_model(kin_name, dof, param_budget=kin_budget, **options)
        potential = build_model(model_name, dof, param_budget=pot_budget, **options)
    else:
        kinetic = build_model(kin_name, dof, width=kinetic_width or width, **options)
        potential = build_model(model_name, dof, width=width, **options)
    return SeparableHamiltonian(
        _scaled(kinetic, output_scale), _scaled(potential, output_scale)
    ).to(dtype)
