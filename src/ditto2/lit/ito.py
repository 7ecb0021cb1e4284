"""`ITOModule`: inference-time optimization of the initial noise (paper Alg. 1). The unit noise z
(x_T = σ_max·z) of B independent items is the only trainable parameter; one Lightning step is one
Adam step. Models are frozen inside the surrogate; the control holds its checked targets."""
from __future__ import annotations

import time
from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from ditto2.controls.base import CompositeControl
from ditto2.ito.surrogates import Surrogate, m_schedule


class ITOModule(pl.LightningModule):
    def __init__(self, surrogate: Surrogate, control: CompositeControl, noise_shape: tuple, steps: int = 70,
                 m=1, lr: float = 5e-3, prior_weight: float = 0.0, seed: int = 0,
                 init_noise: Optional[torch.Tensor] = None):
        super().__init__()
        self.surrogate, self.control = surrogate.eval(), control  # frozen: eval mode throughout
        self.k, self.lr, self.prior_weight = steps, lr, prior_weight
        self.schedule = m_schedule(steps, m)
        if init_noise is None:
            init_noise = torch.randn(noise_shape, generator=torch.Generator().manual_seed(seed))
        self.z = nn.Parameter(init_noise.clone())
        self.history: list[list[float]] = []  # per step, per item loss
        self.timing = {"optimize_s": 0.0, "decode_s": 0.0, "step_s": []}  # step_s: wall time of each Adam step
        self._t0 = 0.0

    def train_dataloader(self):
        return DataLoader(range(self.k), batch_size=None)  # the steps themselves; no data

    def configure_optimizers(self):
        return torch.optim.Adam([self.z], lr=self.lr)

    def objective(self, z: torch.Tensor, m: int) -> torch.Tensor:
        """Per-item loss (B,): control loss of the surrogate's output, plus an optional prior that
        keeps z near the Gaussian shell (‖z‖²/d ≈ 1), where the models were trained."""
        per_item = self.control(self.surrogate.optimize_forward(z, m))
        if self.prior_weight > 0:
            per_item = per_item + self.prior_weight * (z.pow(2).flatten(1).mean(1) - 1).pow(2)
        return per_item

    def training_step(self, step, batch_idx):
        per_item = self.objective(self.z, self.schedule[self.global_step])
        self.history.append(per_item.detach().cpu().tolist())
        self.log("ito/loss", per_item.mean(), prog_bar=True, batch_size=per_item.shape[0])
        return per_item.sum()  # items are independent: the sum gives each its own gradient

    def on_train_start(self) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # updated every step (not at train end: callbacks' on_train_end, which decode, run first); the
        # per-item loss read in training_step has synchronized the device already
        now = time.perf_counter() - self._t0
        self.timing["step_s"].append(now - self.timing["optimize_s"])
        self.timing["optimize_s"] = now

    @torch.no_grad()
    def decode(self) -> torch.Tensor:
        t0 = time.perf_counter()
        mel = self.surrogate.decode(self.z.detach())
        if mel.is_cuda:
            torch.cuda.synchronize(mel.device)
        self.timing["decode_s"] = time.perf_counter() - t0
        return mel
