"""Melody control: high-passed chromagram -> log-softmax over 12 pitch classes; NLL per frame."""
from __future__ import annotations

from typing import Optional

import librosa
import torch

from ditto2.controls.base import Control, ControlTargetError, MelContext, batch_target

NO_MELODY = -1
HIGHPASS_HZ = 261.0  # ≈ C4: bass and pads live below, the melody above (DITTO / Music ControlNet)
POWER_FLOOR = 1e-10


class MelodyControl(Control):
    """features (B, 12, T) = log_softmax(log(C·|X|²) / temperature) over pitch classes (0 = C).

    C is librosa's chroma filterbank with every linear-frequency bin below ``highpass_hz`` zeroed.
    With temperature 1 the distribution is each pitch class's share of the frame's high-passed
    chroma energy, i.e. DITTO's log(chroma) made a proper log-probability; lower temperatures
    sharpen it (a stronger push toward one class), higher ones soften it.
    |X| is the NNLS magnitude (mel domain) or the STFT of the Griffin-Lim waveform (audio domain).
    """

    name = "melody"

    def __init__(self, ctx: MelContext, domain: str = "mel", temperature: float = 1.0,
                 highpass_hz: float = HIGHPASS_HZ):
        super().__init__(ctx, domain)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        cfg = ctx.cfg
        fb = librosa.filters.chroma(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_chroma=12)
        fb[:, librosa.fft_frequencies(sr=cfg.sample_rate, n_fft=cfg.n_fft) < highpass_hz] = 0.0
        self.register_buffer("chroma_fb", torch.from_numpy(fb).float(), persistent=False)
        self.temperature = temperature

    def chroma(self, mel: torch.Tensor) -> torch.Tensor:
        """High-passed chroma energy (B, 12, T), unnormalized."""
        if self.domain == "mel":
            mag = self.ctx.linear_magnitude(mel)
        else:
            mag = self.ctx.stft_magnitude(self.ctx.waveform(mel))
        return torch.matmul(self.chroma_fb.to(mag), mag.pow(2))

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(torch.log(self.chroma(mel) + POWER_FLOOR) / self.temperature, dim=1)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(features.device).expand(features.shape[0], -1)
        voiced = target >= 0
        nll = -features.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
        return (nll * voiced).sum(-1) / voiced.sum(-1).clamp(min=1)

    def check_target(self, target, batch_size: Optional[int] = None) -> torch.Tensor:
        t = torch.as_tensor(target)
        if t.is_floating_point():
            if not torch.isfinite(t).all():
                raise ControlTargetError("melody target has NaN/inf values; use -1 for frames without melody")
            if (t != t.round()).any():
                raise ControlTargetError("melody target must hold integer pitch classes -1..11")
        elif t.dtype == torch.bool or t.is_complex():
            raise ControlTargetError(f"melody target must be integer pitch classes, got dtype {t.dtype}")
        t = batch_target(t.long(), (self.n_frames,), batch_size, self.name)
        if t.min() < NO_MELODY or t.max() > 11:
            raise ControlTargetError(
                f"melody pitch classes must lie in -1..11 (-1 = no melody), got [{int(t.min())}, {int(t.max())}]")
        if ((t >= 0).sum(-1) == 0).any():
            raise ControlTargetError("melody target has an item with no voiced frame (all -1)")
        return t

    def target_from_reference(self, mel: torch.Tensor, silence_db: float = 40.0) -> torch.Tensor:
        """Chroma argmax per frame; frames whose high-passed energy is more than ``silence_db``
        below the clip's loudest frame get -1, so rests are not forced to a pitch."""
        with torch.no_grad():
            chroma = self.chroma(mel)
            energy_db = 10 * torch.log10(chroma.sum(1) + POWER_FLOOR)
            quiet = energy_db < energy_db.amax(-1, keepdim=True) - silence_db
            return torch.where(quiet, torch.full_like(energy_db, NO_MELODY, dtype=torch.long),
                               chroma.argmax(1))
