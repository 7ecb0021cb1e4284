"""Audio/text embedders behind one interface: FAD, CLAP score and the text control all read them.

``embed_audio`` and ``embed_text`` return L2-normalized (B, D) rows; ``embed_audio`` is
differentiable w.r.t. the waveform (the text control backpropagates through it). Two backends:
``LaionClapEmbedder`` (transformers' ClapModel from a local checkpoint directory) and
``InDomainClapEmbedder`` (the CLAP this project trains on its shards, see ``ditto2.clap.indomain``).
Embedders are frozen: their weights never train and they stay in eval mode.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ditto2.audio.mel import MelConfig, MelNormalizer, NormalizedLogMel

# ---------------------------------------------------------------- resampling

_KERNELS: dict = {}


def _sinc_kernel(orig: int, new: int, zeros: int, rolloff: float, dtype, device) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc filters: row p computes output phase p of every block of ``new`` outputs
    from ``orig + 2·pad + 1`` consecutive inputs. Output j sits at input time j·orig/new."""
    key = (orig, new, zeros, rolloff, dtype, str(device))
    if key not in _KERNELS:
        fc = 0.5 * rolloff * min(1.0, new / orig)  # cutoff, cycles per input sample (anti-alias when down)
        half = zeros / (2 * fc)  # window half-width in input samples: ``zeros`` sinc zero crossings
        pad = math.ceil(half)
        phase = torch.arange(new, dtype=torch.float64).unsqueeze(1) * orig / new
        t = phase - (torch.arange(orig + 2 * pad + 1, dtype=torch.float64) - pad)  # τ − k for every tap
        beta = 8.6  # Kaiser window: ≈ -90 dB side lobes
        win = torch.special.i0(beta * torch.sqrt(torch.clamp(1 - (t / half) ** 2, min=0))) / torch.special.i0(
            torch.tensor(beta, dtype=torch.float64))
        h = 2 * fc * torch.sinc(2 * fc * t) * torch.where(t.abs() <= half, win, torch.zeros_like(win))
        _KERNELS[key] = (h.to(dtype=dtype, device=device).unsqueeze(1), pad)
    return _KERNELS[key]


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int, zeros: int = 16, rolloff: float = 0.945) -> torch.Tensor:
    """(..., T) -> (..., ceil(T·new/orig)), band-limited and differentiable (one strided conv1d).

    Edges are zero-padded; the first output sample is aligned with the first input sample."""
    if orig_sr == new_sr:
        return wave
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    kernel, pad = _sinc_kernel(orig, new, zeros, rolloff, wave.dtype, wave.device)
    shape, n = wave.shape[:-1], wave.shape[-1]
    n_out = math.ceil(n * new / orig)
    blocks = math.ceil(n_out / new)
    x = wave.reshape(-1, 1, n)
    x = F.pad(x, (pad, (blocks - 1) * orig + kernel.shape[-1] - pad - n))
    y = F.conv1d(x, kernel, stride=orig)  # (N, new phases, blocks)
    return y.transpose(1, 2).reshape(*shape, blocks * new)[..., :n_out]


# ---------------------------------------------------------------- interface


class AudioTextEmbedder(nn.Module):
    """Frozen joint audio/text embedding. Subclasses set ``sample_rate`` (what ``embed_audio``
    resamples to) and ``dim``; ``supports_mel`` says whether ``embed_mel`` (our normalized mels) works."""

    sample_rate: int
    dim: int
    supports_mel = False

    def embed_audio(self, wave: torch.Tensor, sr: int) -> torch.Tensor:
        raise NotImplementedError

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mel fast path; use embed_audio")

    def train(self, mode: bool = True):
        # a frozen feature extractor: BatchNorm/dropout must not switch when a parent module trains
        return super().train(False)

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()


