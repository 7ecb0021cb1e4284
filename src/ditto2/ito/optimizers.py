"""The optimizers ITO can move the noise with: Adam (the paper's), or Adam with one second moment per item.

Adam divides each element's step by that element's own running gradient RMS, so early on every element moves by about
the step size whatever its gradient (close to sign descent): elements the loss hardly depends on move as far as those
it depends on most. ``ItemAdam`` keeps Adam's first moment, bias corrections and step size but divides by one running
RMS per item (the mean of g² over the item's elements): the step keeps the gradient's direction within an item, and an
item's RMS step is still about the step size. For 1-element items the two are the same optimizer.
"""
from __future__ import annotations

import torch

OPTIMIZERS = ("adam", "adam-item")


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return name


class ItemAdam(torch.optim.Optimizer):
    """Adam whose second moment is one number per item (dim 0 of each parameter) instead of one per element."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (b1, b2), eps, lr = group["betas"], group["eps"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = p.new_zeros((p.shape[0],) + (1,) * (p.dim() - 1))  # one per item, broadcastable
                state["step"] += 1
                t, g = state["step"], p.grad
                state["m"].mul_(b1).add_(g, alpha=1 - b1)
                state["v"].mul_(b2).add_(g.pow(2).flatten(1).mean(1).view_as(state["v"]), alpha=1 - b2)
                denom = (state["v"] / (1 - b2 ** t)).sqrt_().add_(eps)
                p.addcdiv_(state["m"], denom, value=-lr / (1 - b1 ** t))
        return loss


def noise_optimizer(name: str, z: torch.nn.Parameter, lr: float, betas) -> torch.optim.Optimizer:
    """The optimizer ``name`` (``OPTIMIZERS``) over the noise z (B items along dim 0)."""
    if check_optimizer(name) == "adam":
        return torch.optim.Adam([z], lr=lr, betas=betas)
    return ItemAdam([z], lr=lr, betas=betas)
