"""`TaggerModule`: trains the genre / mood / tempo tagger (``ditto2.nn.tagger.MelTagger``) that grades text
control. It is a grader only: no control ever uses it as a loss (issue 14), and it has its own architecture and
seed, so a text control's CLAP cannot have learned its blind spots."""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from ditto2.audio.mel import MelConfig
from ditto2.data.tags import TAG_FIELDS
from ditto2.lit.optim import with_warmup
from ditto2.nn.tagger import MelTagger, TemporalConvConfig


def tagger_bundle_meta(cfg: TemporalConvConfig, data_info: dict) -> dict:
    return {"kind": "tagger", "tagger": cfg.to_dict(), "fields": list(TAG_FIELDS), "data": data_info}


class TaggerModule(pl.LightningModule):
    """Cross-entropy per tag field on MelShardDataModule batches; clips whose field is null (id 0) do not count
    for that field. Augmentation: a random gain (± ``gain_db``) and a random circular shift in time, so the
    tagger judges what is played, not the level or where a clip starts. Logs per-field accuracy and its
    majority-class chance on val / test."""

    ditto2_module = "ditto2.lit.tagger.TaggerModule"

    def __init__(self, data_info: dict, width: int = 128, dilations=(1, 2, 4, 8), dropout: float = 0.1,
                 lr: float = 2e-3, weight_decay: float = 1e-3, warmup_steps: int = 100, gain_db: float = 6.0):
        super().__init__()
        self.save_hyperparameters()
        self.mel_config = MelConfig.from_dict(data_info["mel"])  # the shards it reads (checked against the DataModule's)
        sizes = [len(data_info["vocab"]["values"][f]) for f in TAG_FIELDS]
        self.cfg = TemporalConvConfig(n_mels=data_info["mel"]["n_mels"], width=width, dilations=tuple(dilations),
                                      dropout=dropout)
        self.model = MelTagger(self.cfg, sizes)
        stats = data_info["stats"]
        # dB -> normalized log-mel units: LogMel is the natural log of a magnitude (1 dB = ln 10 / 20), then
        # (x − mean) / std · target_std
        self._gain_unit = math.log(10.0) / 20 / stats["std"] * stats.get("target_std", 1.0)
        self._eval: dict[str, list] = {}

    def bundle_meta(self) -> dict:
        return tagger_bundle_meta(self.cfg, self.hparams.data_info)

    def exported_model(self) -> MelTagger:
        return self.model

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ditto2_module"] = self.ditto2_module

    def _losses(self, logits: list, tags: torch.Tensor) -> torch.Tensor:
        # class j = vocabulary id j + 1; id 0 (null) -> −1 -> ignored
        return sum(F.cross_entropy(lg, tags[:, j] - 1, ignore_index=-1) if (tags[:, j] > 0).any()
                   else lg.sum() * 0.0 for j, lg in enumerate(logits))

    def training_step(self, batch, batch_idx):
        mel = batch["mel"]
        b = mel.shape[0]
        gain = (torch.rand(b, 1, 1, 1, device=mel.device) * 2 - 1) * self.hparams.gain_db * self._gain_unit
        shift = int(torch.randint(0, mel.shape[-1], ()).item())
        logits = self.model(torch.roll(mel + gain, shift, dims=-1))
        loss = self._losses(logits, batch["tags"])
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        return loss

    def validation_step(self, batch, batch_idx, stage: str = "val"):
        logits = self.model(batch["mel"])
        self.log(f"{stage}/loss", self._losses(logits, batch["tags"]), prog_bar=True, batch_size=len(batch["mel"]))
        self._eval.setdefault("pred", []).append(torch.stack([lg.argmax(-1) + 1 for lg in logits], 1))
        self._eval.setdefault("tags", []).append(batch["tags"])

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx, stage="test")

    def on_validation_epoch_end(self, stage: str = "val") -> None:
        if not self._eval:
            return
        pred, tags = torch.cat(self._eval.pop("pred")), torch.cat(self._eval.pop("tags"))
        self._eval.clear()
        for j, f in enumerate(TAG_FIELDS):
            known = tags[:, j] > 0
            if not known.any():
                continue
            acc = (pred[known, j] == tags[known, j]).float().mean()
            chance = torch.bincount(tags[known, j]).max().float() / known.sum()
            self.log(f"{stage}/{f}_acc", acc, sync_dist=True)
            self.log(f"{stage}/{f}_acc_majority", chance, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self.on_validation_epoch_end(stage="test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        return with_warmup(opt, self.hparams.warmup_steps)
