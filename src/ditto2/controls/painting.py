"""Outpainting / inpainting: MSE on a masked region of the (normalized) mel against a reference clip.

The paper's f(x0) = M_gen ⊙ x0 vs y = M_ref ⊙ x_ref: the two masks select the same number of frames
at different places (outpainting) or the same places (inpainting). Targets store y already moved
to the generated clip's grid, so the loss only needs the generated mask.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch

from ditto2.audio.mel import MelConfig
from ditto2.controls.base import Control, ControlTargetError, MelContext, TargetSet, as_float_target, batch_target
from ditto2.metrics import control as grader


class PaintingTarget(NamedTuple):
    values: torch.Tensor  # (B or 1, n_mels, T) reference mel placed on the generated clip's grid
    mask: torch.Tensor  # (T,) bool: frames of the generated clip that must match ``values``


def _reference(reference_mel: torch.Tensor) -> torch.Tensor:
    ref = torch.as_tensor(reference_mel).float()
    return ref.squeeze(-3) if ref.dim() == 4 else ref  # (B, 1, M, T) -> (B, M, T)


def seconds_to_frames(seconds: float, cfg: MelConfig) -> int:
    return int(round(seconds * cfg.sample_rate / cfg.hop_length))


def outpainting(reference_mel: torch.Tensor, overlap_s: float = 1.0, *, cfg: MelConfig) -> PaintingTarget:
    """Continuation: the generated clip's first ``overlap_s`` = the reference's last ``overlap_s``."""
    ref, overlap_frames = _reference(reference_mel), seconds_to_frames(overlap_s, cfg)
    n = ref.shape[-1]
    if not 0 < overlap_frames < n:
        raise ControlTargetError(f"overlap of {overlap_frames} frames does not fit a {n}-frame clip")
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:overlap_frames] = True
    values = torch.zeros_like(ref)
    values[..., :overlap_frames] = ref[..., n - overlap_frames:]
    return PaintingTarget(values, mask)


def inpainting(reference_mel: torch.Tensor, context_s: float = 1.0, *, cfg: MelConfig) -> PaintingTarget:
    """Infill: the first and last ``context_s`` = the reference's; the gap between is free."""
    ref, context_frames = _reference(reference_mel), seconds_to_frames(context_s, cfg)
    n = ref.shape[-1]
    if not 0 < 2 * context_frames < n:
        raise ControlTargetError(f"two contexts of {context_frames} frames leave no gap in a {n}-frame clip")
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:context_frames] = mask[n - context_frames:] = True
    return PaintingTarget(torch.where(mask, ref, torch.zeros_like(ref)), mask)


