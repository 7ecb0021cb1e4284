"""A loaded base model ready to sample: denoiser + mel config + statistics + vocabulary."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.data.tags import TagVocab
from ditto2.diffusion.edm import EDMPrecond, karras_sigmas
from ditto2.diffusion.guidance import CFGDenoiser
from ditto2.diffusion.samplers import append_zero, sample_euler, sample_heun
from ditto2.lit.bundle import load_bundle


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
        """Unit noise -> normalized mel; grad mode is the caller's choice."""
        e = self.meta["edm"]
        sigmas = append_zero(karras_sigmas(steps, e["sigma_min"], e["sigma_max"])).to(noise)
        fn = {"euler": sample_euler, "heun": sample_heun}[sampler]
        return fn(CFGDenoiser(self.denoiser, tags, w), noise * sigmas[0], sigmas)


def load_generator(path: str) -> Generator:
    if str(path).endswith(".ckpt"):
        from ditto2.lit.pretrain import PretrainModule

        module = PretrainModule.load_from_checkpoint(path, map_location="cpu")
        denoiser, meta = module.denoiser.eval(), module.bundle_meta()
    else:
        denoiser, meta = load_bundle(Path(path))
    d = meta["data"]
    return Generator(denoiser, MelConfig.from_dict(d["mel"]), MelNormalizer.from_dict(d["stats"]),
                     TagVocab.from_dict(d["vocab"]), meta)
