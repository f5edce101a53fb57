"""Integrator benchmarks on a learned separable GradNet Hamiltonian H = T(p) + V(q).

1. Overhead: a batched leapfrog rollout (B = 1024, no autograd) against the same gradient
   evaluations called back to back (n+1 of ∇V, n of ∇T): the rollout may cost at most 1.3×.
2. Equal accuracy, on two horizons from the same initial states (HNN's pendulum evaluation rule:
   each coordinate of magnitude in [0.2, 1.0], random sign): t ∈ [0, 20] (the HNN pendulum
   evaluation, B = 1024) and t ∈ [0, 200] (B = 256, to keep the run short). Each symplectic method
   (leapfrog, yoshida4, blanes-moan4) runs at a fixed step chosen for a final-state error of
   about 1e-3 … 3e-2; against it run torchdiffeq rk4 at the largest step of a fine geometric grid
   (step ratio 2^(1/16)) whose error is ≤ ours while the next larger grid step's is not, and
   dopri5 at the loosest rtol = atol of a grid (ratio 10^(1/8)) with error ≤ ours. Timing:
   ``time_pair`` (interleaved), median of 3 runs after 1 warm-up on [0, 20], a single
   interleaved run on [0, 200]. The error of a run is the largest absolute coordinate error of
   the final state over the batch, against a yoshida8 reference at dt = 0.05 (its own error,
   estimated by Richardson extrapolation from dt = 0.1, is reported with the rows); everything
   in float64. Network evaluations are counted
   (one network on one batch: rk4/dopri5 evaluate ∇H, two networks, per stage).
   Target: the symplectic rollout is ≥ 3× faster (ratio ours/peer ≤ 1/3).

The Hamiltonian: mgradnet-m for ∇T(p) and gradnet-c for ∇V(q), fitted briefly to a pendulum
(T = p², V = 3(1 − cos q), the HNN pendulum) so that the dynamics are those of a trained model.

Run: ``.venv/bin/python -m benchmarks integrators``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from benchmarks.harness import time_pair
from hamgrad.errors import DivergenceError
from hamgrad.hamiltonian import SeparableHamiltonian
from hamgrad.integrators import rollout
from hamgrad.models import build_model

COMMAND = ".venv/bin/python -m benchmarks integrators"
BATCH = 1024
REFERENCE_METHOD, REFERENCE_DT = "yoshida8", 0.05
RK4_STEP_RATIO = 2.0 ** (1 / 16)  # neighbouring rk4 steps on the grid (errors differ by ~1.19x)
RK4_PROBE_DT = 0.2  # a cheap first rk4 run; the error model e ∝ dt^4 predicts the rest
DOPRI5_COARSE_TOLS = [10.0 ** (-k / 2) for k in range(4, 25)]  # 1e-2 ... 1e-12
DOPRI5_REFINE = 8  # refine the coarse grid to 10^(-1/8) between its last failure and first pass


@dataclass(frozen=True)
class Horizon:
    """One equal-accuracy setting: t ∈ [0, t_end] on ``batch`` trajectories, the symplectic
    ``(method, dt)`` pairs run on it, and the timing repeats (``time_pair``)."""

    t_end: float
    batch: int
    methods: tuple[tuple[str, float], ...]
    repeat: int
    warmup: int


HORIZONS = (
    # HNN pendulum evaluation horizon
    Horizon(20.0, BATCH, (("leapfrog", 0.05), ("yoshida4", 0.1), ("blanes-moan4", 0.4)), 3, 1),
    # ten times longer: rk4's energy drift becomes a phase error growing like t²
    Horizon(200.0, 256, (("leapfrog", 0.01), ("yoshida4", 0.0625), ("blanes-moan4", 0.25)), 1, 0),
)


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


class EqualError:
    """Final-state errors of rollouts over one horizon against a reference, with the searches
    for the rk4 step and the dopri5 tolerance that match a given error (results cached)."""

    def __init__(self, h: CountingHamiltonian, x0: torch.Tensor, t_end: float) -> None:
        self.h, self.x0, self.t_end = h, x0, t_end
        t0 = time.perf_counter()
        fine = round(t_end / REFERENCE_DT)
        with torch.no_grad():
            coarse_ref = self.final_state(fine // 2, REFERENCE_METHOD)
            self.ref = self.final_state(fine, REFERENCE_METHOD)
        order = 8
        #: Richardson estimate of the reference's own error (order 8, step ratio 2)
        self.ref_error = float((self.ref - coarse_ref).abs().max()) / (2**order - 1)
        print(
            f"  t in [0, {t_end:g}], B={x0.shape[0]}: reference {REFERENCE_METHOD} "
            f"dt={REFERENCE_DT}, estimated error {self.ref_error:.1e} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        self._rk4: dict[int, tuple[float, int]] = {}
        self._dopri5: dict[float, tuple[float, int]] = {}

    def final_state(self, n_steps: int, method: str, **options) -> torch.Tensor:
        dt = self.t_end / n_steps
        return rollout(self.h, self.x0, dt, n_steps, method=method, save_every=n_steps, **options)[
            :, -1
        ]

    def error(self, n_steps: int, method: str, **options) -> tuple[float, int]:
        """Max final-state error and the number of network evaluations it took."""
        self.h.evaluations = 0
        try:
            with torch.no_grad():
                out = self.final_state(n_steps, method, **options)
        except DivergenceError:
            return math.inf, self.h.evaluations
        return float((out - self.ref).abs().max()), self.h.evaluations

    def rk4_steps(self, k: int) -> int:
        """Step count of the k-th point of the rk4 grid (dt ≈ RK4_PROBE_DT / ratio^k, k ∈ ℤ)."""
        return max(1, math.ceil(self.t_end / RK4_PROBE_DT * RK4_STEP_RATIO**k - 1e-9))

    def rk4(self, k: int) -> tuple[float, int]:
        n = self.rk4_steps(k)
        if n not in self._rk4:
            self._rk4[n] = self.error(n, "rk4")
        return self._rk4[n]

    def cheapest_rk4(self, target: float) -> tuple[int, float, int]:
        """The fewest rk4 steps on the grid with error ≤ target (one step fewer on the grid
        exceeds it): ``(n_steps, error, evaluations)``."""
        k = 0
        while (err := self.rk4(k)[0]) > target:
            # the error model e ∝ dt^4 says how many grid points finer (halve dt if diverged)
            k += 16 if math.isinf(err) else self._grid_points_to(err, target)
        while self.rk4_steps(k - 1) < self.rk4_steps(k) and self.rk4(k - 1)[0] <= target:
            k -= 1
        return (self.rk4_steps(k), *self.rk4(k))

    @staticmethod
    def _grid_points_to(err: float, target: float) -> int:
        return max(1, math.ceil(math.log(err / target) / 4 / math.log(RK4_STEP_RATIO)))

    def dopri5(self, tol: float) -> tuple[float, int]:
        if tol not in self._dopri5:
            self._dopri5[tol] = self.error(1, "dopri5", rtol=tol, atol=tol)
        return self._dopri5[tol]

    def loosest_dopri5(self, target: float) -> tuple[float, float, int]:
        """The loosest rtol = atol on the refined grid with error ≤ target, scanning from loose
        to tight: ``(tol, error, evaluations)``."""
        passing = (i for i, tol in enumerate(DOPRI5_COARSE_TOLS) if self.dopri5(tol)[0] <= target)
        first = next(passing, None)
        if first is None:
            raise RuntimeError(
                f"dopri5 does not reach error {target:.1e} at rtol = atol = "
                f"{DOPRI5_COARSE_TOLS[-1]:.0e}"
            )
        tol = DOPRI5_COARSE_TOLS[first]
        if first > 0:  # the coarse tolerance before it failed: try those in between
            for j in range(DOPRI5_REFINE // 2 - 1, 0, -1):
                finer = tol * 10.0 ** (j / DOPRI5_REFINE)
                if self.dopri5(finer)[0] <= target:
                    tol = finer
                    break
        return (tol, *self.dopri5(tol))


def equal_error_rows(h: SeparableHamiltonian, horizon: Horizon) -> list[dict]:
    """The rows of one horizon: each symplectic method against rk4 and dopri5."""
    counting = CountingHamiltonian(copy.deepcopy(h).double())
    t_end = horizon.t_end
    bench = EqualError(counting, initial_states(horizon.batch, torch.float64), t_end)
    span = f"t in [0, {t_end:g}], B={horizon.batch}, float64"
    rows = []
    for method, dt in horizon.methods:
        n_ours = round(t_end / dt)
        target, evals_ours = bench.error(n_ours, method)
        print(f"  {method} dt={dt}: final-state error {target:.2e}", flush=True)
        n_rk4, err_rk4, evals_rk4 = bench.cheapest_rk4(target)
        tol, err_dp, evals_dp = bench.loosest_dopri5(target)
        peers = [
            (
                "rk4",
                f"{n_rk4} steps, dt={t_end / n_rk4:.4g}",
                err_rk4,
                evals_rk4,
                lambda n=n_rk4: bench.error(n, "rk4"),
            ),
            (
                "dopri5",
                f"rtol=atol={tol:.2e}",
                err_dp,
                evals_dp,
                lambda tol=tol: bench.error(1, "dopri5", rtol=tol, atol=tol),
            ),
        ]
        for peer, setting, err_peer, evals_peer, run_peer in peers:
            t_ours, t_peer = time_pair(
                lambda m=method, n=n_ours: bench.error(n, m),
                run_peer,
                repeat=horizon.repeat,
                warmup=horizon.warmup,
            )
            ratio = t_ours / t_peer
            rows.append(
                {
                    "what": f"{method} (dt={dt}) vs {peer} ({setting}) at equal final-state "
                    f"error, {span}",
                    "ours": t_ours,
                    "peer": t_peer,
                    "ratio": ratio,
                    "target": "<= 0.333 (ours >= 3x faster)",
                    "met": ratio <= 1 / 3,
                    "command": COMMAND,
                    "horizon": t_end,
                    "batch": horizon.batch,
                    "method": method,
                    "dt": dt,
                    "peer_method": peer,
                    "peer_setting": setting,
                    "error_ours": target,
                    "error_peer": err_peer,
                    "reference": f"{REFERENCE_METHOD} dt={REFERENCE_DT}",
                    "reference_error_estimate": bench.ref_error,
                    "network_evaluations_ours": evals_ours,
                    "network_evaluations_peer": evals_peer,
                    "evaluation_ratio": evals_ours / evals_peer,
                    "timing": f"median of {horizon.repeat} interleaved runs "
                    f"after {horizon.warmup} warm-up",
                }
            )
            print(
                f"  {rows[-1]['what']}: {t_ours:.2f} s vs {t_peer:.2f} s = {ratio:.2f}; "
                f"errors {target:.2e} vs {err_peer:.2e}; "
                f"{evals_ours} vs {evals_peer} network evaluations",
                flush=True,
            )
    return rows


def run() -> list[dict]:
    torch.set_num_threads(1)
    h = learned_pendulum()
    rows = [overhead_row(h)]
    for horizon in HORIZONS:
        rows += equal_error_rows(h, horizon)
    return rows
