"""Assertion helpers users can run on their own models, systems and integrators.

Each helper raises ``AssertionError`` with a message giving the measured figure and the bound.
"""

from __future__ import annotations

# --- gradient fields: conservative / monotone ---------------------------------------------------

# Default relative tolerances per precision for the Jacobian checks (round-off scale).
_FIELD_RTOL = {"torch.float64": 1e-10, "torch.float32": 1e-4}


def _field_rtol(rtol, dtype) -> float:
    if rtol is not None:
        return float(rtol)
    return _FIELD_RTOL.get(str(dtype), 1e-2)


def field_jacobian(field, points):
    """Autograd Jacobians ``J[n, i, j] = ∂f_i/∂x_j (x_n)`` of a pointwise field.

    Args:
        field: callable ``(N, d) -> (N, d)`` acting on each row independently (a model or any
            function of torch ops; it must be differentiable with respect to its input).
        points: ``(N, d)`` floating-point tensor.

    Returns ``(N, d, d)`` in the dtype of ``points``. Costs ``d`` backward passes.
    """
    import torch

    if not isinstance(points, torch.Tensor) or points.ndim != 2 or not points.is_floating_point():
        raise ValueError(
            "points must be a floating-point tensor of shape (N, d), got "
            f"{getattr(points, 'shape', type(points).__name__)}"
        )
    x = points.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = field(x)
        if out.shape != x.shape:
            raise ValueError(
                f"field must map (N, d) to (N, d); got {tuple(out.shape)} for {tuple(x.shape)}"
            )
        rows = []
        for i in range(x.shape[1]):
            (g,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(x) if g is None else g)
    return torch.stack(rows, 1).detach()


def assert_conservative(field, points, *, rtol: float | None = None):
    """Assert that ``field`` is a gradient field at ``points``: its Jacobian is symmetric.

    The check at each point is ``‖J − Jᵀ‖_F ≤ rtol·‖J‖_F`` with the autograd Jacobian
    (:func:`field_jacobian`). ``rtol`` defaults to the round-off scale of the dtype of ``points``
    (1e-10 in float64, 1e-4 in float32). Returns the worst relative asymmetry measured; raises
    ``AssertionError`` naming the worst point when the bound is exceeded.
    """
    import torch

    jac = field_jacobian(field, points)
    tol = _field_rtol(rtol, jac.dtype)
    asym = torch.linalg.matrix_norm(jac - jac.transpose(-1, -2))
    scale = torch.linalg.matrix_norm(jac)
    rel = torch.where(scale > 0, asym / torch.where(scale > 0, scale, 1.0), asym)
    worst = int(torch.argmax(rel))
    worst_rel = float(rel[worst])
    if not worst_rel <= tol:
        raise AssertionError(
            f"field is not conservative: relative Jacobian asymmetry {worst_rel:.3e} > {tol:.1e} "
            f"at point {worst} ({points[worst].tolist()})"
        )
    return worst_rel


def assert_monotone(field, points, *, rtol: float | None = None, tol: float | None = None):
    """Assert that ``field`` is the gradient of a convex function at ``points``.

    Checks that the autograd Jacobian is symmetric (as :func:`assert_conservative`, to ``rtol``)
    and positive semidefinite: its smallest eigenvalue is ``≥ −tol·‖J‖₂``. Both tolerances default
    to the round-off scale of the dtype of ``points``. Returns the smallest normalised eigenvalue
    ``min_n λ_min(J_n)/‖J_n‖₂`` (≥ 0 up to round-off for a monotone field).
    """
    import torch

    jac = field_jacobian(field, points)
    sym_tol = _field_rtol(rtol, jac.dtype)
    psd_tol = _field_rtol(tol, jac.dtype)
    asym = torch.linalg.matrix_norm(jac - jac.transpose(-1, -2))
    scale = torch.linalg.matrix_norm(jac)
    rel = torch.where(scale > 0, asym / torch.where(scale > 0, scale, 1.0), asym)
    worst = int(torch.argmax(rel))
    if not float(rel[worst]) <= sym_tol:
        raise AssertionError(
            f"field is not monotone: its Jacobian is not symmetric (relative asymmetry "
            f"{float(rel[worst]):.3e} > {sym_tol:.1e} at point {worst})"
        )
    eig = torch.linalg.eigvalsh(0.5 * (jac + jac.transpose(-1, -2)))  # ascending
    norm = eig.abs().amax(-1)
    lam = torch.where(norm > 0, eig[:, 0] / torch.where(norm > 0, norm, 1.0), eig[:, 0])
    worst = int(torch.argmin(lam))
    worst_lam = float(lam[worst])
    if not worst_lam >= -psd_tol:
        raise AssertionError(
            f"field is not monotone: smallest Jacobian eigenvalue {float(eig[worst, 0]):.3e} "
            f"= {worst_lam:.3e}·‖J‖ < −{psd_tol:.1e}·‖J‖ at point {worst} "
            f"({points[worst].tolist()})"
        )
    return worst_lam


