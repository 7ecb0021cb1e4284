"""A loaded base model ready to sample: denoiser + mel config + statistics + vocabulary."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.data.tags import TagVocab
from ditto2.diffusion.edm import EDMPrecond
from ditto2.diffusion.samplers import base_sigmas, sample_guided
from ditto2.models.bundle import load_bundle


@dataclass
class Generator:
    denoiser: EDMPrecond
    mel: MelConfig
    normalizer: MelNormalizer
    vocab: TagVocab
    meta: dict

    def encode_tags(self, tags: dict, n: int) -> torch.Tensor:
        clean = {k: v for k, v in tags.items() if v not in (None, "")}
        for field in ("genre", "mood"):
            if clean.get(field) and clean[field] not in self.vocab.values[field]:
                raise ValueError(f"unknown {field} {clean[field]!r}; known: {self.vocab.values[field][1:]}")
        return torch.tensor([self.vocab.encode(clean)] * n, dtype=torch.long)

    def describe(self, tag_ids) -> str:
        return " / ".join(v for v in self.vocab.decode(tag_ids.tolist()).values() if v != "<null>") or "(null tags)"

    def sample(self, noise: torch.Tensor, tags: torch.Tensor, w: float = 2.0, steps: int = 20,
               sampler: str = "euler") -> torch.Tensor:
        """Unit noise -> normalized mel (``sample_guided``); grad mode is the caller's choice."""
        e = self.meta["edm"]
        return sample_guided(self.denoiser, noise, tags, w, base_sigmas(steps, e["sigma_min"], e["sigma_max"]), sampler)


def generator_from(denoiser: EDMPrecond, meta: dict) -> Generator:
    d = meta["data"]
    return Generator(denoiser, MelConfig.from_dict(d["mel"]), MelNormalizer.from_dict(d["stats"]),
                     TagVocab.from_dict(d["vocab"]), meta)


def load_generator(path: str | Path) -> Generator:
    """The base model of a bundle (``path`` without extension); a training checkpoint: ``ditto2.lit.export``."""
    if str(path).endswith(".ckpt"):
        raise ValueError(f"{path} is a training checkpoint: load it with ditto2.lit.export.load_checkpoint_generator "
                         "or export it first (ditto2 export CKPT OUT)")
    denoiser, meta = load_bundle(Path(path))
    return generator_from(denoiser, meta)
