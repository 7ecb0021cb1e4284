"""Stable-Diffusion-style 2D UNet over log-mel spectrograms (B, 1, n_mels, frames).

The backbone knows nothing about σ: EDM scaling lives in ``ditto2.diffusion.edm.EDMPrecond``.
Teacher and CM/CTM students are the same class; students only switch on the zero-initialized
w / s embeddings, so a student loaded from a teacher reproduces it exactly at step 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ditto2.nn.embeddings import SinusoidalEmbedding, TagEmbedding

# c_noise, w and s_noise are all O(1) scalars; see SinusoidalEmbedding for why they are scaled.
_EMB_INPUT_SCALE = 1000.0

_PRESETS: dict[str, dict] = {
    # ≈2.8M params; fwd+bwd of 16×(1, 64, 256) ≈0.4 s on 2 CPU cores. 2×2 patches and a narrow
    # first level because full-resolution convs dominate CPU time.
    "tiny": dict(base_channels=16, channel_mults=(1, 2, 4, 8), num_res_blocks=1,
                 attn_levels=(2, 3), num_heads=4, dropout=0.0, patch_size=2),
    # ≈40.7M params (paper §4.2: 41M); 160×512 -> 10×32 at the bottom, attention at 20×64 and below.
    "paper": dict(base_channels=64, channel_mults=(1, 2, 3, 4, 5), num_res_blocks=2,
                  attn_levels=(3, 4), num_heads=8, dropout=0.1, patch_size=1),
}


@dataclass
class UNetConfig:
    in_channels: int = 1
    # Defaults are the "tiny" preset.
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 1
    attn_levels: tuple[int, ...] = (2, 3)  # indices into channel_mults; keep to low resolutions
    num_heads: int = 4
    dropout: float = 0.0
    tag_vocab_sizes: list[int] = field(default_factory=list)
    use_w_embedding: bool = False  # CFG scale input of distilled students
    use_s_embedding: bool = False  # CTM target-time input
    # Fold p×p pixel patches into channels before the first conv (pixel_unshuffle). 1 = plain SD
    # UNet; the tiny preset uses 2 because full-resolution convs dominate CPU time.
    patch_size: int = 2

    @classmethod
    def preset(cls, name: str, tag_vocab_sizes: list[int], **overrides) -> "UNetConfig":
        if name not in _PRESETS:
            raise KeyError(f"unknown UNet preset {name!r}; choose from {sorted(_PRESETS)}")
        return cls(**{**_PRESETS[name], "tag_vocab_sizes": list(tag_vocab_sizes), **overrides})


def _groups(ch: int) -> int:
    # GroupNorm(32) as in SD for wide layers; fewer groups keep ≥4 channels each on narrow ones.
    return math.gcd(32, max(ch // 4, 1))


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)  # scale and shift of the second norm
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))  # block starts as identity
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = rearrange(self.emb(F.silu(emb)), "b (two c) -> two b c 1 1", two=2)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(self.drop(h))


class AttnBlock(nn.Module):
    def __init__(self, ch: int, num_heads: int):
        super().__init__()
        if ch % num_heads:
            raise ValueError(f"{ch} channels do not split into {num_heads} heads")
        self.heads = num_heads
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = _zero(nn.Linear(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Tokens-last layout keeps head_dim contiguous, which lets SDPA pick its fused kernels.
        tokens = rearrange(self.norm(x), "b c x y -> b (x y) c")
        q, k, v = rearrange(self.qkv(tokens), "b t (three n d) -> three b n t d",
                            three=3, n=self.heads)
        out = rearrange(F.scaled_dot_product_attention(q, k, v), "b n t d -> b t (n d)")
        return x + rearrange(self.proj(out), "b (x y) c -> b c x y", x=h, y=w)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        n_levels = len(c.channel_mults)
        if any(not 0 <= lvl < n_levels for lvl in c.attn_levels):
            raise ValueError(f"attn_levels {c.attn_levels} outside 0..{n_levels - 1}")
        ch, emb_dim = c.base_channels, 4 * c.base_channels

        # Conditioning vector: time, plus tags, plus the student-only w / s terms.
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(ch, scale=_EMB_INPUT_SCALE), nn.Linear(ch, emb_dim), nn.SiLU(),
            nn.Linear(emb_dim, emb_dim))
        self.tag_embed = TagEmbedding(c.tag_vocab_sizes, emb_dim) if c.tag_vocab_sizes else None
        self.w_embed = self.s_embed = None
        if c.use_w_embedding:
            self.w_embed = nn.Sequential(SinusoidalEmbedding(ch, scale=_EMB_INPUT_SCALE),
                                         _zero(nn.Linear(ch, emb_dim)))
        if c.use_s_embedding:
            self.s_embed = nn.Sequential(
                SinusoidalEmbedding(ch, scale=_EMB_INPUT_SCALE), nn.Linear(ch, emb_dim),
                nn.SiLU(), _zero(nn.Linear(emb_dim, emb_dim)))

        patch_ch = c.in_channels * c.patch_size ** 2
        self.conv_in = nn.Conv2d(patch_ch, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs = [ch]
        for lvl, mult in enumerate(c.channel_mults):
            for _ in range(c.num_res_blocks):
                self.down.append(self._stage(ch, c.base_channels * mult, lvl, emb_dim))
                ch = c.base_channels * mult
                skip_chs.append(ch)
            if lvl < n_levels - 1:
                self.down.append(Downsample(ch))
                skip_chs.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, c.dropout),
                                  AttnBlock(ch, c.num_heads),
                                  ResBlock(ch, ch, emb_dim, c.dropout)])

        self.up = nn.ModuleList()
        for lvl, mult in reversed(list(enumerate(c.channel_mults))):
            for _ in range(c.num_res_blocks + 1):
                out_ch = c.base_channels * mult
                self.up.append(self._stage(ch + skip_chs.pop(), out_ch, lvl, emb_dim))
                ch = out_ch
            if lvl > 0:
                self.up.append(Upsample(ch))

        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = _zero(nn.Conv2d(ch, patch_ch, 3, padding=1))  # EDM practice

    def _stage(self, in_ch: int, out_ch: int, lvl: int, emb_dim: int) -> nn.ModuleList:
        blocks = [ResBlock(in_ch, out_ch, emb_dim, self.config.dropout)]
        if lvl in self.config.attn_levels:
            blocks.append(AttnBlock(out_ch, self.config.num_heads))
        return nn.ModuleList(blocks)

    def _embed(self, x, c_noise, tags, w, s_noise) -> torch.Tensor:
        b = x.shape[0]
        emb = self.time_embed(_per_sample(c_noise, b, x))
        if self.tag_embed is not None:
            if tags is None:  # unconditional call = all-null tags
                tags = torch.zeros(b, len(self.config.tag_vocab_sizes), dtype=torch.long,
                                   device=x.device)
            emb = emb + self.tag_embed(tags)
        for name, value, module in (("w", w, self.w_embed), ("s_noise", s_noise, self.s_embed)):
            # A silently ignored input would make a student look like it ignores w or s.
            if (value is None) != (module is None):
                raise ValueError(f"{name} given={value is not None} but its embedding "
                                 f"enabled={module is not None}")
            if module is not None:
                emb = emb + module(_per_sample(value, b, x))
        return emb

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, tags: torch.Tensor | None,
                w: torch.Tensor | float | None = None,
                s_noise: torch.Tensor | float | None = None) -> torch.Tensor:
        p = self.config.patch_size
        factor = p * 2 ** (len(self.config.channel_mults) - 1)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(f"spatial size {tuple(x.shape[-2:])} must be divisible by {factor}")
        emb = self._embed(x, c_noise, tags, w, s_noise)

        h = self.conv_in(F.pixel_unshuffle(x, p))
        skips = [h]
        for block in self.down:
            h = self._run(block, h, emb)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h)
            else:
                h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb)
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), p)

    @staticmethod
    def _run(block: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if isinstance(block, Downsample):
            return block(h)
        for layer in block:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def load_teacher_state(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """Load a teacher's weights into this (student) net; return the keys the teacher lacked.

        Those are exactly the zero-initialized w / s embeddings, so the student starts as the
        teacher. Keys the student does not have, or shape mismatches, are errors.
        """
        result = self.load_state_dict(state_dict, strict=False)
        if result.unexpected_keys:
            raise KeyError(f"teacher keys absent from this net: {result.unexpected_keys}")
        return list(result.missing_keys)


def _per_sample(value: torch.Tensor | float, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a float or 0-dim/(B,) tensor to a (B,) float tensor on like's device."""
    t = torch.as_tensor(value, dtype=torch.float32, device=like.device)
    return t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)
