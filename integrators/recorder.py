"""Collecting the saved states of a stepping integrator, with the divergence guard.

Saved states are gathered in blocks of ``BLOCK`` (references only, no copy per step); each full
block is stacked once, checked for non-finite values once, and then either written into the
preallocated output (no autograd graph: memory is the output and one block) or kept as a block
tensor and concatenated at the end (a graph is being recorded: in-place writes into one
preallocated tensor would make the backward pass quadratic in the number of saves).
"""

from __future__ import annotations

import torch

from hamgrad.errors import DivergenceError

#: saved states per block (one stack and one finiteness check per block)
BLOCK = 128


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


def first_divergence(
    traj: torch.Tensor, method: str, dt: float, save_every: int, offset: int = 0
) -> None:
    """Raise ``DivergenceError`` for the first non-finite saved state of ``traj`` (B, S, 2n) whose
    index 0 is saved state number ``offset``; return quietly when all are finite."""
    with torch.no_grad():
        if bool(torch.isfinite(traj).all()):
            return
        bad = ~torch.isfinite(traj).all(dim=-1)  # (B, S)
        k = int(torch.nonzero(bad.any(dim=0))[0, 0])
    raise divergence_error(method, dt, (offset + k) * save_every, save_every, bad[:, k])


class TrajectoryRecorder:
    """Receives the state after every ``save_every`` steps and returns (B, S+1, 2n).

    ``x0``: (B, 2n), the initial state (saved as index 0); ``n_saves``: S = n_steps // save_every.
    """

    def __init__(
        self, x0: torch.Tensor, n_saves: int, save_every: int, dt: float, method: str
    ) -> None:
        self.x0 = x0
        self.n_saves = n_saves
        self.save_every = save_every
        self.dt = dt
        self.method = method
        self.qs: list[torch.Tensor] = []
        self.ps: list[torch.Tensor] = []
        self.next_index = 1  # saved-state index of qs[0]
        self.out: torch.Tensor | None = None  # preallocated output (no graph)
        self.blocks: list[torch.Tensor] | None = None  # block tensors (graph)

    def save(self, k: int, q: torch.Tensor, p: torch.Tensor) -> None:
        """Record the state (q, p), each (B, n), after ``k * save_every`` steps, ``k`` = 1, 2, ..."""
        self.qs.append(q)
        self.ps.append(p)
        if len(self.qs) == BLOCK or k == self.n_saves:
            self._flush()

    def _flush(self) -> None:
        block = torch.cat((torch.stack(self.qs, dim=1), torch.stack(self.ps, dim=1)), dim=-1)
        self.qs, self.ps = [], []
        first_divergence(block, self.method, self.dt, self.save_every, offset=self.next_index)
        start = self.next_index
        self.next_index += block.shape[1]
        if self.out is None and self.blocks is None:
            if block.requires_grad or self.x0.requires_grad:
                self.blocks = [self.x0.unsqueeze(1)]
            else:
                shape = (self.x0.shape[0], self.n_saves + 1, self.x0.shape[-1])
                self.out = torch.empty(shape, dtype=self.x0.dtype, device=self.x0.device)
                self.out[:, 0] = self.x0
        if self.blocks is not None:
            self.blocks.append(block)
        else:
            self.out[:, start : self.next_index] = block

    def result(self) -> torch.Tensor:
        if self.qs:
            self._flush()
        if self.blocks is not None:
            return torch.cat(self.blocks, dim=1)
        return self.out
