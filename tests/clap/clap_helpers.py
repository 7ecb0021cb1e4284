"""Shared data for the CLAP tests (imported by tests and conftest; a unique module name, since
several test folders have a conftest.py)."""
from __future__ import annotations

import torch

from ditto2.audio.mel import MelNormalizer, mel_preset
from ditto2.data.tags import TagVocab, caption

CFG = mel_preset("tiny")
NORM = MelNormalizer(mean=-4.0, std=3.0)
TAGS = [{"genre": "rock", "mood": "happy", "tempo": 128}, {"genre": "folk", "mood": "sad", "tempo": 70},
        {"genre": "electronic", "mood": "dark", "tempo": 140}, {"genre": "orchestral", "mood": "epic", "tempo": 96}]
SMALL = dict(embed_dim=16, channels=(4, 8))  # a CNN that trains a step in milliseconds


def data_info() -> dict:
    return {"mel": CFG.to_dict(), "stats": NORM.to_dict(), "vocab": TagVocab.build(TAGS).to_dict()}


def synthetic_batch(n_per_caption: int = 3, frames: int = 32, seed: int = 0) -> dict:
    """Clips of 4 captions; each caption's mels share a distinct spectral bump plus noise."""
    vocab = TagVocab.build(TAGS)
    g = torch.Generator().manual_seed(seed)
    mels, caps, tags = [], [], []
    for i, t in enumerate(TAGS):
        for _ in range(n_per_caption):
            m = 0.3 * torch.randn(1, CFG.n_mels, frames, generator=g)
            m[:, 12 * i: 12 * i + 10] += 1.0
            mels.append(m)
            caps.append(caption(t))
            tags.append(vocab.encode(t))
    return {"mel": torch.stack(mels), "caption": caps, "tags": torch.tensor(tags)}
