"""Scalar and tag embeddings for the UNet conditioning vector."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sin/cos features of a scalar per sample: (B,) -> (B, dim).

    ``scale`` multiplies the input first. EDM's c_noise = ln(σ)/4 only spans about [-1.6, 1.1];
    with the top frequency at 1 most channels would be nearly constant there, so the UNet
    passes scale=1000 to spread its inputs over the same range as DDPM timesteps.
    """

    def __init__(self, dim: int, max_period: float = 10000.0, scale: float = 1.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"SinusoidalEmbedding needs an even dim, got {dim}")
        self.dim, self.scale = dim, scale
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        # A buffer so .to(device) moves it, but not persistent: it is a pure function of dim.
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = (t.float() * self.scale)[:, None] * self.freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TagEmbedding(nn.Module):
    """Sum of one learned embedding per tag field; (B, n_fields) long -> (B, dim).

    Id 0 of every field is the null tag. A sample whose tags were all dropped for CFG therefore
    maps to a single learned "unconditional" vector rather than to zeros.
    """

    def __init__(self, vocab_sizes: list[int], dim: int):
        super().__init__()
        if not vocab_sizes or min(vocab_sizes) < 1:
            raise ValueError(f"vocab_sizes must be non-empty positive ints, got {vocab_sizes}")
        self.vocab_sizes = list(vocab_sizes)
        self.fields = nn.ModuleList(nn.Embedding(n, dim) for n in self.vocab_sizes)

    def forward(self, tags: torch.Tensor) -> torch.Tensor:
        if tags.ndim != 2 or tags.shape[1] != len(self.fields):
            raise ValueError(f"tags must be (B, {len(self.fields)}), got {tuple(tags.shape)}")
        return sum(emb(tags[:, i]) for i, emb in enumerate(self.fields))
