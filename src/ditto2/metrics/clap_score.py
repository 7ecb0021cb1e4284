"""CLAP score (paper §4.3): mean cosine between each generation's audio embedding and its caption's."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric


def clap_cosines(audio_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """(B,) float64 cosine of each audio embedding with its caption's (a (D,) caption pairs with every row);
    normalized here too, so embeddings from any source give a cosine in [-1, 1]."""
    if audio_emb.dim() != 2:
        raise ValueError(f"audio embeddings must be (B, D), got {tuple(audio_emb.shape)}")
    text_emb = text_emb.expand_as(audio_emb) if text_emb.dim() == 1 else text_emb
    if text_emb.shape != audio_emb.shape:
        raise ValueError(f"text embeddings {tuple(text_emb.shape)} do not pair with audio {tuple(audio_emb.shape)}")
    return (F.normalize(audio_emb.double(), dim=-1) * F.normalize(text_emb.double(), dim=-1)).sum(-1)


class CLAPScore(Metric):
    """``update(audio_emb (B, D), text_emb (B, D) or (D,))`` with rows from an AudioTextEmbedder.

    States are a float64 sum of cosines and a count, both summed across processes, so the
    DDP-synced score equals the single-process score on all the data exactly."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("cos_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, audio_emb: torch.Tensor, text_emb: torch.Tensor) -> None:
        cos = clap_cosines(audio_emb, text_emb)
        self.cos_sum += cos.detach().sum()
        self.count += cos.numel()

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            raise ValueError("CLAPScore.compute() before any update()")
        return self.cos_sum / self.count
