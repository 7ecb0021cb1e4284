"""ODE samplers for a denoiser D(x; σ), k-diffusion style.

Every sampler takes the initial noise x (already scaled by sigmas[0]) and a descending σ grid that
ends with 0, and calls ``denoise(x, sigma)`` with sigma a 0-dim tensor. They never seed, never
switch grad mode: ITO backpropagates through them to the noise, and ``checkpoint=True`` keeps that
memory-light by recomputing each step in the backward pass.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from ditto2.diffusion.edm import karras_sigmas
from ditto2.diffusion.guidance import CFGDenoiser

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _euler_step(denoise: Denoise, x, sigma, sigma_next):
    denoised = denoise(x, sigma)
    d = (x - denoised) / sigma
    return x + (sigma_next - sigma) * d, denoised


def _heun_step(denoise: Denoise, x, sigma, sigma_next):
    x_euler, denoised = _euler_step(denoise, x, sigma, sigma_next)
    if sigma_next == 0:  # the trapezoid would divide by σ=0; EDM takes Euler's step here
        return x_euler, denoised
    d = (x - denoised) / sigma
    d_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
    return x + (sigma_next - sigma) * (d + d_next) / 2, denoised


def _run(step, denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, checkpoint: bool,
         callback):
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if checkpoint:
            x, denoised = _checkpoint(step, denoise, x, sigma, sigma_next, use_reentrant=False)
        else:
            x, denoised = step(denoise, x, sigma, sigma_next)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next,
                      "denoised": denoised})
    return x


def sample_euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                 checkpoint: bool = False, callback=None) -> torch.Tensor:
    """Deterministic Euler (≡ DDIM in σ-space): d = (x − D)/σ, x ← x + (σ_next − σ)·d.

    One network evaluation per step: append_zero(karras_sigmas(20)) costs 20 calls.
    """
    return _run(_euler_step, denoise, x, sigmas, checkpoint, callback)


def sample_heun(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor,
                checkpoint: bool = False, callback=None) -> torch.Tensor:
    """EDM Algorithm 1 without churn: Heun steps, Euler on the final step to σ = 0."""
    return _run(_heun_step, denoise, x, sigmas, checkpoint, callback)


SAMPLERS = {"euler": sample_euler, "heun": sample_heun}


def base_sigmas(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """The base model's sampling grid: ``steps`` Karras σ's from σ_max to σ_min, then 0."""
    return append_zero(karras_sigmas(steps, sigma_min, sigma_max))


def sample_guided(denoiser, noise: torch.Tensor, tags: torch.Tensor, w, sigmas: torch.Tensor,
                  sampler: str = "euler", checkpoint: bool = False) -> torch.Tensor:
    """The base model's one sampler (training-time samples, ``ditto2 sample``, the DITTO surrogate, the
    benches): unit noise z → x_0 by classifier-free-guided ODE steps over ``sigmas`` (ending with 0)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    sigmas = sigmas.to(noise)
    return SAMPLERS[sampler](CFGDenoiser(denoiser, tags, w), noise * sigmas[0], sigmas, checkpoint=checkpoint)


def refine_sigmas(sigma: float, grid: torch.Tensor) -> torch.Tensor:
    """The σ's of a refinement from ``sigma``: ``sigma`` itself, then the points of ``grid`` (a base grid
    ending with 0, ``base_sigmas``) strictly below it: the tail of the base model's own sampler."""
    if not 0.0 < sigma <= float(grid[0]):
        raise ValueError(f"refine sigma must be in (0, {float(grid[0]):g}], got {sigma}")
    return torch.cat([grid.new_tensor([sigma]), grid[grid < sigma]])


def refine_guided(denoiser, x0: torch.Tensor, tags: torch.Tensor, w, sigmas: torch.Tensor,
                  generator=None, sampler: str = "euler") -> torch.Tensor:
    """SDEdit-style refinement of a sample x0 by the base model: renoise it to σ = ``sigmas[0]``
    (x0 + σ·ε), then run the guided sampler down ``sigmas`` (``refine_sigmas``) to 0. A small σ keeps
    what x0 says at coarse scale (its level, its melody) and lets the base model redo the fine detail."""
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    sigmas = sigmas.to(x0)
    return SAMPLERS[sampler](CFGDenoiser(denoiser, tags, w), x0 + sigmas[0] * eps, sigmas)
