"""The optimizer setup the training modules share: linear learning-rate warm-up, stepped per batch."""
from __future__ import annotations

import torch


def with_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int) -> dict:
    """``configure_optimizers``' answer: the rate ramps linearly over ``warmup_steps`` steps, then stays."""
    warm = max(1, warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warm))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
