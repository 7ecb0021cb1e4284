"""The frozen guided teacher's ODE trajectories over the distillation grid, kept in a ring buffer: for any
grid pair (t, s) the exact x_s a CTM jump G(x_t, t, s) should land on, with no bootstrapped target.

Local consistency (paper eq. 4) teaches a long jump only through a chain of shorter ones, each learned
against an EMA copy of the student, so a jump over 19 grid intervals inherits the blur of the whole chain
(``results/distill-diagnosis.md``: 1-step outputs 2.6 dB too quiet). A trajectory pair is CTM's soft
consistency with the teacher solving all the way to s — too slow to solve per training step, so the
trajectories are solved once, stored, and refreshed a few per step.
"""
from __future__ import annotations

from typing import Optional

import torch

from ditto2.diffusion.consistency import teacher_step


@torch.no_grad()
def teacher_trajectory(teacher, x: torch.Tensor, grid: torch.Tensor, tags, w, solver: str = "euler") -> torch.Tensor:
    """x at grid[0] -> (B, len(grid), *x.shape[1:]): x and the teacher's guided steps through every grid point."""
    states = [x]
    for i in range(len(grid) - 1):
        states.append(teacher_step(teacher, states[-1], grid[i], grid[i + 1], tags, w, solver))
    return torch.stack(states, dim=1)


class TrajectoryBank:
    """Up to ``capacity`` teacher trajectories from unit noise at grid[0], each with its tags and guidance w;
    once full, new ones replace the oldest. Not part of a checkpoint: a resumed run solves it again."""

    def __init__(self, capacity: int, grid: torch.Tensor, solver: str = "euler"):
        if capacity < 1:
            raise ValueError(f"a trajectory bank needs capacity >= 1, got {capacity}")
        self.capacity, self.grid, self.solver = capacity, grid, solver
        self.states = self.tags = self.w = None
        self.added = 0  # trajectories ever added; the bank holds the newest ``count``

    @property
    def count(self) -> int:
        return min(self.added, self.capacity)

    @property
    def next(self) -> int:
        """The slot the next trajectory goes to (the oldest once the bank is full)."""
        return self.added % self.capacity

    def add(self, teacher, z: torch.Tensor, tags: torch.Tensor, w: torch.Tensor) -> None:
        """Solve trajectories from unit noises ``z`` (B ≤ capacity) and store them over the oldest."""
        b = z.shape[0]
        if b > self.capacity:
            raise ValueError(f"{b} trajectories do not fit a bank of {self.capacity}")
        traj = teacher_trajectory(teacher, z * self.grid[0], self.grid, tags, w, self.solver)
        if self.states is None:
            self.states = traj.new_zeros((self.capacity, *traj.shape[1:]))
            self.tags = tags.new_zeros((self.capacity, *tags.shape[1:]))
            self.w = w.new_zeros(self.capacity)
        slots = (self.next + torch.arange(b)) % self.capacity
        self.states[slots], self.tags[slots], self.w[slots] = traj, tags, w
        self.added += b

    def draw(self, rows: torch.Tensor, n: torch.Tensor, m: torch.Tensor):
        """(x at grid[n], x at grid[m], tags, w) of the held trajectories ``rows``."""
        if self.count == 0:
            raise RuntimeError("the trajectory bank is empty: add trajectories before drawing")
        if int(rows.max()) >= self.count:
            raise IndexError(f"row {int(rows.max())} of a bank holding {self.count}")
        return self.states[rows, n], self.states[rows, m], self.tags[rows], self.w[rows]

    def rows(self, b: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.randint(0, self.count, (b,), generator=generator, device=self.states.device)
