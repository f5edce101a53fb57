"""Integrator benchmarks on a learned separable GradNet Hamiltonian H = T(p) + V(q).

1. Overhead: a batched leapfrog rollout (B = 1024, no autograd) against the same gradient
   evaluations called back to back (n+1 of ∇V, n of ∇T): the rollout may cost at most 1.3×.
2. Equal accuracy: over the HNN pendulum evaluation protocol (t ∈ [0, 20], initial coordinates of
   magnitude in [0.2, 1.0]), leapfrog and yoshida4 at a fixed step against torchdiffeq rk4 (the
   largest step, from a geometric grid, whose final-state error is ≤ the symplectic one's) and
   dopri5 (the loosest rtol = atol, from a grid, with final-state error ≤ the symplectic one's). Errors are the max over trajectories of
   the final-state error against a yoshida8 reference at dt = 0.1 (its own error, estimated by
   Richardson extrapolation from dt = 0.2, is reported with the rows); everything in float64.
   Target: the symplectic rollout is ≥ 3× faster (ratio ours/peer ≤ 1/3).

The Hamiltonian: mgradnet-m for ∇T(p) and gradnet-c for ∇V(q), fitted briefly to a pendulum
(T = p², V = 3(1 − cos q), the HNN pendulum) so that the dynamics are those of a trained model.

Run: ``.venv/bin/python -m benchmarks integrators``.
"""

from __future__ import annotations

import copy
import math
import time

import torch

from benchmarks.harness import time_pair
from hamgrad.hamiltonian import SeparableHamiltonian
from hamgrad.integrators import rollout
from hamgrad.models import build_model

COMMAND = ".venv/bin/python -m benchmarks integrators"
BATCH = 1024
HORIZON = 20.0  # HNN pendulum evaluation horizon
RK4_STEPS = [25, 35, 50, 70, 100, 140, 200, 280, 400, 560, 800, 1120, 1600]
DOPRI5_TOLS = [10.0 ** (-k / 2) for k in range(4, 25)]  # 1e-2 ... 1e-12


