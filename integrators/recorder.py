"""Collecting the saved states of a stepping integrator, with the divergence guard.

Without autograd the output (B, S+1, 2n) is preallocated and filled in place, and finiteness is
checked over blocks of saved states (one reduction per block instead of one per step). When the
states carry a graph they are kept in a list and stacked once at the end (in-place writes into a
preallocated tensor would make the backward pass quadratic in the number of saves), and each
saved state is checked as it comes.
"""

from __future__ import annotations

import torch

from hamgrad.errors import DivergenceError

# saved states between two finiteness checks when the output is preallocated
CHECK_BLOCK = 32


def _format_indices(idx: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in idx[:limit])
    return f"[{shown}{', ...' if len(idx) > limit else ''}] ({len(idx)} in all)"


def divergence_error(
    method: str, dt: float, step: int, save_every: int, bad: torch.Tensor
) -> DivergenceError:
    """The error for the first saved state (after ``step`` steps) that is non-finite.

    ``bad``: (B,) bool, the trajectories whose state is non-finite there.
    """
    idx = torch.nonzero(bad).flatten().tolist()
    where = (
        f"at step {step}" if save_every == 1 else f"between steps {step - save_every} and {step}"
    )
    return DivergenceError(
        f"rollout with method {method!r} (dt={dt:g}) diverged: non-finite state {where} "
        f"(t = {step * dt:g}) in trajectories {_format_indices(idx)}; "
        f"try a smaller dt or check the Hamiltonian"
    )


def first_divergence(traj: torch.Tensor, method: str, dt: float, save_every: int) -> None:
    """Raise ``DivergenceError`` for the first non-finite saved state of ``traj`` (B, S+1, 2n)."""
    with torch.no_grad():
        bad = ~torch.isfinite(traj).all(dim=-1)  # (B, S+1)
        if not bool(bad.any()):
            return
        k = int(torch.nonzero(bad.any(dim=0))[0, 0])
    raise divergence_error(method, dt, k * save_every, save_every, bad[:, k])


class TrajectoryRecorder:
    """Receives the state after every ``save_every`` steps and returns (B, S+1, 2n).

    ``x0``: (B, 2n), the initial state (saved as index 0); ``n_saves``: S = n_steps // save_every.
    """

    def __init__(
        self, x0: torch.Tensor, n_saves: int, save_every: int, dt: float, method: str
    ) -> None:
        self.x0 = x0
        self.n = x0.shape[-1] // 2
        self.n_saves = n_saves
        self.save_every = save_every
        self.dt = dt
        self.method = method
        self.out: torch.Tensor | None = None
        self.states: list[torch.Tensor] | None = None
        self.checked = 1  # saved states [0, checked) are known to be finite

    def save(self, k: int, q: torch.Tensor, p: torch.Tensor) -> None:
        """Record the state (q, p) after ``k * save_every`` steps, ``k`` = 1, 2, ..."""
        if self.out is None and self.states is None:
            if q.requires_grad or p.requires_grad:
                self.states = [self.x0]
            else:
                shape = (self.x0.shape[0], self.n_saves + 1, self.x0.shape[-1])
                self.out = torch.empty(shape, dtype=self.x0.dtype, device=self.x0.device)
                self.out[:, 0] = self.x0
        if self.states is not None:
            x = torch.cat((q, p), dim=-1)
            bad = ~torch.isfinite(x).all(dim=-1)
            if bool(bad.any()):
                raise divergence_error(
                    self.method, self.dt, k * self.save_every, self.save_every, bad
                )
            self.states.append(x)
            return
        out = self.out
        out[:, k, : self.n] = q
        out[:, k, self.n :] = p
        if k + 1 - self.checked >= CHECK_BLOCK or k == self.n_saves:
            self._check(k + 1)

    def _check(self, end: int) -> None:
        block = self.out[:, self.checked : end]
        if not bool(torch.isfinite(block).all()):
            bad = ~torch.isfinite(block).all(dim=-1)
            j = int(torch.nonzero(bad.any(dim=0))[0, 0])
            step = (self.checked + j) * self.save_every
            raise divergence_error(self.method, self.dt, step, self.save_every, bad[:, j])
        self.checked = end

    def result(self) -> torch.Tensor:
        if self.states is not None:
            return torch.stack(self.states, dim=1)
        return self.out
