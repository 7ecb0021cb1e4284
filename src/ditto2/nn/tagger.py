"""A 1-D convolutional mel classifier: frequency bins as channels, dilated convs over time, statistics pooling.

Deliberately another architecture than the in-domain CLAP's 2-D CNN (``ditto2.clap.indomain.MelCNN``), so that
graders built on it (the genre / mood / tempo tagger, the second "judge" CLAP's audio tower) do not share the
inductive biases of the CLAP a text control optimizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ditto2.nn.configs import JsonConfig


@dataclass(frozen=True)
class TemporalConvConfig(JsonConfig):
    n_mels: int = 64
    width: int = 128
    dilations: tuple = (1, 2, 4, 8)  # one residual block each; receptive field ≈ 2·Σd + 1 frames
    dropout: float = 0.1


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm1d(width), nn.GELU(),
                                 nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation),
                                 nn.BatchNorm1d(width), nn.GELU(), nn.Dropout(dropout), nn.Conv1d(width, width, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class TemporalConvNet(nn.Module):
    """(B, 1, n_mels, frames) or (B, n_mels, frames) -> (B, 2·width): mean ‖ std over time."""

    def __init__(self, cfg: TemporalConvConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Conv1d(cfg.n_mels, cfg.width, 5, padding=2)
        self.blocks = nn.Sequential(*[_Block(cfg.width, d, cfg.dropout) for d in cfg.dilations])
        self.out_dim = 2 * cfg.width

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() == 4:
            mel = mel.squeeze(1)
        h = self.blocks(self.inp(mel))
        return torch.cat([h.mean(-1), h.std(-1)], dim=1)


class MelTagger(nn.Module):
    """One softmax head per tag field over the field's real values (the vocabulary's null id 0 is no class:
    logits[f] has ``sizes[f] − 1`` columns; class j is vocabulary id j + 1)."""

    def __init__(self, cfg: TemporalConvConfig, sizes: Sequence[int]):
        super().__init__()
        self.cfg, self.sizes = cfg, list(sizes)
        self.trunk = TemporalConvNet(cfg)
        self.heads = nn.ModuleList([nn.Linear(self.trunk.out_dim, n - 1) for n in self.sizes])

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        h = self.trunk(mel)
        return [head(h) for head in self.heads]
