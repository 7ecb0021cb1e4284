"""The FAD reference set: CLAP embeddings of held-out real clips (paper §4.3), cached beside the shards.

Reference clips take the same road as generations — normalized mel -> Griffin-Lim audio -> CLAP — so
FAD compares the generator's mels with real mels, not Griffin-Lim audio with studio audio (the
vocoder's artefacts would otherwise dominate every FAD in a table). The clips ITO targets came from are
left out of the reference (``exclude``); a second, disjoint set (``skip``) gives the real-vs-real floor. The
cache key holds the CLAP weights' hash, the split, the clip ids and the vocoder settings, so a retrained CLAP
never reads stale embeddings."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.data.heldout import clip_order, load_mels


@torch.no_grad()
def vocode(mels: torch.Tensor, vocoder: GriffinLimVocoder, batch: int = 32, device: str | torch.device = "cpu",
           progress: bool = False) -> torch.Tensor:
    """(N, 1, n_mels, frames) normalized mels -> (N, T) Griffin-Lim audio on the CPU, ``batch`` clips at a time."""
    vocoder = vocoder.to(device)
    starts = range(0, mels.shape[0], batch)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="vocoding held-out clips", unit="batch")
    return torch.cat([vocoder(mels[i : i + batch].to(device)).float().cpu() for i in starts])


@torch.no_grad()
def embed_waves(waves: torch.Tensor, embedder, sample_rate: int, batch: int = 32,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, T) audio -> (N, D) CLAP audio embeddings (CPU, float32)."""
    embedder = embedder.to(device)
    return torch.cat([embedder.embed_audio(waves[i : i + batch].to(device), sample_rate).float().cpu()
                      for i in range(0, waves.shape[0], batch)])


@dataclass
class ReferenceSet:
    """Held-out clips through the vocoder road: their index rows, their embeddings in each CLAP asked for, and (when
    kept) their Griffin-Lim audio, vocoded once however many CLAPs embed it."""

    rows: list
    embeddings: dict  # CLAP key -> (n, D)
    waves: Optional[torch.Tensor]  # (n, T) or None
    sample_rate: int


def reference_set(shards: str | Path, claps: dict, n: Optional[int] = None, split: str = "test",
                  device: str | torch.device = "cpu", batch: int = 32, cache: bool = True, progress: bool = True,
                  exclude=(), skip: int = 0, keep_waves: bool = False) -> ReferenceSet:
    """``n`` held-out clips of ``split`` (all of them when n is None) embedded in every CLAP of ``claps`` (key ->
    an in-domain bundle or a LAION ClapModel folder). ``exclude``: clip ids left out (the clips ITO targets came
    from, so the reference never overlaps them); ``skip``: start ``skip`` clips further in the same order (a second
    set disjoint from the first, e.g. the real-vs-real floor). Each CLAP's embeddings are cached; the clips are
    vocoded (once) only when a CLAP misses its cache or ``keep_waves`` asks for the audio."""
    from ditto2.clap.load import load_embedder, weights_digest

    root = Path(shards)
    index = json.loads((root / "index.json").read_text())
    order = clip_order(root, split, seed=0, exclude=exclude)[skip:]
    n = len(order) if n is None else int(n)
    if not 2 <= n <= len(order):
        raise ValueError(f"FAD reference: {shards} has {len(order)} {split} clips left (after {len(set(exclude))} "
                         f"excluded, {skip} skipped); {n} asked for (need >= 2)")
    rows = order[:n]
    mel_cfg, normalizer = MelConfig.from_dict(index["mel"]), MelNormalizer.from_dict(index["stats"])
    vocoder = GriffinLimVocoder(mel_cfg, normalizer)
    ids = hashlib.sha1(json.dumps(sorted(c["clip_id"] for c in rows)).encode()).hexdigest()[:12]
    waves = None

    def audio() -> torch.Tensor:
        nonlocal waves
        if waves is None:
            waves = vocode(load_mels(root, rows), vocoder, batch, device, progress)
        return waves

    embeddings = {}
    for name, clap_path in claps.items():
        key = hashlib.sha1(json.dumps([weights_digest(clap_path), split, ids, vocoder.n_iter, vocoder.nnls_iter,
                                       index["mel"], index["stats"]], sort_keys=True).encode()).hexdigest()[:16]
        cache_file = root / ".fad-cache" / f"{split}-{n}-{key}.safetensors"
        if cache and cache_file.exists():
            embeddings[name] = load_file(str(cache_file))["embeddings"]
            continue
        embeddings[name] = embed_waves(audio(), load_embedder(clap_path), mel_cfg.sample_rate, batch, device)
        if cache:
            try:
                cache_file.parent.mkdir(exist_ok=True)
                tmp = cache_file.with_suffix(".tmp")
                save_file({"embeddings": embeddings[name].contiguous()}, str(tmp))
                tmp.replace(cache_file)
            except OSError:
                pass  # read-only shards: recompute next time
    return ReferenceSet(rows, embeddings, audio() if keep_waves else None, mel_cfg.sample_rate)


def reference_embeddings(shards: str | Path, clap_path: str | Path, n: Optional[int] = None, split: str = "test",
                         device: str | torch.device = "cpu", batch: int = 32, cache: bool = True,
                         progress: bool = True, exclude=(), skip: int = 0) -> torch.Tensor:
    """(n, D) embeddings of ``n`` held-out clips in the one CLAP at ``clap_path`` (``reference_set``)."""
    return reference_set(shards, {"clap": clap_path}, n, split, device, batch, cache, progress, exclude,
                         skip).embeddings["clap"]


def target_clip_ids(shards: str | Path, split: str, seeds, batch_sizes) -> set[str]:
    """The clips ITO runs with these seeds and batch sizes draw as targets / references (``held_out_clips``)."""
    return {c["clip_id"] for seed, b in zip(seeds, batch_sizes) for c in clip_order(shards, split, seed)[:b]}
