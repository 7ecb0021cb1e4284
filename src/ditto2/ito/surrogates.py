"""What ITO differentiates through (paper §3.3): noise z -> mel. One interface, two kinds.

DITTO-2: a CM / CTM student, M-step sampling while optimizing, T-step sampling to decode.
DITTO:   the base model's full guided sampler (T=20), gradient checkpointing on every step, the
         same sampler to decode. Only the surrogate differs; the ITO loop is shared.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ditto2.diffusion.consistency import CMStudent, CTMStudent, decode_sigmas
from ditto2.diffusion.edm import karras_sigmas
from ditto2.diffusion.guidance import guided_denoise
from ditto2.diffusion.samplers import SAMPLERS, base_sigmas, refine_guided, refine_sigmas, sample_guided

ADAPTIVE = "1:0.5,2:0.375,4"  # paper §5.3: M=1 for ⌊K/2⌋ steps, M=2 for ⌊3K/8⌋, M=4 for the rest


def parse_m(m) -> list[tuple[int, float | None]]:
    """An M spec as (M, share of the K steps) parts, the last part taking the rest (share None).

    ``m`` is a positive int (every step), ``"adaptive"`` (the paper's schedule, ``ADAPTIVE``), or a
    string ``"M:share,M:share,...,M"``: e.g. ``"1:0.8,2"`` optimizes through the 1-step map for the
    first ⌊0.8K⌋ steps and through the 2-step map for the rest (cheap steps first, the decode's own
    map at the end)."""
    if isinstance(m, int) and not isinstance(m, bool) and m >= 1:
        return [(m, None)]
    if isinstance(m, str):
        text = ADAPTIVE if m == "adaptive" else m
        if text.strip().isdigit():
            return parse_m(int(text))
        try:
            parts = [p.split(":") for p in text.split(",")]
            spec = [(int(p[0]), float(p[1])) for p in parts[:-1]] + [(int(parts[-1][0]), None)]
            ok = len(parts[-1]) == 1 and all(len(p) == 2 for p in parts[:-1])
        except (ValueError, IndexError):
            ok = False
        if ok and all(k >= 1 for k, _ in spec) and all(0 < f <= 1 for _, f in spec[:-1]) \
                and sum(f for _, f in spec[:-1]) <= 1:
            return spec
    hint = " (YAML reads an unquoted a:b as a base-60 number: quote the schedule)" if isinstance(m, float) else ""
    raise ValueError(f"M must be a positive int, 'adaptive' or 'M:share,...,M' (e.g. '1:0.8,2'), got {m!r}{hint}")


def m_schedule(k: int, m) -> list[int]:
    """Steps M of the surrogate at each of the K optimization steps (``parse_m``): each part gets
    ⌊share·K⌋ steps in order, the last part the rest."""
    out: list[int] = []
    for steps, share in parse_m(m):
        out += [steps] * (k - len(out) if share is None else int(share * k + 1e-9))  # 0.29·100 is 28.999…
    return out


def m_mean(m) -> float:
    """Surrogate steps per optimization step on average (what a step of the spec costs, in M = 1 steps)."""
    spec = parse_m(m)
    rest = 1.0 - sum(share for _, share in spec[:-1])
    return sum(steps * share for steps, share in spec[:-1]) + spec[-1][0] * rest


class Surrogate(nn.Module):
    """``optimize_forward(z, M)``: differentiable mel from unit noise z; ``decode(z)``: final mel."""

    sigma_max: float

    def optimize_forward(self, z: torch.Tensor, m: int) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _tags(self, n: int) -> torch.Tensor:
        """The run's tags (the ``tags`` buffer) for n items: one row is shared by all."""
        return self.tags.expand(n, -1) if self.tags.shape[0] == 1 else self.tags

    def teacher_denoise(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The base model's guided denoised estimate D_w(x; σ) of a noised mel x, with the run's tags and w (what the
        teacher prior, ``ito.optimize.teacher_distance``, pulls an output towards)."""
        raise NotImplementedError


class StudentSurrogate(Surrogate):
    """DITTO-2. The CFG scale w is an input of the student: one call per step instead of two.

    Optimization samples deterministically (γ=0 for CTM; fixed renoising noise for CM M>1) so
    the objective does not change between steps; decoding uses γ-sampling / CM multistep. With a
    ``teacher`` (the base model's denoiser) and ``refine_sigma`` > 0, the decode is then renoised to
    that σ and finished by the base model's own guided sampler (``refine_guided``, the tail of its
    ``base_steps`` grid): the student's coarse result, the base model's fine detail. The ``teacher`` also
    gives ``teacher_denoise`` (the teacher prior of the optimization).
    """

    def __init__(self, student: nn.Module, tags: torch.Tensor, w: float = 2.0, decode_steps: int = 2,
                 gamma: float = 0.2, grid_steps: int = 20, seed: int = 0, teacher: Optional[nn.Module] = None,
                 refine_sigma: float = 0.0, base_steps: int = 20):
        super().__init__()
        if not isinstance(student, (CMStudent, CTMStudent)):
            raise TypeError(f"a student surrogate needs a CMStudent or CTMStudent, got {type(student).__name__}")
        self.student = student.requires_grad_(False)
        self.kind = "ctm" if isinstance(student, CTMStudent) else "cm"
        self.register_buffer("tags", tags, persistent=False)
        self.w, self.decode_steps, self.gamma, self.seed = w, decode_steps, gamma, seed
        p = student.precond
        self.sigma_max = p.sigma_max
        self.register_buffer("grid", karras_sigmas(grid_steps, p.sigma_min, p.sigma_max), persistent=False)
        decode_sigmas(decode_steps, self.grid)  # validates T before any compute
        self.refine_sigma = float(refine_sigma)
        self.teacher = teacher.requires_grad_(False) if teacher is not None else None
        if self.refine_sigma > 0:
            if teacher is None:
                raise ValueError("refine_sigma > 0 needs the base model (teacher) to finish the decode")
            grid = base_sigmas(base_steps, teacher.sigma_min, teacher.sigma_max)
            self.register_buffer("refine_grid", refine_sigmas(self.refine_sigma, grid), persistent=False)

    def _run(self, z, steps: int, gamma: float, seed: Optional[int]):
        sigmas = decode_sigmas(steps, self.grid)
        gen = torch.Generator(device=z.device).manual_seed(seed) if seed is not None else None
        return self.student.sample(z, sigmas, self._tags(z.shape[0]), self.w, gamma=gamma, generator=gen)

    def optimize_forward(self, z, m):
        return self._run(z, m, 0.0, self.seed + 1000)

    @torch.no_grad()
    def decode(self, z):
        x = self._run(z, self.decode_steps, self.gamma, self.seed)
        if self.refine_sigma == 0:
            return x
        gen = torch.Generator(device=z.device).manual_seed(self.seed + 2000)
        return refine_guided(self.teacher, x, self._tags(z.shape[0]), self.w, self.refine_grid, gen)

    def teacher_denoise(self, x, sigma):
        if self.teacher is None:
            raise ValueError("the teacher prior needs the base model (teacher) beside the student")
        return guided_denoise(self.teacher, x, sigma, self._tags(x.shape[0]), self.w)


class BaseModelSurrogate(Surrogate):
    """DITTO baseline: backpropagate through the base model's T-step guided sampler."""

    def __init__(self, denoiser: nn.Module, tags: torch.Tensor, w: float = 2.0, steps: int = 20,
                 sampler: str = "euler", checkpoint: bool = True):
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
        self.denoiser = denoiser.requires_grad_(False)
        self.register_buffer("tags", tags, persistent=False)
        self.w, self.steps, self.checkpoint = w, steps, checkpoint
        self.sampler = sampler
        self.sigma_max = denoiser.sigma_max
        self.register_buffer("sigmas", base_sigmas(steps, denoiser.sigma_min, denoiser.sigma_max), persistent=False)

    def _run(self, z, checkpoint: bool):
        return sample_guided(self.denoiser, z, self._tags(z.shape[0]), self.w, self.sigmas, self.sampler, checkpoint)

    def optimize_forward(self, z, m=None):
        return self._run(z, self.checkpoint)

    @torch.no_grad()
    def decode(self, z):
        return self._run(z, False)

    def teacher_denoise(self, x, sigma):
        return guided_denoise(self.denoiser, x, sigma, self._tags(x.shape[0]), self.w)
