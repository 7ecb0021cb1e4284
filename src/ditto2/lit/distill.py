"""CM and CTM distillation of a frozen guided teacher (paper eqs. 1 and 4), thin Lightning wiring.

Both draw a grid index n of the teacher's T-point Karras grid, noise the data to t = σ_n, let the
teacher take one guided step to σ_{n+1} with w ~ U[w_min, w_max], and pull the student's output at
x_t towards the stop-gradient output of the target network φ⁻ (an EMA of the student) at the
teacher's point. The student starts as the teacher (zero-initialized w / s embeddings).
"""
from __future__ import annotations

import copy
from typing import Sequence

import pytorch_lightning as pl
import torch

from ditto2.audio.mel import MelConfig, MelNormalizer
from ditto2.data.tags import TagVocab
from ditto2.diffusion.consistency import (CMStudent, CTMStudent, cm_sample, ctm_gamma_sample, decode_sigmas,
                                          teacher_step)
from ditto2.diffusion.edm import ConsistencyPrecond, EDMPrecond, drop_tags, karras_sigmas
from ditto2.lit.bundle import load_bundle, unet_config_from_dict, unet_config_to_dict
from ditto2.lit.generate import Generator
from ditto2.lit.sample_logging import SampleLogMixin
from ditto2.nn.unet import UNet