# --- integrators: symplecticity, convergence order, energy ---------------------------------------


def _one_step_map(step, options):
    """``step`` as a callable (B, 2n) -> (B, 2n): a callable itself, or ``(h, method, dt)``."""
    options = dict(options or {})
    if callable(step):
        if options:
            raise TypeError("options are only used with step=(h, method, dt)")
        return step
    if isinstance(step, tuple) and len(step) == 3:
        from hamgrad.integrators import rollout

        h, method, dt = step
        return lambda x: rollout(h, x, dt, 1, method=method, **options)[:, -1]
    raise TypeError(
        f"step must be a callable (B, 2n) -> (B, 2n) or a tuple (h, method, dt), got {step!r}"
    )


def assert_symplectic(step, x, tol: float = 1e-12, *, options: dict | None = None) -> float:
    """Assert that a one-step map ``x_k -> x_{k+1}`` is symplectic at the states ``x``.

    The Jacobian ``M = ∂x_{k+1}/∂x_k`` (by autograd, one backward pass per output coordinate) must
    satisfy ``max |MᵀΩM − Ω| ≤ tol`` with ``Ω = [[0, I], [−I, 0]]``.

    Args:
        step: a callable (B, 2n) -> (B, 2n) acting on each row independently, or a tuple
            ``(h, method, dt)`` meaning one ``rollout`` step.
        x: (B, 2n) or (2n,) states; use float64 for round-off tolerances.
        tol: the bound on the largest entry of ``MᵀΩM − Ω``.
        options: method options passed to ``rollout`` with ``step=(h, method, dt)``, e.g.
            ``{"tol": 1e-15}`` for implicit-midpoint.

    Returns the largest defect measured; raises ``AssertionError`` (with the figure, the bound and
    the worst state) when it exceeds ``tol``.
    """
    import torch

    fn = _one_step_map(step, options)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.shape[-1] % 2:
        raise ValueError(
            f"x must be a floating-point tensor (B, 2n), got {getattr(x, 'shape', type(x).__name__)}"
        )
    x = x.detach().reshape(-1, x.shape[-1]).clone().requires_grad_(True)
    dim = x.shape[-1]
    n = dim // 2
    with torch.enable_grad():
        out = fn(x)
        if out.shape != x.shape:
            raise ValueError(f"step must map (B, 2n) to (B, 2n); got {tuple(out.shape)}")
        rows = []
        for i in range(dim):
            (row,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=i < dim - 1)
            rows.append(row)
    m = torch.stack(rows, dim=1).detach()  # (B, 2n, 2n): m[b, i, j] = ∂out_i/∂x_j
    omega = torch.zeros(dim, dim, dtype=x.dtype, device=x.device)
    omega[:n, n:] = torch.eye(n, dtype=x.dtype, device=x.device)
    omega[n:, :n] = -torch.eye(n, dtype=x.dtype, device=x.device)
    defect = (m.transpose(-1, -2) @ omega @ m - omega).abs().amax(dim=(-1, -2))
    worst = int(torch.argmax(defect))
    value = float(defect[worst])
    if not value <= tol:
        raise AssertionError(
            f"one-step map is not symplectic: max |MᵀΩM − Ω| = {value:.3e} > tol {tol:.1e} "
            f"at state {worst} ({x[worst].tolist()})"
        )
    return value


