"""Ground-truth generation of the HNN two-body dataset: ``simulate`` against a solve_ivp loop.

The HNN two-body task: 1000 orbits, 50 stored points over t ∈ [0, 20]. The peer integrates one
orbit at a time with scipy's ``solve_ivp`` (RK45, rtol 1e-9, default atol), the way HNN's data
generator does; its right-hand side is a plain numpy function of one state. To keep the run short
the peer loop is timed on the first ``PEER_ORBITS`` orbits and scaled linearly to 1000 (each
orbit is an independent call, so its cost is linear in the number of orbits).

Both are timed side by side (interleaved) in one run, and each reports the largest relative
energy error ``|H(x_t) − H(x_0)| / |H(x_0)|`` over its orbits and stored points.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import solve_ivp

from benchmarks.harness import time_pair
from hamgrad.systems import get_system, simulate
from hamgrad.systems.ground_truth import relative_energy_error

N_ORBITS = 1000
PEER_ORBITS = 100
COMMAND = ".venv/bin/python -m benchmarks generation"


def _two_body_rhs(_t: float, y: np.ndarray) -> np.ndarray:
    """d/dt of (q1, q2, p1, p2) for unit masses and G = 1 (one state, numpy)."""
    d = y[0:2] - y[2:4]
    force = d / np.sqrt(d @ d) ** 3
    return np.concatenate([y[4:6], y[6:8], -force, force])


def _peer(x0: np.ndarray, t_eval: np.ndarray) -> np.ndarray:
    """One ``solve_ivp`` call per orbit (RK45, rtol 1e-9): ``(B, T+1, 8)``."""
    out = []
    for y0 in x0:
        sol = solve_ivp(_two_body_rhs, (t_eval[0], t_eval[-1]), y0, t_eval=t_eval, rtol=1e-9)
        out.append(sol.y.T)
    return np.stack(out)


def run() -> list[dict]:
    torch.set_num_threads(1)
    system = get_system("two-body")
    preset = system.preset("hnn")
    n_steps, dt = preset["n_steps"], preset["dt"]
    x0 = system.sample_initial(N_ORBITS, seed=0)
    x0_peer = x0[:PEER_ORBITS].numpy()
    t_eval = np.arange(n_steps + 1) * dt
    scale = N_ORBITS / PEER_ORBITS

    peer_traj = torch.from_numpy(_peer(x0_peer, t_eval))
    peer_err = float(relative_energy_error(system, peer_traj).max())
    rows = []
    variants = [
        ({}, "simulate's default (closed-form Kepler flow)", True),
        ({"method": "yoshida8"}, "8th-order symplectic composition, default substeps", False),
        (
            {"method": "yoshida8", "substeps": 2, "check": False},
            "8th-order composition at matched accuracy (2 substeps, no energy check)",
            False,
        ),
    ]
    for kwargs, label, is_target in variants:
        traj = simulate(system, x0, dt, n_steps, **kwargs)
        ours_err = float(relative_energy_error(system, traj).max())
        t_ours, t_peer = time_pair(
            lambda kw=kwargs: simulate(system, x0, dt, n_steps, **kw),
            lambda: _peer(x0_peer, t_eval),
            repeat=3,
            warmup=1,
        )
        t_peer *= scale
        ratio = t_ours / t_peer
        rows.append(
            {
                "what": (
                    f"HNN two-body data generation, 1000 orbits × 50 points: {label}; "
                    f"max relative energy error {ours_err:.1e} (peer {peer_err:.1e})"
                ),
                "ours": t_ours,
                "peer": t_peer,
                "ratio": ratio,
                "target": (
                    "≤ 0.02 (≥ 50× faster) at equal or better energy error"
                    if is_target
                    else "for reference (the integrator path of systems without a closed form)"
                ),
                "met": bool(ratio <= 0.02 and ours_err <= peer_err) if is_target else None,
                "command": COMMAND,
                "unit": "s",
                "energy_error_ours": ours_err,
                "energy_error_peer": peer_err,
                "peer_note": (
                    f"per-orbit solve_ivp(RK45, rtol=1e-9) loop timed on {PEER_ORBITS} orbits, "
                    f"scaled ×{scale:g} to {N_ORBITS}"
                ),
                "simulate_options": {k: v for k, v in kwargs.items()},
            }
        )
    return rows
