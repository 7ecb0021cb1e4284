"""Consistency students (paper §2.2, §3.2), the guided teacher step they are distilled from, and
their samplers: CM 1-step / multistep ("ping-pong") and CTM γ-sampling (DESIGN.md decision 6).

σ-space throughout: x_σ = x_0 + σ·ε. A CM student maps (x_σ, σ) to x_{σ_min}; a CTM student maps
(x_t, t, s) to x_s for any s ≤ t. Samplers take the initial noise explicitly and never touch grad
mode or global seeds, so ITO can backpropagate through them.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ditto2.diffusion.edm import EDMPrecond, c_noise
from ditto2.diffusion.guidance import guided_denoise


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    v = v.reshape(-1).expand(like.shape[0]) if v.numel() == 1 else v.reshape(-1)
    return v.reshape(-1, *([1] * (like.ndim - 1)))


class _Student(nn.Module):
    def __init__(self, precond: EDMPrecond):
        super().__init__()
        self.precond = precond

    @property
    def sigma_min(self) -> float:
        return self.precond.sigma_min


class CMStudent(_Student):
    """G(x, σ, tags, w) = c_skip·x + c_out·F(...) with the boundary condition G(x, σ_min) = x.
    ``precond`` is a ConsistencyPrecond around a UNet with the w embedding switched on."""

    def forward(self, x, sigma, tags, w):
        return self.precond(x, sigma, tags, w=w)

    def sample(self, z, sigmas, tags, w, gamma=None, generator: Optional[torch.Generator] = None):
        """Unit noise z -> x at σ_min over ``sigmas`` (``cm_sample``). ``gamma`` is accepted so both students
        sample alike and is not used: CM multistep renoises fully (CTM's γ = 1)."""
        return cm_sample(lambda x, s: self(x, s, tags, w), z * sigmas[0], sigmas, generator)


class CTMStudent(_Student):
    """Euler parameterization (CTM App.): G(x_t, t, s) = (s/t)·x_t + (1 − s/t)·g(x_t, t, s).

    g is an EDM-preconditioned UNet with w and s embeddings. With both embeddings at zero, g is the
    teacher's denoiser and G is exactly one teacher Euler step from t to s; G(x, t, t) = x always.
    """

    def forward(self, x, t, s, tags, w):
        t_col, s_col = _col(t, x), _col(s, x)
        ratio = s_col / t_col
        return ratio * x + (1 - ratio) * self.denoiser(x, t, s, tags, w)

    def denoiser(self, x, t, s, tags, w):
        """g(x_t, t, s): the data estimate G moves towards; at s = t it plays the teacher's guided denoiser."""
        t_col, s_col = _col(t, x), _col(s, x)
        return self.precond(x, t_col.reshape(-1), tags, w=w, s_noise=c_noise(s_col.reshape(-1)))

    def sample(self, z, sigmas, tags, w, gamma: float = 0.0, generator: Optional[torch.Generator] = None):
        """Unit noise z -> x at σ_min over ``sigmas`` by γ-sampling (``ctm_gamma_sample``)."""
        return ctm_gamma_sample(lambda x, t, s: self(x, t, s, tags, w), z * sigmas[0], sigmas, gamma, generator)


@torch.no_grad()
def teacher_step(teacher: EDMPrecond, x, t, t_next, tags, w, solver: str = "euler", denoised=None):
    """One guided ODE step of the frozen teacher from t to t_next (per-sample t, t_next, w). ``denoised``: the
    guided denoiser's output at (x, t) where the caller has computed it already."""
    t_col, n_col = _col(t, x), _col(t_next, x)
    if denoised is None:
        denoised = guided_denoise(teacher, x, t_col.reshape(-1), tags, w)
    d = (x - denoised) / t_col
    x_next = x + (n_col - t_col) * d
    if solver == "euler":
        return x_next
    if solver != "heun":
        raise ValueError(f"unknown teacher solver {solver!r}; use 'euler' or 'heun'")
    d_next = (x_next - guided_denoise(teacher, x_next, n_col.reshape(-1), tags, w)) / n_col
    return x + (n_col - t_col) * (d + d_next) / 2


def decode_sigmas(steps: int, grid: torch.Tensor) -> torch.Tensor:
    """``steps`` jumps over the training grid: steps+1 grid points evenly spaced by index, from σ_max
    to σ_min, so a student is only ever asked for the (t, s) pairs it was distilled on."""
    return grid[decode_indices(steps, len(grid))]


def decode_indices(steps: int, n_points: int) -> torch.Tensor:
    """Grid indices of a ``steps``-step decode on an ``n_points`` grid (``decode_sigmas``)."""
    if steps < 1 or steps > n_points - 1:
        raise ValueError(f"steps must be in [1, {n_points - 1}] for a {n_points}-point grid, got {steps}")
    return torch.linspace(0, n_points - 1, steps + 1).round().long()


def decode_pairs(steps: Sequence[int], n_points: int) -> torch.Tensor:
    """The (n, m) grid-index pairs that the ``steps``-step decodes (``decode_sigmas``) jump between on an
    ``n_points`` grid, each pair once, in order of first use: a (P, 2) long tensor."""
    pairs: list[tuple[int, int]] = []
    for k in steps:
        idx = decode_indices(k, n_points).tolist()
        pairs += [p for p in zip(idx[:-1], idx[1:]) if p not in pairs]
    return torch.tensor(pairs, dtype=torch.long)


StudentCM = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, σ) -> x at σ_min
StudentCTM = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x, t, s) -> x_s


def cm_sample(G: StudentCM, x: torch.Tensor, sigmas: torch.Tensor,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """CM sampling from x = σ_0·z. One step with two sigmas; more steps renoise ("ping-pong"):
    x ← G(x, σ_n) + √(σ_{n+1}² − σ_min²)·ε, no noise on the last step."""
    sigma_min = sigmas[-1]
    for n in range(len(sigmas) - 1):
        x = G(x, sigmas[n])
        if n < len(sigmas) - 2:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + (sigmas[n + 1] ** 2 - sigma_min**2).sqrt() * eps
    return x


def ctm_gamma_sample(G: StudentCTM, x: torch.Tensor, sigmas: torch.Tensor, gamma: float,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """CTM γ-sampling: s = √(1−γ²)(σ_{n+1} − σ_min) + σ_min, x ← G(x, σ_n, s) + √(σ_{n+1}² − s²)·ε.
    γ=0 is deterministic jumping along the trajectory; γ=1 is CM ping-pong."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    sigma_min = sigmas[-1]
    scale = (1.0 - gamma**2) ** 0.5
    for n in range(len(sigmas) - 1):
        s = scale * (sigmas[n + 1] - sigma_min) + sigma_min
        x = G(x, sigmas[n], s)
        if n < len(sigmas) - 2 and gamma > 0:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + (sigmas[n + 1] ** 2 - s**2).clamp(min=0).sqrt() * eps
    return x