def fit_convergence_order(errors, step_sizes) -> float:
    """Least-squares slope of log(error) against log(step size): the observed order."""
    import numpy as np

    e = np.asarray(errors, dtype=float).ravel()
    s = np.asarray(step_sizes, dtype=float).ravel()
    if e.size != s.size or e.size < 2:
        raise ValueError(
            f"errors and step_sizes must have the same length >= 2, got {e.size} and {s.size}"
        )
    if not (np.all(np.isfinite(e)) and np.all(e > 0)):
        raise ValueError(f"errors must be finite and > 0, got {e.tolist()}")
    if not (np.all(np.isfinite(s)) and np.all(s > 0)) or np.unique(s).size < 2:
        raise ValueError(f"step_sizes must be finite, > 0 and not all equal, got {s.tolist()}")
    slope, _ = np.polyfit(np.log(s), np.log(e), 1)
    return float(slope)


def assert_convergence_order(errors, step_sizes, expected: float, tol: float = 0.15) -> float:
    """Assert that errors shrink like ``step_size**expected``.

    Fits the slope of log(error) against log(step size) by least squares
    (:func:`fit_convergence_order`) and requires ``|slope − expected| ≤ tol``. Choose step sizes in
    the asymptotic regime and errors well above round-off. Returns the fitted order.
    """
    order = fit_convergence_order(errors, step_sizes)
    if not abs(order - expected) <= tol:
        pairs = ", ".join(f"{s:.3g}: {e:.3e}" for s, e in zip(step_sizes, errors, strict=True))
        raise AssertionError(
            f"fitted convergence order {order:.3f} differs from {expected} by more than {tol} "
            f"(step size: error = {pairs})"
        )
    return order


def energy_error_ratio(energies, atol: float = 0.0):
    """Per-trajectory ``max e over the second half / max e over the first half``.

    ``energies``: (T+1,) or (B, T+1), with ``e(t) = |E(t) − E(0)|`` (t ≥ 1); errors below ``atol``
    count as ``atol``. Returns a (B,) numpy array (≈1 when bounded, ≈2 for linear drift).
    """
    import numpy as np

    e = np.asarray(energies.detach().cpu() if hasattr(energies, "detach") else energies, float)
    if e.ndim == 1:
        e = e[None]
    if e.ndim != 2 or e.shape[1] < 3:
        raise ValueError(f"energies must have shape (T+1,) or (B, T+1) with T >= 2, got {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("energies must be finite")
    err = np.abs(e[:, 1:] - e[:, :1])
    half = err.shape[1] // 2
    first = np.maximum(err[:, :half].max(axis=1), atol)
    second = np.maximum(err[:, half:].max(axis=1), atol)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(second == 0, 1.0, second / first)
    return ratio


def assert_energy_bounded(energies, h=None, *, max_ratio: float = 1.2, atol: float = 0.0) -> float:
    """Assert that the energy error of a long rollout stays bounded (does not drift).

    Args:
        energies: (T+1,) or (B, T+1) energies along trajectories; or, with ``h`` given, a
            trajectory batch (T+1, 2n) or (B, T+1, 2n) whose energies are ``h.hamiltonian``.
        h: an object with ``hamiltonian(x) -> (...)`` (optional).
        max_ratio: the bound on ``max |E − E(0)|`` over the second half divided by the same over
            the first half, for the worst trajectory (≈1 when bounded, ≈2 for linear drift).
        atol: energy errors below ``atol`` count as ``atol`` (round-off floor).

    Returns the worst ratio; raises ``AssertionError`` with it when it exceeds ``max_ratio``.
    """
    import numpy as np
    import torch

    if h is not None:
        if not callable(getattr(h, "hamiltonian", None)):
            raise TypeError(f"h must have hamiltonian(x); {type(h).__name__} has none")
        with torch.no_grad():
            energies = h.hamiltonian(torch.as_tensor(energies))
    ratio = energy_error_ratio(energies, atol)
    worst = int(np.argmax(ratio))
    value = float(ratio[worst])
    if not value <= max_ratio:
        raise AssertionError(
            f"energy error is not bounded: max error over the second half / first half = "
            f"{value:.3f} > {max_ratio} (trajectory {worst})"
        )
    return value
