"""`ITOModule`: the Lightning wrapper of ITO (paper Alg. 1). The unit noise z (x_T = σ_max·z) of B
independent items is the only trainable parameter; one Lightning step is one Adam step of
``ditto2.ito.optimize.step_loss``, the same step ``optimize_noise`` takes without Lightning. Models are
frozen inside the surrogate; the control holds its checked targets. Reports are callbacks
(``ditto2.lit.report``)."""
from __future__ import annotations

import time
from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from ditto2.ito.optimize import (
    ADAM_BETAS,
    best_start,
    check_betas,
    initial_noise,
    pooled_gradient,
    start_envelope_of,
    step_loss,
    step_sizes,
    timed_decode,
)
from ditto2.ito.optimizers import check_optimizer, noise_optimizer
from ditto2.ito.surrogates import Surrogate, m_schedule


class ITOModule(pl.LightningModule):
    def __init__(self, surrogate: Surrogate, control: nn.Module, noise_shape: tuple, steps: int = 70,
                 m=1, lr: float = 5e-3, prior_weight: float = 0.0, seed: int = 0,
                 init_noise: Optional[torch.Tensor] = None, lr_decay: str = "constant",
                 betas=ADAM_BETAS, envelope_weight: float = 0.0, anchor_weight: float = 0.0,
                 start_others: Optional[torch.Tensor] = None, optimizer: str = "adam", smooth_sigma: float = 0.0,
                 teacher_weight: float = 0.0, teacher_sigma: float = 1.0, update_pool: int = 1):
        super().__init__()
        self.surrogate, self.control = surrogate.eval(), control
        self.k, self.lr, self.prior_weight, self.envelope_weight = steps, lr, prior_weight, envelope_weight
        self.start_envelope: Optional[torch.Tensor] = None  # read from the initial noise when training starts
        self.schedule = m_schedule(steps, m)
        self.sizes = step_sizes(lr, steps, lr_decay)  # Adam's step size at each step (optimize_noise's)
        self.betas = check_betas(betas)
        self.optimizer_name = check_optimizer(optimizer)
        self.z = nn.Parameter((initial_noise(noise_shape, seed) if init_noise is None else init_noise).clone())
        self.anchor_weight = anchor_weight
        self.smooth_sigma, self.seed = smooth_sigma, seed  # randomized smoothing of the control (``smoothing_noise``)
        self.teacher_weight, self.teacher_sigma = teacher_weight, teacher_sigma  # the teacher prior (``objective``)
        self.update_pool = update_pool  # the noise moves in blocks of this many bins × frames (``pooled_gradient``)
        self.register_buffer("z_start", self.z.detach().clone(), persistent=False)  # what the anchor prior pulls to
        # further candidate starts: the best of z and these is chosen when training starts (``best_start``), timed
        self.start_others = start_others
        self.history: list[list[float]] = []  # per step, per item loss
        self.timing = {"optimize_s": 0.0, "decode_s": 0.0, "step_s": []}  # step_s: wall time of each Adam step
        self._t0 = 0.0

    def train(self, mode: bool = True):
        super().train(mode)
        self.surrogate.eval()  # the frozen models stay in eval mode whatever the Trainer asks
        return self

    def train_dataloader(self):
        return DataLoader(range(self.k), batch_size=None)  # a Lightning epoch of K steps; no data

    def configure_optimizers(self):
        return noise_optimizer(self.optimizer_name, self.z, self.lr, self.betas)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self.trainer.optimizers[0].param_groups[0]["lr"] = self.sizes[self.global_step]

    def training_step(self, step, batch_idx):
        k = self.global_step
        per_item = step_loss(self.surrogate, self.control, self.z, self.schedule[k], k, self.seed, self.prior_weight,
                             self.envelope_weight, self.start_envelope, self.anchor_weight, self.z_start,
                             self.smooth_sigma, self.teacher_weight, self.teacher_sigma)
        self.history.append(per_item.detach().cpu().tolist())
        self.log("ito/loss", per_item.mean(), prog_bar=True, batch_size=per_item.shape[0])
        return per_item.sum()  # items are independent: the sum gives each its own gradient

    def on_train_start(self) -> None:
        self._t0 = time.perf_counter()
        if self.start_others is not None and self.schedule:
            with torch.no_grad():  # before the first step: Adam has no state yet
                chosen, _ = best_start(self.surrogate, self.control, self.z.detach(), self.start_others, self.schedule[0])
                self.z.copy_(chosen)
                self.z_start.copy_(chosen)
        self.start_envelope = start_envelope_of(self.surrogate, self.z, self.schedule[0], self.envelope_weight)

    def on_after_backward(self) -> None:
        # before Lightning's gradient clipping and the optimizer step, as in optimize_noise
        self.z.grad = pooled_gradient(self.z.grad, self.update_pool)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # after the optimizer step; the per-item loss read in training_step has synchronized the device
        now = time.perf_counter() - self._t0
        self.timing["step_s"].append(now - self.timing["optimize_s"])
        self.timing["optimize_s"] = now

    @torch.no_grad()
    def decode(self) -> torch.Tensor:
        return timed_decode(self.surrogate, self.z, self.timing)
