"""Inference-time optimization of the initial noise (paper Alg. 1) as a plain function.

``optimize_noise(surrogate, control, z0, schedule, lr)`` runs K Adam steps on the unit noise z
(x_T = σ_max·z) of B independent items and returns the optimized z with the per-item loss of every
step. No Lightning: the runner, the benches, the demo and a notebook call it directly;
``ditto2.lit.ito.ITOModule`` is the thin Lightning wrapper around the same ``step_loss``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from ditto2.ito.optimizers import noise_optimizer
from ditto2.ito.surrogates import Surrogate


def envelope(mel: torch.Tensor) -> torch.Tensor:
    """(B, 1, F, T) normalized log-mel -> (B, F): each bin's mean over time, the spectral envelope of an item."""
    return mel.mean(dim=(1, 3))


def envelope_change(mel: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Per-item (B,) change of the spectral envelope against ``start`` (B, F), up to one offset for all bins: the
    variance over bins of envelope(mel) − start. 0 when every bin got louder or quieter by the same amount (log-mel), so
    a level may move freely; positive when the balance of low and high bins (the timbre) moved."""
    d = envelope(mel) - start
    return (d - d.mean(dim=1, keepdim=True)).pow(2).mean(dim=1)


def anchor_distance(z: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """Per-item (B,) mean squared distance of the noise from where it started: mean over elements of (z − z0)²."""
    return (z - z0).pow(2).flatten(1).mean(1)


def teacher_distance(surrogate: Surrogate, mel: torch.Tensor, sigma: float, eps: torch.Tensor) -> torch.Tensor:
    """Per-item (B,) mean squared distance of an output from the teacher's guided denoised estimate of its noised copy,
    D_w(mel + σ·ε; σ), the estimate held fixed (no gradient through the teacher): score distillation. Its gradient,
    2(mel − D)/d, points from where the teacher would take the output back towards the music it models with these tags,
    so outputs the 1-step student pushed off the teacher's distribution are pulled back; ε is drawn afresh each step
    (``teacher_noise``). One guided teacher call (two network evaluations) per step, no backward through it."""
    with torch.no_grad():
        target = surrogate.teacher_denoise(mel.detach() + sigma * eps, sigma)
    return (mel - target).pow(2).flatten(1).mean(1)


TEACHER_STREAM = 3  # the teacher prior's side stream (``stream_noise``)


def teacher_noise(shape: tuple, seed: int, k: int, weight: float, device=None) -> Optional[torch.Tensor]:
    """ε of step k's teacher prior (``teacher_distance``): standard normal, fixed by (seed, k); None when the prior is
    off (weight 0)."""
    if weight == 0:
        return None
    if weight < 0:
        raise ValueError(f"the teacher prior needs teacher_weight >= 0, got {weight}")
    return stream_noise(shape, TEACHER_STREAM, seed, k).to(device)


def objective(surrogate: Surrogate, control: nn.Module, z: torch.Tensor, m: int,
              prior_weight: float = 0.0, envelope_weight: float = 0.0,
              start_envelope: Optional[torch.Tensor] = None, anchor_weight: float = 0.0,
              z_start: Optional[torch.Tensor] = None, perturb: Optional[torch.Tensor] = None,
              teacher_weight: float = 0.0, teacher_sigma: float = 1.0,
              teacher_eps: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-item loss (B,): the control loss of the surrogate's M-step output, plus four optional priors: one that
    keeps z near the Gaussian shell (‖z‖²/d ≈ 1), where the models were trained, one that keeps the output's
    spectral envelope up to a level (``envelope_change`` against ``start_envelope``, that of the surrogate's output
    of the initial noise: ``start_envelope_of``), one that keeps z near the initial noise ``z_start``
    (``anchor_weight`` · ``anchor_distance``): the nearest noise that meets the control rather than any, and one that
    keeps the output where the teacher would take it (``teacher_weight`` · ``teacher_distance`` at ``teacher_sigma``,
    noise ``teacher_eps``: ``teacher_noise``).
    ``perturb`` (``smoothing_noise``): the control is read at z + perturb, the priors at z itself."""
    mel = surrogate.optimize_forward(z if perturb is None else z + perturb, m)
    per_item = control(mel)
    if teacher_weight > 0:
        if teacher_eps is None:
            raise ValueError("teacher_weight > 0 needs the step's teacher noise (teacher_noise)")
        per_item = per_item + teacher_weight * teacher_distance(surrogate, mel, teacher_sigma, teacher_eps)
    if prior_weight > 0:
        per_item = per_item + prior_weight * (z.pow(2).flatten(1).mean(1) - 1).pow(2)
    if anchor_weight > 0:
        if z_start is None:
            raise ValueError("anchor_weight > 0 needs the initial noise (z_start) to anchor to")
        per_item = per_item + anchor_weight * anchor_distance(z, z_start)
    if envelope_weight > 0:
        if start_envelope is None:
            raise ValueError("envelope_weight > 0 needs the start envelope (start_envelope_of the initial noise)")
        per_item = per_item + envelope_weight * envelope_change(mel, start_envelope)
    return per_item


def check_update_pool(pool: int, bins: int, frames: int) -> int:
    """``pool`` if blocks of pool × pool tile a noise of ``bins`` × ``frames`` (``pooled_gradient``), else a ValueError."""
    if pool < 1 or bins % pool or frames % pool:
        raise ValueError(f"update_pool {pool} must divide the noise's {bins} mel bins and {frames} frames (and be >= 1)")
    return pool


def pooled_gradient(grad: torch.Tensor, pool: int) -> torch.Tensor:
    """The gradient of z (B, 1, F, T) averaged over blocks of ``pool`` × ``pool`` (mel bin, frame) and spread back over
    each block: Adam then moves every element of a block alike, so the noise changes only in its coarse components
    (z0 + a block-constant update). ``pool`` = 1 returns the gradient as it is."""
    if pool == 1:
        return grad
    f, t = grad.shape[-2:]
    check_update_pool(pool, f, t)
    coarse = torch.nn.functional.avg_pool2d(grad.flatten(0, -3).unsqueeze(1), pool).reshape(
        *grad.shape[:-2], f // pool, t // pool)
    return coarse.repeat_interleave(pool, -2).repeat_interleave(pool, -1)


SMOOTH_STREAM = 2  # the smoothing draws' side stream (``stream_noise``)


def smoothing_noise(shape: tuple, seed: int, k: int, sigma: float, device=None) -> Optional[torch.Tensor]:
    """σ·ε, the point step k of a smoothed optimization reads the control at (z + σ·ε): ε standard normal, fixed by
    (seed, k) and drawn afresh each step, so the expected gradient is that of the control smoothed by a Gaussian of width
    σ around z (randomized smoothing). Directions that lower the loss only in a small neighbourhood of z — a 1-step
    student's own quirks rather than the music — average out. None when σ = 0 (off)."""
    if sigma == 0:
        return None
    if sigma < 0:
        raise ValueError(f"smoothing needs sigma >= 0, got {sigma}")
    return sigma * stream_noise(shape, SMOOTH_STREAM, seed, k).to(device)


def step_loss(surrogate: Surrogate, control: nn.Module, z: torch.Tensor, m: int, k: int, seed: int,
              prior_weight: float = 0.0, envelope_weight: float = 0.0, start_envelope: Optional[torch.Tensor] = None,
              anchor_weight: float = 0.0, z_start: Optional[torch.Tensor] = None, smooth_sigma: float = 0.0,
              teacher_weight: float = 0.0, teacher_sigma: float = 1.0) -> torch.Tensor:
    """Step k's per-item loss: ``objective`` with the step's side draws (smoothing point, teacher-prior noise), each
    fixed by (seed, k); the one step both engines (``optimize_noise``, ``ITOModule``) take."""
    shape = tuple(z.shape)
    return objective(surrogate, control, z, m, prior_weight, envelope_weight, start_envelope, anchor_weight, z_start,
                     smoothing_noise(shape, seed, k, smooth_sigma, z.device), teacher_weight, teacher_sigma,
                     teacher_noise(shape, seed, k, teacher_weight, z.device))


@torch.no_grad()
def start_envelope_of(surrogate: Surrogate, z0: torch.Tensor, m: int, envelope_weight: float) -> Optional[torch.Tensor]:
    """The envelope of the surrogate's M-step output of the initial noise (what the envelope prior keeps); None when the
    prior is off, so runs without it cost no extra forward pass."""
    return envelope(surrogate.optimize_forward(z0, m)) if envelope_weight > 0 else None


@dataclass
class NoiseRun:
    """What an ITO run produced; ``ITOModule`` offers the same attributes, so reports read either."""

    surrogate: Surrogate
    z: torch.Tensor
    history: list = field(default_factory=list)  # per step, per item loss (K lists of B floats)
    timing: dict = field(default_factory=lambda: {"optimize_s": 0.0, "decode_s": 0.0, "step_s": []})

    @torch.no_grad()
    def decode(self) -> torch.Tensor:
        """The surrogate's final (T-step) decode of the optimized noise; its wall time in timing."""
        return timed_decode(self.surrogate, self.z, self.timing)


def timed_decode(surrogate: Surrogate, z: torch.Tensor, timing: dict) -> torch.Tensor:
    t0 = time.perf_counter()
    with torch.no_grad():
        mel = surrogate.decode(z.detach())
    if mel.is_cuda:
        torch.cuda.synchronize(mel.device)
    timing["decode_s"] = time.perf_counter() - t0
    return mel


def initial_noise(shape: tuple, seed: int) -> torch.Tensor:
    """The unit noise z of a run: standard normal from a CPU generator seeded with ``seed``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


CANDIDATE_STREAM = 1  # the best-of-n candidates' side stream (``stream_noise``)
MAX_CANDIDATES = 1 << 16  # a best-of-n start takes at most this many candidates


def stream_noise(shape: tuple, stream: int, seed: int, j: int) -> torch.Tensor:
    """Draw j of a run's side stream (best-of-n candidates, smoothing draws, teacher-prior draws): standard normal from
    numpy's PCG64 keyed by the whole tuple (stream, seed, j) through a SeedSequence, so each tuple has its own noise, and
    none is a run's initial noise (torch's Mersenne twister, which reads only the low 32 bits of a seed: offsetting
    seeds past 2³² would give the same draws again)."""
    if min(stream, seed, j) < 0:
        raise ValueError(f"a side stream's (stream, seed, draw) are integers >= 0, got {(stream, seed, j)}")
    rng = np.random.default_rng(np.random.SeedSequence([stream, seed, j]))
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))


def check_start_candidates(n) -> int:
    """A best-of-n start's n, checked: an integer in 1..65536 (1 = off)."""
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= MAX_CANDIDATES:
        raise ValueError(f"start_candidates must be an integer in 1..{MAX_CANDIDATES} (1 = off), got {n}")
    return int(n)


def candidate_noises(shape: tuple, seed: int, n: int) -> torch.Tensor:
    """(n − 1, *shape): the other start noises a run with ``start_candidates = n`` chooses among besides
    ``initial_noise(shape, seed)`` (candidate 0); candidate j is draw j of the seed's candidate stream
    (``stream_noise``), so it is fixed by (seed, j), differs for every (seed, j), and is no run's initial noise."""
    n = check_start_candidates(n)
    return torch.stack([stream_noise(shape, CANDIDATE_STREAM, seed, j) for j in range(1, n)]) \
        if n > 1 else torch.empty((0, *shape))


@torch.no_grad()
def best_start(surrogate: Surrogate, control: nn.Module, z0: torch.Tensor, others: Optional[torch.Tensor],
               m: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Best-of-n start: for each item, the candidate noise (z0 or one of ``others``, (n − 1, B, ...)) whose M-step
    surrogate output already has the lowest control loss, and the (n, B) losses. Each candidate is a plain Gaussian
    draw, so the chosen start is as typical a noise as z0; the optimization then has less far to walk. One forward pass
    per candidate, no gradients; none at all without others (z0 itself, no losses)."""
    if others is None or len(others) == 0:
        return z0, None
    candidates = torch.cat([z0.unsqueeze(0), others.to(z0)])
    losses = torch.stack([control(surrogate.optimize_forward(c, m)) for c in candidates])  # (n, B)
    pick = losses.argmin(0)
    return candidates[pick, torch.arange(z0.shape[0])], losses


LR_DECAYS = ("constant", "cosine")
ADAM_BETAS = (0.9, 0.999)  # torch's (and DITTO's) defaults


def check_betas(betas) -> tuple[float, float]:
    """Adam's (β1, β2) as a checked pair: each in [0, 1)."""
    betas = tuple(float(b) for b in betas)
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"adam_betas must be two numbers in [0, 1), e.g. [0.9, 0.999], got {list(betas)}")
    return betas


def step_sizes(lr: float, k: int, decay: str = "constant") -> list[float]:
    """Adam's step size at each of ``k`` steps: ``lr`` throughout, or cosine from ``lr`` at step 0 towards 0 at step
    k (lr·½(1 + cos(πi/k))): large first steps, fine last ones, so few steps go far and still settle."""
    if decay not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {decay!r}")
    if decay == "constant":
        return [lr] * k
    return [lr * 0.5 * (1.0 + math.cos(math.pi * i / k)) for i in range(k)]


def optimize_noise(surrogate: Surrogate, control: nn.Module, z0: torch.Tensor, schedule: list[int],
                   lr: float = 5e-3, prior_weight: float = 0.0, gradient_clip: Optional[float] = None,
                   on_step: Optional[Callable[[int, torch.Tensor], None]] = None,
                   lr_decay: str = "constant", betas=ADAM_BETAS, envelope_weight: float = 0.0,
                   anchor_weight: float = 0.0, start_others: Optional[torch.Tensor] = None,
                   optimizer: str = "adam", smooth_sigma: float = 0.0, seed: int = 0, teacher_weight: float = 0.0,
                   teacher_sigma: float = 1.0, update_pool: int = 1) -> NoiseRun:
    """Adam on z for ``len(schedule)`` steps, step k differentiating through ``schedule[k]`` surrogate
    steps (``m_schedule``), with step size ``step_sizes(lr, K, lr_decay)[k]``. Items are independent: the
    summed loss gives each its own gradient. ``on_step(k, per_item_loss)`` is called after every step
    (logging, progress; it may raise to stop the run). ``betas``: Adam's (β1, β2); for a handful of steps a short
    memory, e.g. (0.5, 0.9), follows the gradient sooner than the defaults (``bench/interactive``).
    ``envelope_weight``: the envelope prior's weight (``objective``); its start envelope is read once from z0.
    ``anchor_weight``: the weight of the pull back towards the start (``objective``). ``start_others``: further
    candidate starts (``candidate_noises``); each item starts from the best of z0 and these (``best_start``), in the
    timed optimization. ``optimizer``: ``adam`` or ``adam-item`` (one second moment per item: ``ito.optimizers``).
    ``smooth_sigma``: read the control at z + σ·ε each step (``smoothing_noise``, fixed by ``seed`` and the step); the
    history then holds the losses at those points, and the returned z is the unperturbed one. ``teacher_weight``,
    ``teacher_sigma``: the teacher prior (``objective``), its noise fixed by ``seed`` and the step. ``update_pool``: move
    the noise only in blocks of that many bins × frames (``pooled_gradient``; before any clipping)."""
    surrogate.eval()
    t0 = time.perf_counter()
    if schedule:
        z0, _ = best_start(surrogate, control, z0.detach(), start_others, schedule[0])
    z = nn.Parameter(z0.detach().clone())
    z_start = z0.detach() if anchor_weight > 0 else None  # z is a copy: z0 itself never moves
    run = NoiseRun(surrogate, z)
    opt = noise_optimizer(optimizer, z, lr, check_betas(betas))
    sizes = step_sizes(lr, len(schedule), lr_decay)
    start = start_envelope_of(surrogate, z, schedule[0], envelope_weight) if schedule else None
    for k, m in enumerate(schedule):
        opt.param_groups[0]["lr"] = sizes[k]
        opt.zero_grad(set_to_none=True)
        per_item = step_loss(surrogate, control, z, m, k, seed, prior_weight, envelope_weight, start, anchor_weight,
                             z_start, smooth_sigma, teacher_weight, teacher_sigma)
        run.history.append(per_item.detach().cpu().tolist())  # also synchronizes the device
        per_item.sum().backward()
        z.grad = pooled_gradient(z.grad, update_pool)
        if gradient_clip:
            torch.nn.utils.clip_grad_norm_([z], gradient_clip)
        opt.step()
        now = time.perf_counter() - t0
        run.timing["step_s"].append(now - run.timing["optimize_s"])
        run.timing["optimize_s"] = now
        if on_step is not None:
            on_step(k, per_item.detach())
    return run
