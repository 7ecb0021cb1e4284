"""The teacher's trajectory bank: the states are the teacher's guided Euler steps over the grid (known values
for a denoiser that outputs a constant), and the ring buffer keeps the newest ``capacity`` trajectories."""
import pytest
import torch

from ditto2.diffusion.edm import karras_sigmas
from ditto2.diffusion.trajectories import TrajectoryBank, teacher_trajectory


class ConstantDenoiser(torch.nn.Module):
    """D(x; σ) = c for the conditional half (tags ≠ 0) and 0 for the unconditional one."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x, sigma, tags):
        cond = (tags != 0).any(dim=1).to(x.dtype).reshape(-1, 1, 1, 1)
        return self.c * cond * torch.ones_like(x)


def test_trajectory_follows_euler_steps_towards_the_denoiser():
    """Euler on dx/dσ = (x − D)/σ with a constant D keeps (x − D)/σ fixed: x_k = D + (x_0 − D)·σ_k/σ_0.
    Guided with w: D = 0 + w·(c − 0) for tagged rows, 0 for null-tag rows."""
    grid = karras_sigmas(6, 0.002, 80.0)
    x0 = torch.randn(3, 1, 4, 5, generator=torch.Generator().manual_seed(0)) * 80.0
    tags = torch.tensor([[1, 0], [0, 0], [2, 1]])
    w = torch.tensor([1.0, 2.0, 3.0])
    traj = teacher_trajectory(ConstantDenoiser(0.5), x0, grid, tags, w)
    assert traj.shape == (3, 6, 1, 4, 5)
    d = torch.tensor([0.5 * 1.0, 0.0, 0.5 * 3.0]).reshape(3, 1, 1, 1, 1)
    want = d + (x0.unsqueeze(1) - d) * (grid / grid[0]).reshape(1, -1, 1, 1, 1)
    assert torch.allclose(traj, want, rtol=1e-5, atol=1e-5)


def test_bank_keeps_the_newest_trajectories_and_draws_their_states():
    grid = karras_sigmas(4, 0.002, 80.0)
    bank = TrajectoryBank(3, grid)
    teacher = ConstantDenoiser(0.0)  # D = 0: x_k = z·σ_k, so each trajectory is identified by its noise
    tags = torch.ones(2, 1, dtype=torch.long)
    bank.add(teacher, torch.full((2, 1, 1, 1), 1.0), tags, torch.tensor([1.0, 1.5]))
    assert bank.count == 2
    bank.add(teacher, torch.full((2, 1, 1, 1), 2.0), tags * 2, torch.tensor([2.0, 2.5]))
    assert bank.count == 3  # the oldest (z = 1, w = 1) was replaced by the newest (z = 2, w = 2.5)
    assert bank.w.tolist() == [2.5, 1.5, 2.0]
    x_t, x_s, t, w = bank.draw(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([3, 2]))
    assert torch.allclose(x_t.flatten(), torch.stack([2.0 * grid[0], 1.0 * grid[1]]))
    assert torch.allclose(x_s.flatten(), torch.stack([2.0 * grid[3], 1.0 * grid[2]]), rtol=1e-4)
    assert t.flatten().tolist() == [2, 1] and w.tolist() == [2.5, 1.5]
    rows = bank.rows(100, torch.Generator().manual_seed(0))
    assert int(rows.min()) == 0 and int(rows.max()) == 2
    with pytest.raises(ValueError, match="do not fit"):
        bank.add(teacher, torch.zeros(4, 1, 1, 1), torch.ones(4, 1, dtype=torch.long), torch.ones(4))
    with pytest.raises(RuntimeError, match="empty"):
        TrajectoryBank(2, grid).draw(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
