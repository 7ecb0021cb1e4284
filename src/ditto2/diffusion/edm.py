"""EDM (Karras et al. 2022) in σ-space: preconditioning, noise grid, training loss, CFG dropout.

x_σ = x_0 + σ·ε. A denoiser D(x; σ) estimates x_0. The backbone F only ever sees c_in·x and
c_noise(σ); every σ-dependent scaling lives here.
"""

from __future__ import annotations

import torch
from torch import nn


def edm_scalings(sigma: torch.Tensor, sigma_data: float):
    """(c_skip, c_out, c_in) of EDM Table 1: unit-variance input and training target for F."""
    total = sigma**2 + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt()


def consistency_scalings(sigma: torch.Tensor, sigma_data: float, sigma_min: float):
    """(c_skip, c_out, c_in) with the consistency boundary condition G(x, σ_min) = x exactly.

    c_skip = 1 and c_out = 0 at σ = σ_min (Song et al. 2023, App. C); c_in is EDM's.
    """
    shifted = sigma - sigma_min
    c_skip = sigma_data**2 / (shifted**2 + sigma_data**2)
    c_out = shifted * sigma_data / (sigma**2 + sigma_data**2).sqrt()
    return c_skip, c_out, 1 / (sigma**2 + sigma_data**2).sqrt()


def c_noise(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.log() / 4


class EDMPrecond(nn.Module):
    """D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise(σ), tags, **extra) around any backbone F.

    ``extra`` (w, s_noise for students) goes to the backbone untouched.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002,
                 sigma_max: float = 80.0):
        super().__init__()
        self.net = net
        self.sigma_data, self.sigma_min, self.sigma_max = sigma_data, sigma_min, sigma_max

    def scalings(self, sigma: torch.Tensor):
        return edm_scalings(sigma, self.sigma_data)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, tags: torch.Tensor | None,
                **extra) -> torch.Tensor:
        # Scalings in float32 at least, so ln σ and the (σ − σ_min) boundary stay exact-ish
        # under mixed precision; the output goes back to x's dtype.
        dtype = torch.promote_types(x.dtype, torch.float32)
        sigma = torch.as_tensor(sigma, dtype=dtype, device=x.device)
        sigma = sigma.reshape(-1).expand(x.shape[0]) if sigma.numel() == 1 else sigma.reshape(-1)
        c_skip, c_out, c_in = (c.reshape(-1, *([1] * (x.ndim - 1))) for c in self.scalings(sigma))
        f = self.net((c_in * x).to(x.dtype), c_noise(sigma), tags, **extra)
        return (c_skip * x + c_out * f.to(dtype)).to(x.dtype)


class ConsistencyPrecond(EDMPrecond):
    """Same wrapper with the consistency boundary condition; the CM student uses it."""

    def scalings(self, sigma: torch.Tensor):
        return consistency_scalings(sigma, self.sigma_data, self.sigma_min)


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> torch.Tensor:
    """n noise levels from σ_max down to σ_min inclusive (EDM eq. 5), without a trailing zero."""
    if n < 2:
        raise ValueError(f"karras_sigmas needs n >= 2 to include both endpoints, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    sigmas[0], sigmas[-1] = sigma_max, sigma_min  # exact endpoints, free of pow round-off
    return sigmas.float()


def edm_loss(denoiser, x0: torch.Tensor, tags: torch.Tensor | None, P_mean: float = -1.2,
             P_std: float = 1.2, sigma_data: float = 0.5,
             generator: torch.Generator | None = None, **extra):
    """EDM denoising loss: returns (per-sample weighted loss (B,), sigmas (B,)).

    Per-sample loss is λ(σ)·mean((D(x0 + σε; σ) − x0)²) with λ(σ) = (σ² + σ_d²)/(σ·σ_d)², which
    makes it the unit-weighted loss on F's target. Mean over elements, not EDM's sum, keeps the
    scale independent of the mel size; the caller reduces over the batch.
    """
    b = x0.shape[0]
    kw = dict(generator=generator, device=x0.device)
    sigma = (torch.randn(b, **kw) * P_std + P_mean).exp()
    noise = torch.randn(x0.shape, **kw).to(x0.dtype)
    sig = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
    denoised = denoiser(x0 + sig * noise, sigma, tags, **extra)
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    return weight * (denoised - x0).float().square().flatten(1).mean(1), sigma


def drop_tags(tags: torch.Tensor, p: float, generator: torch.Generator | None = None):
    """Replace each sample's whole tag row by the null id 0 with probability p (CFG dropout)."""
    keep = torch.rand(tags.shape[0], generator=generator, device=tags.device) >= p
    return tags * keep.reshape(-1, *([1] * (tags.ndim - 1))).to(tags.dtype)
