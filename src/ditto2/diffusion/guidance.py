"""Classifier-free guidance over tags: D_w = D_uncond + w·(D_cond − D_uncond)."""

from __future__ import annotations

import torch


def _per_sample(value, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        return value.reshape(-1, *([1] * (like.ndim - 1)))
    return value


def guided_denoise(denoiser, x: torch.Tensor, sigma, tags: torch.Tensor, w, **extra):
    """Guided D(x; σ) with the conditional and unconditional halves in one batched call.

    sigma, w: float, 0-dim or (B,) tensors. Tensor extras with a batch dimension are duplicated
    like x; the unconditional half gets the null tags (all zeros).
    """
    def twice(v):
        return torch.cat([v, v]) if isinstance(v, torch.Tensor) and v.ndim > 0 else v

    both = denoiser(torch.cat([x, x]), twice(sigma), torch.cat([tags, torch.zeros_like(tags)]),
                    **{k: twice(v) for k, v in extra.items()})
    cond, uncond = both.chunk(2)
    return uncond + _per_sample(w, x) * (cond - uncond)


class CFGDenoiser:
    """Binds tags, w and extras so samplers can call ``denoise(x, sigma)``."""

    def __init__(self, denoiser, tags: torch.Tensor, w, **extra):
        self.denoiser, self.tags, self.w, self.extra = denoiser, tags, w, extra

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return guided_denoise(self.denoiser, x, sigma, self.tags, self.w, **self.extra)
