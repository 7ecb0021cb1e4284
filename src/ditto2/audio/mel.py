"""The mel representation: a frozen config per preset and a differentiable log-mel transform."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import librosa
import torch
from torch import nn


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    frames: int
    f_min: float = 0.0
    f_max: Optional[float] = None
    log_floor: float = 1e-5  # log(max(mel, floor)); sets the spectrogram's silence level

    @property
    def clip_samples(self) -> int:
        # A centered STFT of frames*hop samples gives frames+1 frames; the last is dropped.
        return self.frames * self.hop_length

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.sample_rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MelConfig":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def check_matches(self, other: "MelConfig", what: str = "data") -> None:
        """Raise MelConfigMismatchError naming every field that differs."""
        diffs = [
            f"{f.name}: expected {getattr(self, f.name)!r}, {what} has {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]
        if diffs:
            raise MelConfigMismatchError(f"mel config mismatch with {what}: " + "; ".join(diffs))


class MelConfigMismatchError(ValueError):
    pass


MEL_PRESETS = {
    # DITTO's setting: 160 mels, 512 frames of hop 256 at 22.05 kHz (≈5.94 s)
    "paper": MelConfig(sample_rate=22050, n_fft=2048, hop_length=256, n_mels=160, frames=512),
    # same duration at a quarter of the pixels, so the whole pipeline runs on 2 CPU cores
    "tiny": MelConfig(sample_rate=22050, n_fft=1024, hop_length=512, n_mels=64, frames=256),
}


def mel_preset(name: str) -> MelConfig:
    try:
        return MEL_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown mel preset {name!r}; choose one of {sorted(MEL_PRESETS)}") from None


class LogMel(nn.Module):
    """waveform (B, T) -> log-magnitude mel (B, n_mels, frames'), differentiable.

    Magnitude (not power) STFT, Slaney mel filters, natural log with a floor. Normalization with
    dataset statistics is separate (``MelNormalizer``) so raw log-mels can be pooled for statistics.
    """

    def __init__(self, cfg: MelConfig):
        super().__init__()
        self.cfg = cfg
        fb = librosa.filters.mel(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max
        )
        self.register_buffer("filters", torch.from_numpy(fb).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave, self.cfg.n_fft, self.cfg.hop_length, window=self.window, center=True,
            pad_mode="reflect", return_complex=True,
        )
        return spec.abs()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.filters, self.magnitude(wave))
        return torch.log(torch.clamp(mel, min=self.cfg.log_floor))

    def clip(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel of clips of exactly cfg.clip_samples samples -> exactly cfg.frames frames."""
        return self(wave)[..., : self.cfg.frames]

    def grid(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel of audio of any length on the mel grid: ``T // hop_length`` frames (at least 1); the centered
        STFT has one frame more, dropped as in ``clip``."""
        return self(wave)[..., : max(1, wave.shape[-1] // self.cfg.hop_length)]


@dataclass(frozen=True)
class MelNormalizer:
    """normalized = (logmel − mean) / std · target_std; target_std matches EDM's σ_data (0.5)."""

    mean: float
    std: float
    target_std: float = 0.5

    def normalize(self, logmel):
        return (logmel - self.mean) / self.std * self.target_std

    def denormalize(self, x):
        return x / self.target_std * self.std + self.mean

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MelNormalizer":
        return cls(float(d["mean"]), float(d["std"]), float(d.get("target_std", 0.5)))

    def matches(self, other: "MelNormalizer", rtol: float = 1e-6) -> bool:
        """The same statistics up to float summation order: the same audio measured on another machine gives a
        mean and std that differ in the 8th digit, which changes no normalized value that matters."""
        return all(math.isclose(a, b, rel_tol=rtol, abs_tol=rtol) for a, b in
                   ((self.mean, other.mean), (self.std, other.std), (self.target_std, other.target_std)))


class NormalizedLogMel(nn.Module):
    """waveform (B, T) at ``cfg.sample_rate`` -> normalized log-mel (B, n_mels, T // hop_length): the front end of
    a model trained on the shards' mels (the in-domain CLAP, the tagger) hearing audio."""

    def __init__(self, cfg: MelConfig, normalizer: MelNormalizer):
        super().__init__()
        self.logmel, self.normalizer = LogMel(cfg), normalizer

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.normalizer.normalize(self.logmel.grid(wave))
