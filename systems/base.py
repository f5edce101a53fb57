"""The ``System`` base class: an analytic Hamiltonian with its gradient, parameters and presets.

A system is a Hamiltonian ``H(q, p)`` on states ``x = (q, p)`` of shape ``(..., 2n)`` (``q`` first).
Subclasses give ``hamiltonian``, ``grad`` (or, when separable, ``grad_q`` and ``grad_p``) and
``sample_initial``; the base class gives ``vector_field = J grad``, parameter validation, presets,
the evaluation-protocol initial states and JSON serialisation of the parameters.

Every method works on any leading batch shape, in any floating dtype (float64 for ground truth); the
output dtype and device are those of the input.

Randomness: ``sample_initial(n, seed)`` draws from ``numpy.random.default_rng(seed)`` (PCG64, so
the same seed gives the same bytes on every platform) and converts to a float64 torch tensor. Each
trajectory's random numbers are one row of a single ``(n, k)`` block of uniforms (normals come from
the inverse normal CDF of uniforms), so ``sample_initial(m, seed)`` is exactly the first ``m`` rows
of ``sample_initial(n, seed)`` for ``m <= n``.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import ndtri

from hamgrad.validation import (
    check_choice,
    check_finite_float,
    check_positive_float,
    check_positive_int,
)

Tensor = torch.Tensor


class System(ABC):
    """A Hamiltonian system ``dx/dt = J ∇H(x)``, ``J = [[0, I], [-I, 0]]``.

    Class attributes:
        kind: ``"dynamics"``.
        dof: degrees of freedom ``n`` (the state has ``dim = 2n`` coordinates).
        separable: whether ``H = T(p) + V(q)`` (then ``grad_q`` and ``grad_p`` exist).
        defaults: parameter name -> default value; ``__init__`` keywords override them.
        presets: preset name -> dict with keys ``params``, ``n_trajectories``, ``n_steps``, ``dt``,
            ``noise_std``, ``splits`` and optionally ``eval`` (see :meth:`eval_initial`).
        description: one line saying what the system is.
    """

    kind: ClassVar[str] = "dynamics"
    name: ClassVar[str] = ""
    dof: int = 0
    separable: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    description: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "(none)"
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for system {self.name!r}; "
                f"allowed: {allowed}"
            )
        merged = copy.deepcopy(self.defaults)
        merged.update(params)
        self.params: dict[str, Any] = self._validate(merged)
        self._constants: dict[tuple, Tensor] = {}

    # ----------------------------------------------------------------- parameters
    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the merged parameters; subclasses override (and set attributes)."""
        return params

    @property
    def dim(self) -> int:
        """Length ``2n`` of the state vector."""
        return 2 * self.dof

    def params_json(self) -> str:
        """The parameters as a JSON string (``get_system(name, **json.loads(s))`` rebuilds it)."""
        return json.dumps(self.params, sort_keys=True)

    @classmethod
    def preset(cls, name: str) -> dict[str, Any]:
        """A deep copy of the preset ``name`` (e.g. ``"hnn"``)."""
        check_choice(f"preset of {cls.name!r}", name, sorted(cls.presets))
        return copy.deepcopy(cls.presets[name])

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> System:
        """The system with the parameters of preset ``name`` (keywords override them)."""
        return cls(**{**cls.preset(name)["params"], **overrides})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- dynamics
    @abstractmethod
    def hamiltonian(self, x: Tensor) -> Tensor:
        """``H(x)``: ``(..., 2n) -> (...)``, in energy units."""

    def grad(self, x: Tensor) -> Tensor:
        """``∇H(x)``: ``(..., 2n) -> (..., 2n)``; separable systems assemble it from grad_q/grad_p."""
        if not self.separable:
            raise NotImplementedError(f"{type(self).__name__} must implement grad")
        self._check_state(x)
        n = self.dof
        return torch.cat([self.grad_q(x[..., :n]), self.grad_p(x[..., n:])], dim=-1)

    def grad_q(self, q: Tensor) -> Tensor:
        """``∂H/∂q = ∇V(q)``: ``(..., n) -> (..., n)`` (separable systems only)."""
        raise NotImplementedError(f"{type(self).__name__} is not separable: it has no grad_q")

    def grad_p(self, p: Tensor) -> Tensor:
        """``∂H/∂p = ∇T(p)``: ``(..., n) -> (..., n)`` (separable systems only)."""
        raise NotImplementedError(f"{type(self).__name__} is not separable: it has no grad_p")

    def vector_field(self, x: Tensor) -> Tensor:
        """``dx/dt = J ∇H(x) = (∂H/∂p, -∂H/∂q)``: ``(..., 2n) -> (..., 2n)``."""
        g = self.grad(x)
        n = self.dof
        return torch.cat([g[..., n:], -g[..., :n]], dim=-1)

    # ----------------------------------------------------------------- sampling
    @abstractmethod
    def sample_initial(self, n: int, seed: int = 0) -> Tensor:
        """``n`` initial states ``(n, 2n_dof)`` float64 from the system's initial-state distribution."""

    def eval_initial(self, preset: str = "hnn", seed: int = 0) -> Tensor:
        """Initial states ``(N, 2n)`` float64 of the evaluation protocol of ``preset``.

        ``preset["eval"]["initial"]`` says how they are drawn:

        * ``{"kind": "uniform-magnitude", "low": a, "high": b}``: every coordinate independently
          ``±U[a, b]`` (uniform magnitude, random sign), from ``default_rng(seed)``;
        * ``{"kind": "per-seed", "seeds": [s0, s1, ...]}``: state ``i`` is
          ``sample_initial(1, seed=s_i)`` (``seed`` is not used);
        * ``{"kind": "sample-initial"}``: ``sample_initial(N, seed)``.
        """
        spec = self.preset(preset).get("eval")
        if spec is None:
            raise ValueError(f"preset {preset!r} of {self.name!r} has no evaluation protocol")
        count = spec["n_trajectories"]
        init = spec["initial"]
        kind = check_choice(
            "initial-state kind", init["kind"], ["uniform-magnitude", "per-seed", "sample-initial"]
        )
        if kind == "per-seed":
            return torch.cat([self.sample_initial(1, seed=int(s)) for s in init["seeds"]])
        if kind == "sample-initial":
            return self.sample_initial(count, seed=seed)
        u = uniforms(count, self.dim, seed)
        low, high = float(init["low"]), float(init["high"])
        v = (2.0 * u - 1.0) * (high - low)
        return torch.from_numpy(v + low * np.sign(v))

    # ----------------------------------------------------------------- ground truth
    def max_substep(self, x0: Tensor) -> Tensor:
        """Largest internal step ``(B,)`` (time units) of the ground-truth composition for ``x0``.

        Used by :func:`hamgrad.systems.ground_truth.simulate` to choose substeps: with this step
        the 8th-order composition keeps the relative energy error of each trajectory under 1e-10.
        Subclasses scale it with their own time scale (e.g. the pericentre of a Kepler orbit).
        """
        return torch.full(x0.shape[:-1], float("inf"), dtype=torch.float64)

    # ----------------------------------------------------------------- helpers
    def _check_state(self, x: Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"state must have last axis of length {self.dim} for {self.name!r}, "
                f"got shape {tuple(x.shape)}"
            )

    def _constant(self, key: str, values: Sequence[float] | np.ndarray, like: Tensor) -> Tensor:
        """A parameter vector as a tensor with the dtype and device of ``like`` (cached)."""
        k = (key, like.dtype, like.device)
        t = self._constants.get(k)
        if t is None:
            t = torch.as_tensor(np.asarray(values, dtype=np.float64)).to(like.device, like.dtype)
            self._constants[k] = t
        return t


