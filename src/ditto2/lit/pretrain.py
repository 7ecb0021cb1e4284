"""`PretrainModule`: EDM training of the tag-conditioned mel UNet with CFG tag dropout (thin wiring)."""
from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl
import torch

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.data.tags import TagVocab
from ditto2.diffusion.edm import EDMPrecond, drop_tags, edm_loss
from ditto2.diffusion.samplers import base_sigmas, sample_guided
from ditto2.lit.optim import with_warmup
from ditto2.lit.sample_logging import SampleLogMixin
from ditto2.models.bundle import unet_config_to_dict
from ditto2.nn.unet import UNet, UNetConfig

# σ bands for loss logging: where the model removes fine detail, structure, or global layout
SIGMA_BANDS = ((0.0, 0.2, "low"), (0.2, 2.0, "mid"), (2.0, float("inf"), "high"))
VAL_SIGMAS = (0.02, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0)


class PretrainModule(SampleLogMixin, pl.LightningModule):
    """Base model D_θ. ``data_info`` (mel config, statistics, vocabulary) comes from the DataModule
    (linked by the CLI) and is stored in every checkpoint, so a checkpoint alone rebuilds the model."""

    ditto2_module = "ditto2.lit.pretrain.PretrainModule"

    def __init__(
        self,
        data_info: dict,
        unet_preset: str = "tiny",
        unet_overrides: Optional[dict] = None,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        tag_dropout: float = 0.1,
        unconditional: bool = False,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 500,
        sample_steps: int = 20,
        sample_w: float = 2.0,
        n_log_samples: int = 4,
        sample_seed: int = 1234,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.mel_config = MelConfig.from_dict(data_info["mel"])
        self.normalizer = MelNormalizer.from_dict(data_info["stats"])
        self.vocab = TagVocab.from_dict(data_info["vocab"])
        self.unet_config = UNetConfig.preset(unet_preset, self.vocab.sizes, **(unet_overrides or {}))
        self.denoiser = EDMPrecond(UNet(self.unet_config), sigma_data=sigma_data, sigma_min=sigma_min, sigma_max=sigma_max)

    def bundle_meta(self) -> dict:
        h = self.hparams
        return {"kind": "edm", "unet": unet_config_to_dict(self.unet_config), "data": h.data_info,
                "edm": {"sigma_data": h.sigma_data, "sigma_min": h.sigma_min, "sigma_max": h.sigma_max},
                "sampling": {"steps": h.sample_steps, "w": h.sample_w}, "unconditional": h.unconditional}

    def exported_model(self):
        return self.denoiser

    @property
    def unconditional(self) -> bool:
        """The model never sees a tag (paper §5.4's U-DITTO-2 base model): null ids in training,
        validation and sampling alike (``condition_tags``)."""
        return bool(self.hparams.unconditional)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ditto2_module"] = self.ditto2_module

    # ------------------------------------------------------------------ training
    def training_step(self, batch, batch_idx):
        tags = drop_tags(self.condition_tags(batch["tags"]), self.hparams.tag_dropout)
        loss, sigma = edm_loss(self.denoiser, batch["mel"], tags, P_mean=self.hparams.p_mean,
                               P_std=self.hparams.p_std, sigma_data=self.hparams.sigma_data)
        self._log_bands("train", loss.detach(), sigma)
        mean = loss.mean()
        self.log("train/loss", mean, prog_bar=True)
        return mean

    def _log_bands(self, stage: str, loss: torch.Tensor, sigma: torch.Tensor) -> None:
        for lo, hi, name in SIGMA_BANDS:
            mask = (sigma >= lo) & (sigma < hi)
            if mask.any():
                self.log(f"{stage}/loss_sigma_{name}", loss[mask].mean(), batch_size=int(mask.sum()))

    def validation_step(self, batch, batch_idx):
        """EDM loss at fixed σ values with fixed noise, so curves are comparable across steps."""
        x0, tags = batch["mel"], self.condition_tags(batch["tags"])
        gen = torch.Generator(device=x0.device).manual_seed(batch_idx)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device)
        sd = self.hparams.sigma_data
        total = 0.0
        for s in VAL_SIGMAS:
            sigma = torch.full((x0.shape[0],), s, device=x0.device)
            weight = (s**2 + sd**2) / (s * sd) ** 2
            err = weight * (self.denoiser(x0 + s * noise, sigma, tags) - x0).pow(2).flatten(1).mean(1)
            self.log(f"val/loss_sigma_{s:g}", err.mean(), batch_size=x0.shape[0])
            total = total + err.mean()
        self.log("val/loss", total / len(VAL_SIGMAS), prog_bar=True, batch_size=x0.shape[0])

    def on_validation_epoch_start(self) -> None:
        # at the start: the EMA callback's averaged weights are in place here (swapped out again before epoch end)
        if not self.trainer.sanity_checking:
            self.log_samples()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.denoiser.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        return with_warmup(opt, self.hparams.warmup_steps)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(self, noise: torch.Tensor, tags: torch.Tensor, w: float, steps: int) -> torch.Tensor:
        """Guided deterministic Euler from unit noise (B, 1, n_mels, frames)."""
        sigmas = base_sigmas(steps, self.hparams.sigma_min, self.hparams.sigma_max)
        return sample_guided(self.denoiser, noise, tags, w, sigmas)

    def sample_for_logging(self, noise, tags):
        tags = self.condition_tags(tags)
        return {f"euler{self.hparams.sample_steps}_w{self.hparams.sample_w:g}":
                self.generate(noise, tags, self.hparams.sample_w, self.hparams.sample_steps)}
