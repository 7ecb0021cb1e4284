"""What ITO differentiates through (paper §3.3): noise z -> mel. One interface, two kinds.

DITTO-2: a CM / CTM student, M-step sampling while optimizing, T-step sampling to decode.
DITTO:   the base model's full guided sampler (T=20), gradient checkpointing on every step, the
         same sampler to decode. Only the surrogate differs; the ITO loop is shared.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ditto2.diffusion.consistency import CMStudent, CTMStudent, decode_sigmas
from ditto2.diffusion.edm import karras_sigmas
from ditto2.diffusion.samplers import SAMPLERS, base_sigmas, sample_guided


def m_schedule(k: int, m) -> list[int]:
    """Steps M of the surrogate at each of the K optimization steps: a fixed int, or "adaptive"
    (paper §5.3): M=1 for ⌊K/2⌋ steps, M=2 for ⌊3K/8⌋, M=4 for the rest."""
    if m == "adaptive":
        a, b = k // 2, 3 * k // 8
        return [1] * a + [2] * b + [4] * (k - a - b)
    if isinstance(m, int) and m >= 1:
        return [m] * k
    raise ValueError(f"M must be a positive int or 'adaptive', got {m!r}")


class Surrogate(nn.Module):
    """``optimize_forward(z, M)``: differentiable mel from unit noise z; ``decode(z)``: final mel."""

    sigma_max: float

    def optimize_forward(self, z: torch.Tensor, m: int) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def evals_per_step(self, m: int) -> float:
        """Network evaluations (batch-1 equivalents) of one optimization step, forward + backward."""
        raise NotImplementedError


class StudentSurrogate(Surrogate):
    """DITTO-2. The CFG scale w is an input of the student: one call per step instead of two.

    Optimization samples deterministically (γ=0 for CTM; fixed renoising noise for CM M>1) so
    the objective does not change between steps; decoding uses γ-sampling / CM multistep.
    """

    def __init__(self, student: nn.Module, tags: torch.Tensor, w: float = 2.0, decode_steps: int = 2,
                 gamma: float = 0.2, grid_steps: int = 20, seed: int = 0):
        super().__init__()
        if not isinstance(student, (CMStudent, CTMStudent)):
            raise TypeError(f"a student surrogate needs a CMStudent or CTMStudent, got {type(student).__name__}")
        self.student = student.requires_grad_(False)
        self.kind = "ctm" if isinstance(student, CTMStudent) else "cm"
        self.register_buffer("tags", tags, persistent=False)
        self.w, self.decode_steps, self.gamma, self.seed = w, decode_steps, gamma, seed
        p = student.precond
        self.sigma_max = p.sigma_max
        self.register_buffer("grid", karras_sigmas(grid_steps, p.sigma_min, p.sigma_max), persistent=False)
        decode_sigmas(decode_steps, self.grid)  # validates T before any compute

    def _run(self, z, steps: int, gamma: float, seed: Optional[int]):
        sigmas = decode_sigmas(steps, self.grid)
        gen = torch.Generator(device=z.device).manual_seed(seed) if seed is not None else None
        tags = self.tags.expand(z.shape[0], -1) if self.tags.shape[0] == 1 else self.tags
        return self.student.sample(z, sigmas, tags, self.w, gamma=gamma, generator=gen)

    def optimize_forward(self, z, m):
        return self._run(z, m, 0.0, self.seed + 1000)

    @torch.no_grad()
    def decode(self, z):
        return self._run(z, self.decode_steps, self.gamma, self.seed)

    def evals_per_step(self, m):
        return 3.0 * m  # forward + backward ≈ 3 forwards, one call per step (distilled CFG)


class BaseModelSurrogate(Surrogate):
    """DITTO baseline: backpropagate through the base model's T-step guided sampler."""

    def __init__(self, denoiser: nn.Module, tags: torch.Tensor, w: float = 2.0, steps: int = 20,
                 sampler: str = "euler", checkpoint: bool = True):
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
        self.denoiser = denoiser.requires_grad_(False)
        self.register_buffer("tags", tags, persistent=False)
        self.w, self.steps, self.checkpoint = w, steps, checkpoint
        self.sampler = sampler
        self.sigma_max = denoiser.sigma_max
        self.register_buffer("sigmas", base_sigmas(steps, denoiser.sigma_min, denoiser.sigma_max), persistent=False)

    def _run(self, z, checkpoint: bool):
        tags = self.tags.expand(z.shape[0], -1) if self.tags.shape[0] == 1 else self.tags
        return sample_guided(self.denoiser, z, tags, self.w, self.sigmas, self.sampler, checkpoint)

    def optimize_forward(self, z, m=None):
        return self._run(z, self.checkpoint)

    @torch.no_grad()
    def decode(self, z):
        return self._run(z, False)

    def evals_per_step(self, m=None):
        # per step: guided forward (2 calls) + recompute (2) + backward (≈4) with checkpointing
        return (8.0 if self.checkpoint else 6.0) * self.steps