def learned_pendulum(seed: int = 0, steps: int = 300) -> SeparableHamiltonian:
    """A separable GradNet Hamiltonian fitted to ∇T(p) = 2p, ∇V(q) = 3 sin q (float32)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    kinetic = build_model("mgradnet-m", dim=1)
    potential = build_model("gradnet-c", dim=1)
    h = SeparableHamiltonian(kinetic, potential)
    opt = torch.optim.Adam(h.parameters(), lr=1e-2)
    for _ in range(steps):
        q = (torch.rand(256, 1, generator=gen) * 2 - 1) * math.pi
        p = (torch.rand(256, 1, generator=gen) * 2 - 1) * 3.0
        loss = ((h.grad_q(q) - 3 * torch.sin(q)) ** 2).mean()
        loss = loss + ((h.grad_p(p) - 2 * p) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    h.requires_grad_(False)
    return h.eval()


def initial_states(n: int, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    """HNN's pendulum evaluation rule: each coordinate of magnitude U[0.2, 1.0], random sign."""
    gen = torch.Generator().manual_seed(seed)
    magnitude = 0.2 + 0.8 * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    sign = torch.where(torch.rand(n, 2, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
    return (magnitude * sign).to(dtype)


def overhead_row(h: SeparableHamiltonian) -> dict:
    n_steps = 100
    x0 = initial_states(BATCH, torch.float32)
    q, p = x0[:, :1].contiguous(), x0[:, 1:].contiguous()

    def ours():
        with torch.no_grad():
            rollout(h, x0, 0.05, n_steps, method="leapfrog")

    def bare():
        with torch.no_grad():
            h.grad_q(q)
            for _ in range(n_steps):
                h.grad_p(p)
                h.grad_q(q)

    t_ours, t_bare = time_pair(ours, bare, repeat=7, warmup=1)
    ratio = t_ours / t_bare
    return {
        "what": f"leapfrog rollout overhead (B={BATCH}, {n_steps} steps, float32, no grad) "
        f"vs its {2 * n_steps + 1} gradient evaluations alone",
        "ours": t_ours,
        "peer": t_bare,
        "ratio": ratio,
        "target": "<= 1.3",
        "met": ratio <= 1.3,
        "command": COMMAND,
        "n_gradient_evaluations": 2 * n_steps + 1,
        "seconds_per_evaluation": t_bare / (2 * n_steps + 1),
    }


class CountingHamiltonian:
    """Passes the Hamiltonian protocol through and counts network evaluations (one network on
    one batch: ``grad_q`` or ``grad_p`` is one, ``grad`` two)."""

    def __init__(self, h: SeparableHamiltonian) -> None:
        self.h, self.dof, self.dim, self.separable = h, h.dof, h.dim, h.separable
        self.evaluations = 0

    def grad_q(self, q: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        return self.h.grad_q(q)

    def grad_p(self, p: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        return self.h.grad_p(p)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        self.evaluations += 2
        return self.h.grad(x)


def final_error(h: CountingHamiltonian, x0, ref, n_steps, method, **options) -> tuple[float, int]:
    """Max final-state error at t = HORIZON and the number of network evaluations it took."""
    h.evaluations = 0
    with torch.no_grad():
        out = rollout(
            h, x0, HORIZON / n_steps, n_steps, method=method, save_every=n_steps, **options
        )
    return float((out[:, -1] - ref).abs().max()), h.evaluations


def equal_error_rows(h: SeparableHamiltonian) -> list[dict]:
    h64 = CountingHamiltonian(copy.deepcopy(h).double())
    x0 = initial_states(BATCH, torch.float64)
    t0 = time.perf_counter()
    with torch.no_grad():
        ref_coarse = rollout(h64, x0, 0.2, 100, method="yoshida8", save_every=100)[:, -1]
        ref = rollout(h64, x0, 0.1, 200, method="yoshida8", save_every=200)[:, -1]
    ref_err = float((ref - ref_coarse).abs().max()) / 255  # Richardson estimate, order 8
    print(
        f"  reference: yoshida8 dt=0.1, estimated error {ref_err:.1e} "
        f"({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )

    rk4 = [(n, *final_error(h64, x0, ref, n, "rk4")) for n in RK4_STEPS[:1]]
    rows = []
    for method, dt in (("leapfrog", 0.05), ("yoshida4", 0.1)):
        n_ours = round(HORIZON / dt)
        target, evals_ours = final_error(h64, x0, ref, n_ours, method)
        print(f"  {method} dt={dt}: final-state error {target:.2e}", flush=True)
        # rk4: the fewest steps with error <= target
        k = 0
        while rk4[k][1] > target:
            k += 1
            if k == len(rk4):
                rk4.append((RK4_STEPS[k], *final_error(h64, x0, ref, RK4_STEPS[k], "rk4")))
        n_rk4, err_rk4, evals_rk4 = rk4[k]
        # dopri5: the loosest tolerance with error <= target
        for tol in DOPRI5_TOLS:
            err_dp, evals_dp = final_error(h64, x0, ref, 1, "dopri5", rtol=tol, atol=tol)
            if err_dp <= target:
                break
        peers = [
            (
                "rk4",
                f"{n_rk4} steps (dt={HORIZON / n_rk4:.3g})",
                err_rk4,
                evals_rk4,
                lambda n=n_rk4: final_error(h64, x0, ref, n, "rk4"),
            ),
            (
                "dopri5",
                f"rtol=atol={tol:.1e}",
                err_dp,
                evals_dp,
                lambda tol=tol: final_error(h64, x0, ref, 1, "dopri5", rtol=tol, atol=tol),
            ),
        ]
        for peer, setting, err_peer, evals_peer, run_peer in peers:
            t_ours, t_peer = time_pair(
                lambda m=method, n=n_ours: final_error(h64, x0, ref, n, m),
                run_peer,
                repeat=3,
                warmup=1,
            )
            ratio = t_ours / t_peer
            rows.append(
                {
                    "what": f"{method} (dt={dt}) vs {peer} ({setting}) at equal final-state "
                    f"error, t in [0, {HORIZON:g}], B={BATCH}, float64",
                    "ours": t_ours,
                    "peer": t_peer,
                    "ratio": ratio,
                    "target": "<= 0.333 (ours >= 3x faster)",
                    "met": ratio <= 1 / 3,
                    "command": COMMAND,
                    "error_ours": target,
                    "error_peer": err_peer,
                    "reference_error_estimate": ref_err,
                    "network_evaluations_ours": evals_ours,
                    "network_evaluations_peer": evals_peer,
                }
            )
            print(
                f"  {rows[-1]['what']}: {t_ours:.2f} s vs {t_peer:.2f} s "
                f"({evals_ours} vs {evals_peer} network evaluations)",
                flush=True,
            )
    return rows


def run() -> list[dict]:
    torch.set_num_threads(1)
    h = learned_pendulum()
    return [overhead_row(h), *equal_error_rows(h)]