class DistillModule(SampleLogMixin, pl.LightningModule):
    """Shared wiring; subclasses define the student, its loss pair and its sampler."""

    kind = ""

    def __init__(
        self,
        teacher: str,
        data_info: dict,
        grid_steps: int = 20,
        w_min: float = 1.0,
        w_max: float = 4.0,
        teacher_solver: str = "euler",
        target_decay: float = 0.95,
        tag_dropout: float = 0.1,
        distance: str = "l2",
        lr: float = 1e-4,
        warmup_steps: int = 100,
        sample_w: float = 2.0,
        sample_steps: Sequence[int] = (1, 2, 4),
        sample_gamma: float = 0.2,
        n_log_samples: int = 4,
        sample_seed: int = 1234,
    ):
        super().__init__()
        self.save_hyperparameters()
        if distance not in ("l2", "pseudo_huber"):
            raise ValueError(f"distance must be 'l2' or 'pseudo_huber', got {distance!r}")
        teacher_model, meta = load_bundle(teacher)
        self.mel_config = MelConfig.from_dict(data_info["mel"])
        MelConfig.from_dict(meta["data"]["mel"]).check_matches(self.mel_config, what="the shards")
        if meta["data"]["vocab"] != data_info["vocab"]:
            raise ValueError("the teacher was trained with another tag vocabulary than these shards")
        self.normalizer = MelNormalizer.from_dict(data_info["stats"])
        self.vocab = TagVocab.from_dict(data_info["vocab"])
        self.teacher_meta = meta
        self.teacher = teacher_model.requires_grad_(False).eval()
        unet_cfg = unet_config_from_dict({**meta["unet"], "use_w_embedding": True,
                                          "use_s_embedding": self.kind == "ctm"})
        net = UNet(unet_cfg)
        new = net.load_teacher_state(self.teacher.net.state_dict())
        assert all(k.startswith(("w_embed", "s_embed")) for k in new), new
        self.unet_config = unet_cfg
        e = meta["edm"]
        precond_cls = ConsistencyPrecond if self.kind == "cm" else EDMPrecond
        wrapper = CMStudent if self.kind == "cm" else CTMStudent
        self.student = wrapper(precond_cls(net, sigma_data=e["sigma_data"], sigma_min=e["sigma_min"], sigma_max=e["sigma_max"]))
        self.target = copy.deepcopy(self.student).requires_grad_(False)
        self.register_buffer("grid", karras_sigmas(grid_steps, e["sigma_min"], e["sigma_max"]), persistent=False)

    # ------------------------------------------------------------------ export
    def bundle_meta(self) -> dict:
        h = self.hparams
        return {"kind": self.kind, "unet": unet_config_to_dict(self.unet_config), "data": h.data_info,
                "edm": self.teacher_meta["edm"], "grid_steps": h.grid_steps, "w_range": [h.w_min, h.w_max],
                "teacher": h.teacher, "sampling": {"w": h.sample_w, "gamma": h.sample_gamma},
                "unconditional": self.unconditional}

    def exported_model(self):
        return self.student

    @property
    def unconditional(self) -> bool:
        """A teacher trained without tags gets (and its students learn) null tags only."""
        return bool(self.teacher_meta.get("unconditional", False))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ditto2_module"] = f"{type(self).__module__}.{type(self).__name__}"

    def on_train_start(self) -> None:
        self.teacher.eval()  # Lightning puts every submodule in train mode; the teacher stays frozen

    # ------------------------------------------------------------------ training
    def _draw(self, batch, generator=None):
        x0 = batch["mel"]
        b, dev = x0.shape[0], x0.device
        n = torch.randint(0, len(self.grid) - 1, (b,), device=dev, generator=generator)
        w = self.hparams.w_min + (self.hparams.w_max - self.hparams.w_min) * torch.rand(b, device=dev, generator=generator)
        tags = drop_tags(self.condition_tags(batch["tags"]), self.hparams.tag_dropout, generator=generator)
        eps = torch.randn(x0.shape, device=dev, generator=generator)
        return x0, n, w, tags, eps

    def distill_loss(self, batch, generator=None) -> torch.Tensor:
        x0, n, w, tags, eps = self._draw(batch, generator)
        t, t_next = self.grid[n], self.grid[n + 1]
        x_t = x0 + t.reshape(-1, 1, 1, 1) * eps
        x_hat = teacher_step(self.teacher, x_t, t, t_next, tags, w, self.hparams.teacher_solver)
        pred, target = self.pair(x_t, x_hat, n, tags, w, generator)
        return self.distance(pred, target.detach())

    def distance(self, a, b) -> torch.Tensor:
        sq = (a - b).float().square().flatten(1)
        if self.hparams.distance == "l2":
            return sq.mean(1)
        c = 0.00054 * sq.shape[1] ** 0.5  # iCT's pseudo-Huber constant, scaled by dimension
        return ((sq.sum(1) + c**2).sqrt() - c) / sq.shape[1] ** 0.5

    def training_step(self, batch, batch_idx):
        loss = self.distill_loss(batch).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        mu = self.hparams.target_decay
        with torch.no_grad():
            for p_t, p in zip(self.target.parameters(), self.student.parameters()):
                p_t.lerp_(p, 1.0 - mu)

    def validation_step(self, batch, batch_idx):
        gen = torch.Generator(device=batch["mel"].device).manual_seed(batch_idx)
        self.log("val/loss", self.distill_loss(batch, gen).mean(), prog_bar=True, batch_size=batch["mel"].shape[0])

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.log_samples()

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.student.parameters(), lr=self.hparams.lr)
        warm = max(1, self.hparams.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_for_logging(self, noise, tags):
        """k-step student samples next to the teacher's 20-step guided Euler from the same noise."""
        w = self.hparams.sample_w
        tags = self.condition_tags(tags)
        teacher = Generator(self.teacher, self.mel_config, self.normalizer, self.vocab, self.teacher_meta)
        out = {"teacher_euler20": teacher.sample(noise, tags, w=w, steps=len(self.grid))}
        for k in self.hparams.sample_steps:
            out[f"{self.kind}_{k}step"] = self.generate(noise, tags, w, k, generator=torch.Generator(device=noise.device).manual_seed(0))
            self.log(f"val/mse_vs_teacher_{k}step", (out[f"{self.kind}_{k}step"] - out["teacher_euler20"]).pow(2).mean())
        return out


class CMDistillModule(DistillModule):
    """Paper eq. (1): ‖G_φ(x_t, t) − sg[G_φ⁻(x̂_{t−1}, t−1)]‖², boundary condition at σ_min."""

    kind = "cm"

    def pair(self, x_t, x_hat, n, tags, w, generator=None):
        return self.student(x_t, self.grid[n], tags, w), self.target(x_hat, self.grid[n + 1], tags, w)

    def generate(self, noise, tags, w, steps, generator=None, model=None):
        model = model or self.student
        sigmas = decode_sigmas(steps, self.grid)
        return cm_sample(lambda x, s: model(x, s, tags, w), noise * sigmas[0], sigmas, generator)


class CTMDistillModule(DistillModule):
    """Paper eq. (4): ‖G_φ(x_t, t, s) − sg[G_φ⁻(x̂_{t−1}, t−1, s)]‖², s on the grid at or below t−1."""

    kind = "ctm"

    def pair(self, x_t, x_hat, n, tags, w, generator=None):
        # s index uniform on {n+1, ..., N−1}: from the teacher's point down to σ_min
        last = len(self.grid) - 1
        u = torch.rand(n.shape, device=n.device, generator=generator)
        m = n + 1 + (u * (last - n).float()).floor().long().clamp(max=last - n - 1)
        s = self.grid[m]
        return self.student(x_t, self.grid[n], s, tags, w), self.target(x_hat, self.grid[n + 1], s, tags, w)

    def generate(self, noise, tags, w, steps, gamma=None, generator=None, model=None):
        model = model or self.student
        gamma = self.hparams.sample_gamma if gamma is None else gamma
        sigmas = decode_sigmas(steps, self.grid)
        return ctm_gamma_sample(lambda x, t, s: model(x, t, s, tags, w), noise * sigmas[0], sigmas, gamma, generator)