# --------------------------------------------------------------------- shared checks and draws
def uniforms(n: int, k: int, seed: int) -> np.ndarray:
    """``(n, k)`` float64 uniforms on [0, 1) from ``default_rng(seed)``; row ``i`` is trajectory ``i``."""
    check_positive_int("n", n)
    seed = check_positive_int("seed", seed, allow_zero=True)
    return np.random.default_rng(seed).random((n, k))


def normals(u: np.ndarray) -> np.ndarray:
    """Standard normals from uniforms on (0, 1) by the inverse normal CDF (0 maps to a finite tail)."""
    return ndtri(np.clip(u, 1e-300, None))


def unit_directions(u: np.ndarray) -> np.ndarray:
    """Directions ``(n, k)`` of points uniform in ``[-1, 1]^k`` (HNN's rule), from uniforms ``(n, k)``."""
    v = 2.0 * u - 1.0
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def check_range(name: str, value: Any, *, positive: bool = False) -> tuple[float, float]:
    """A ``(low, high)`` pair of finite floats with ``low <= high`` (``low > 0`` when ``positive``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    lo = check_finite_float(f"{name}[0]", value[0])
    hi = check_finite_float(f"{name}[1]", value[1])
    if lo > hi or (positive and lo <= 0):
        what = "0 < low <= high" if positive else "low <= high"
        raise ValueError(f"{name} must satisfy {what}, got {value!r}")
    return (lo, hi)


def check_floats(name: str, value: Any, count: int, *, positive: bool = True) -> list[float]:
    """A scalar broadcast to ``count`` floats, or a sequence of exactly ``count`` floats."""
    check = check_positive_float if positive else check_finite_float
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or a list of {count} numbers, got {value!r}")
    if isinstance(value, Sequence) or isinstance(value, np.ndarray):
        values = list(value)
        if len(values) != count:
            raise ValueError(f"{name} must have {count} entries, got {len(values)}: {value!r}")
        return [check(f"{name}[{i}]", v) for i, v in enumerate(values)]
    v = check(name, value)
    return [v] * count


def time_grid(t_end: float, n_points: int) -> tuple[int, float]:
    """``(n_steps, dt)`` of ``n_points`` equally spaced times over ``[0, t_end]``."""
    return n_points - 1, t_end / (n_points - 1)


def hnn_oscillator_preset(params: dict[str, Any], n_points: int) -> dict[str, Any]:
    """The HNN preset shared by its one-degree-of-freedom tasks (spring, pendulum): 50
    trajectories over ``t ∈ [0, 3]`` with ``n_points`` points, noise 0.1, half/half split; evaluation
    on 15 states drawn in ±[0.2, 1.0] per coordinate over ``t ∈ [0, 20]`` at 100 points."""
    n_steps, dt = time_grid(3.0, n_points)
    eval_steps, eval_dt = time_grid(20.0, 100)
    return {
        "params": params,
        "n_trajectories": 50,
        "n_steps": n_steps,
        "dt": dt,
        "noise_std": 0.1,
        "splits": {"train": 0.5, "test": 0.5},
        "eval": {
            "n_trajectories": 15,
            "n_steps": eval_steps,
            "dt": eval_dt,
            "initial": {"kind": "uniform-magnitude", "low": 0.2, "high": 1.0},
        },
    }
