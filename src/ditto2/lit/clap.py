"""`InDomainClapModule`: contrastive training of the in-domain CLAP (``ditto2.clap.indomain``) on the
shards' captions, and loading one from a training checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.clap.indomain import InDomainClap, InDomainClapConfig, clap_bundle_meta, clip_loss, retrieval_metrics
from ditto2.data.tags import TAG_FIELDS
from ditto2.lit.optim import with_warmup


class InDomainClapModule(pl.LightningModule):
    """Contrastive training on MelShardDataModule batches ({"mel", "caption", "tags"}). ``data_info``
    (mel config, statistics, vocabulary) is linked from the DataModule by the CLI and stored in every
    checkpoint, so a checkpoint alone rebuilds the embedder (``load_clap(ckpt)``)."""

    ditto2_module = "ditto2.lit.clap.InDomainClapModule"

    def __init__(self, data_info: dict, embed_dim: int = 128, channels: Sequence[int] = (16, 32, 64, 128),
                 init_temperature: float = 0.07, train_text: bool = False, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_steps: int = 200, audio_tower: str = "cnn"):
        super().__init__()
        self.save_hyperparameters()
        self.mel_config = MelConfig.from_dict(data_info["mel"])
        self.normalizer = MelNormalizer.from_dict(data_info["stats"])
        self.cfg = InDomainClapConfig(embed_dim=embed_dim, channels=tuple(channels),
                                      init_temperature=init_temperature, train_text=train_text,
                                      audio_tower=audio_tower, n_mels=self.mel_config.n_mels)
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
        return with_warmup(opt, self.hparams.warmup_steps)


def load_clap_checkpoint(path: str | Path, map_location: str = "cpu"):
    """An InDomainClapModule ``.ckpt`` -> the same frozen embedder ``load_clap`` gives for its bundle."""
    from ditto2.clap.indomain import embedder_from

    module = InDomainClapModule.load_from_checkpoint(str(path), map_location=map_location)
    return embedder_from(module.exported_model(), module.bundle_meta())