class PaintingControl(Control):
    """features = the normalized mel (B, n_mels, T); loss = mean squared error over masked frames.

    Mel domain only: the constraint is on the model's own output, and the region is matched exactly
    (no vocoder in between). ``overlap_s`` is the matched length at each masked end (1 s in the paper).
    """

    name = "painting"
    domains = ("mel",)
    metric = "masked_mel_mse"
    writes_reference_audio = True

    @classmethod
    def uses_references(cls, source=None) -> bool:
        return True  # the context to continue or fill is a real clip

    def __init__(self, ctx: MelContext, domain: str = "mel", overlap_s: float = 1.0):
        super().__init__(ctx, domain)
        self.overlap_s = overlap_s
        self.overlap_frames = seconds_to_frames(overlap_s, ctx.cfg)

    def build_target(self, reference_mel: torch.Tensor) -> PaintingTarget:
        raise NotImplementedError

    def target_from_reference(self, mel: torch.Tensor) -> PaintingTarget:
        return self.build_target(mel.detach())

    def stitch(self, reference_mel: torch.Tensor, generated_mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        return mel.squeeze(1) if mel.dim() == 4 else mel

    def loss(self, features: torch.Tensor, target: PaintingTarget) -> torch.Tensor:
        values, mask = target.values.to(features), target.mask.to(features.device)
        err = (features - values).pow(2)[..., mask]
        return err.mean(dim=(-2, -1))

    def check_target(self, target, batch_size: Optional[int] = None) -> PaintingTarget:
        if not isinstance(target, PaintingTarget):
            raise ControlTargetError(f"{self.name} target must be a PaintingTarget(values, mask), "
                                     f"built by outpainting() / inpainting(); got {type(target).__name__}")
        cfg = self.ctx.cfg
        values = batch_target(as_float_target(_reference(target.values), self.name),
                              (cfg.n_mels, cfg.frames), batch_size, self.name)
        mask = torch.as_tensor(target.mask)
        if mask.dtype != torch.bool or tuple(mask.shape) != (cfg.frames,):
            raise ControlTargetError(f"{self.name} mask must be a bool tensor of shape ({cfg.frames},), "
                                     f"got {mask.dtype} {tuple(mask.shape)}")
        if not mask.any():
            raise ControlTargetError(f"{self.name} mask selects no frame")
        return PaintingTarget(values, mask)

    def targets(self, n, seed, references=None, source="reference", clips=None, path=None,
                offset: float = 0.0) -> TargetSet:
        """The masked region of each held-out reference clip, or of your own recording (``path``): the model
        window from ``offset`` seconds is the reference (outpainting continues from its last ``overlap_s``,
        inpainting keeps its first and last ``overlap_s``)."""
        if path is not None:
            from ditto2.controls.sources import read_audio_window

            _, mel = read_audio_window(path, self.ctx, offset)
            ts = self.targets(n, seed, mel.expand(n, -1, -1, -1))
            ts.descriptions = [f"{self.name} of {Path(path).name} from {offset:g} s"] * n
            ts.extra.update({"source": "audio", "path": path, "offset": offset})
            return ts
        if references is None:
            raise ControlTargetError(f"{self.name} needs reference clips (held-out shards)")
        if source != "reference":
            raise ValueError(f"{self.name} target source must be 'reference', got {source!r}")
        t = self.build_target(references)
        return TargetSet(t, [(v.numpy(), t.mask.numpy()) for v in t.values],
                         [f"{self.name} of held-out clip {i}" for i in range(n)], references)

    def grade(self, wave, sample_rate, metric_target) -> float:
        values, mask = metric_target
        cfg, norm = self.ctx.cfg, self.ctx.normalizer
        return grader.painting_mse(wave, sample_rate, values, mask, cfg.n_fft, cfg.hop_length, cfg.n_mels,
                                   cfg.log_floor, norm.mean, norm.std, norm.target_std)

    def plot(self, target, achieved, mel, reference, title):
        from ditto2.viz import finish, plt, show_mel

        values, mask = target
        fig, axes = plt.subplots(1, 2, figsize=(8, 2.6))
        show_mel(axes[0], reference, "reference clip")
        show_mel(axes[1], mel, "generated (cyan: matched region)")
        cols = np.flatnonzero(mask)
        for c in (cols.min(), cols.max()):
            axes[1].axvline(c, color="cyan", lw=0.8)
        return finish(fig, title)


class OutpaintingControl(PaintingControl):
    name = "outpainting"

    def build_target(self, reference_mel: torch.Tensor) -> PaintingTarget:
        return outpainting(reference_mel, self.overlap_s, cfg=self.ctx.cfg)

    def stitch(self, reference_mel: torch.Tensor, generated_mel: torch.Tensor) -> torch.Tensor:
        """Reference followed by the generated continuation (its overlap dropped): T_ref + T − overlap."""
        return torch.cat([reference_mel, generated_mel[..., self.overlap_frames:]], dim=-1)


class InpaintingControl(PaintingControl):
    name = "inpainting"

    def build_target(self, reference_mel: torch.Tensor) -> PaintingTarget:
        return inpainting(reference_mel, self.overlap_s, cfg=self.ctx.cfg)

    def stitch(self, reference_mel: torch.Tensor, generated_mel: torch.Tensor) -> torch.Tensor:
        """Reference context at both ends, generated gap in between."""
        mask = torch.zeros(reference_mel.shape[-1], dtype=torch.bool, device=reference_mel.device)
        mask[: self.overlap_frames] = mask[-self.overlap_frames:] = True
        return torch.where(mask, reference_mel, generated_mel)