class InDomainClapEmbedder(AudioTextEmbedder):
    """The project's CLAP (``ditto2.clap.indomain.InDomainClap``) with the mel front end it was trained on.
    Freezes the model it wraps (wrap a copy to keep training one)."""

    supports_mel = True

    def __init__(self, model: nn.Module, mel_config: MelConfig, normalizer: MelNormalizer):
        super().__init__()
        self.model, self.mel_config, self.normalizer = model, mel_config, normalizer
        self.to_mel = NormalizedLogMel(mel_config, normalizer)
        self.sample_rate, self.dim = mel_config.sample_rate, model.cfg.embed_dim
        self._freeze()

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalized mel (B, 1, n_mels, frames) or (B, n_mels, frames), any number of frames."""
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        if mel.dim() != 4 or mel.shape[1] != 1 or mel.shape[2] != self.mel_config.n_mels:
            raise ValueError(f"expected mels (B, 1, {self.mel_config.n_mels}, frames), got {tuple(mel.shape)}")
        return self.model.embed_mel(mel)

    def embed_audio(self, wave: torch.Tensor, sr: int) -> torch.Tensor:
        return self.embed_mel(self.to_mel(resample(wave, sr, self.sample_rate)))

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.embed_text(list(texts))


class LaionClapEmbedder(AudioTextEmbedder):
    """``transformers.ClapModel`` + its processor from a local directory (never a hub id), with the
    feature extractor's numpy mel front end rewritten in torch so gradients reach the waveform.

    Mirrors ClapFeatureExtractor: periodic Hann, centered reflect-padded STFT, power spectrum,
    ``mel_filters`` (htk, for "fusion") or ``mel_filters_slaney`` (otherwise), floor 1e-10, 10·log10.
    Its random choices are made deterministic so a generation is always graded the same way:
    - longer than ``max_length_s``, unfused ("rand_trunc"): the CENTER crop of max length;
    - longer, "fusion": the downsampled whole mel + crops at the middle of the front / middle / back
      thirds of the possible offsets (HF draws them at random, and shrinks to a hard-coded 64 mels);
    - shorter: the extractor's ``padding`` mode ("repeatpad" / "repeat" / "pad"), as HF does; with
      fusion no clip is flagged ``is_longer`` (HF flags a random one when none is).
    """

    def __init__(self, local_dir: str | Path):
        super().__init__()
        path = Path(local_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no CLAP checkpoint at {path} (expected config.json from ClapModel.save_pretrained); "
                "download one (e.g. laion/clap-htsat-unfused) to a local folder and pass that folder")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import ClapModel, ClapProcessor

        self.model = ClapModel.from_pretrained(str(path), local_files_only=True)
        processor = ClapProcessor.from_pretrained(str(path), local_files_only=True)
        self.tokenizer, fe = processor.tokenizer, processor.feature_extractor
        self.sample_rate, self.dim = int(fe.sampling_rate), int(self.model.config.projection_dim)
        self.n_fft, self.hop, self.max_samples = int(fe.fft_window_size), int(fe.hop_length), int(fe.nb_max_samples)
        self.truncation, self.padding = fe.truncation, fe.padding
        filters = fe.mel_filters if self.truncation == "fusion" else fe.mel_filters_slaney
        self.register_buffer("filters", torch.as_tensor(filters, dtype=torch.float32).T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        self._freeze()

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) at the model rate -> dB power mel (B, frames, n_mels), as the extractor computes it."""
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window.to(wave), center=True,
                          pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # |z|² without abs(): finite gradient at 0
        mel = torch.clamp(self.filters.to(wave) @ power, min=1e-10)
        return (10.0 * torch.log10(mel)).transpose(1, 2)

    def input_features(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) at the model rate -> (input_features (B, 1|4, frames, n_mels), is_longer (B, 1))."""
        n, max_n = wave.shape[-1], self.max_samples
        longer = torch.zeros(wave.shape[0], 1, dtype=torch.bool, device=wave.device)
        if n > max_n and self.truncation == "fusion":
            mel = self.log_mel(wave)
            chunk, total = max_n // self.hop + 1, mel.shape[1]
            if chunk == total:
                return mel.unsqueeze(1).expand(-1, 4, -1, -1), longer
            offsets = torch.arange(total - chunk + 1).tensor_split(3)
            starts = [int(o[len(o) // 2]) if len(o) else 0 for o in offsets]
            shrunk = F.interpolate(mel.unsqueeze(1), size=(chunk, mel.shape[-1]), mode="bilinear", align_corners=False)
            crops = [mel[:, s: s + chunk].unsqueeze(1) for s in starts]
            return torch.cat([shrunk, *crops], dim=1), ~longer
        if n > max_n:
            start = (n - max_n) // 2
            wave = wave[:, start: start + max_n]
        elif n < max_n:
            if self.padding == "repeat":
                wave = wave.repeat(1, max_n // n + 1)[:, :max_n]
            elif self.padding == "repeatpad":
                wave = wave.repeat(1, max_n // n)
            wave = F.pad(wave, (0, max_n - wave.shape[-1]))
        mel = self.log_mel(wave).unsqueeze(1)
        return (mel.expand(-1, 4, -1, -1) if self.truncation == "fusion" else mel), longer

    def embed_audio(self, wave: torch.Tensor, sr: int) -> torch.Tensor:
        feats, longer = self.input_features(resample(wave, sr, self.sample_rate))
        out = self.model.get_audio_features(input_features=feats, is_longer=longer)
        return F.normalize(out.pooler_output, dim=-1)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        device = self.filters.device
        tok = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        out = self.model.get_text_features(input_ids=tok["input_ids"].to(device),
                                           attention_mask=tok["attention_mask"].to(device))
        return F.normalize(out.pooler_output, dim=-1)
