"""Mel -> waveform. ``Vocoder`` is the interface; ``GriffinLimVocoder`` is the differentiable default."""
from __future__ import annotations

import torch
from torch import nn

from ditto2.audio.mel import LogMel, MelConfig, MelNormalizer


class Vocoder(nn.Module):
    """Maps normalized mels (B, 1, n_mels, frames) or (B, n_mels, frames) to waveforms (B, samples).

    Subclasses implement ``from_logmel`` on raw (un-normalized) log-mels; a trained neural vocoder
    plugs in by implementing the same method.
    """

    def __init__(self, cfg: MelConfig, normalizer: MelNormalizer):
        super().__init__()
        self.cfg = cfg
        self.normalizer = normalizer

    def from_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() == 4:
            mel = mel.squeeze(1)
        return self.from_logmel(self.normalizer.denormalize(mel))


class GriffinLimVocoder(Vocoder):
    """Pseudo-inverse of the mel filterbank, then fast Griffin-Lim (Perraudin et al. 2013).

    Every step is a torch op, so gradients flow from the waveform back to the mel. Phase starts
    at zero, so the output is deterministic.
    """

    def __init__(
        self, cfg: MelConfig, normalizer: MelNormalizer, n_iter: int = 32, momentum: float = 0.99,
        nnls_iter: int = 30,
    ):
        super().__init__(cfg, normalizer)
        self.n_iter = n_iter
        self.nnls_iter = nnls_iter
        self.momentum = momentum
        self.logmel = LogMel(cfg)
        self.register_buffer("inv_filters", torch.linalg.pinv(self.logmel.filters), persistent=False)

    def linear_magnitude(self, logmel: torch.Tensor) -> torch.Tensor:
        """Non-negative least squares for |S| given mel = F|S|: pinv start, multiplicative updates.

        The pinv alone leaves ≈10% mel error on a pure tone; 30 updates bring it to ≈2%.
        """
        fb = self.logmel.filters
        mel = torch.exp(logmel)
        mag = torch.clamp(torch.matmul(self.inv_filters, mel), min=0.0) + 1e-6
        numerator = torch.matmul(fb.T, mel)
        for _ in range(self.nnls_iter):
            # the floor keeps values out of float denormals, which are ~100x slower on CPU
            mag = torch.clamp(mag * numerator / (torch.matmul(fb.T, torch.matmul(fb, mag)) + 1e-10), min=1e-8)
        return mag

    def from_logmel(self, logmel: torch.Tensor) -> torch.Tensor:
        mag = self.linear_magnitude(logmel)
        # one extra frame: the mel dropped the centered STFT's last frame (MelConfig.clip_samples)
        mag = torch.cat([mag, mag[..., -1:]], dim=-1)
        length = (mag.shape[-1] - 1) * self.cfg.hop_length
        n_fft, hop, window = self.cfg.n_fft, self.cfg.hop_length, self.logmel.window
        angles = torch.ones_like(mag, dtype=torch.complex64)
        prev = torch.zeros_like(angles)
        alpha = self.momentum / (1 + self.momentum)
        for _ in range(self.n_iter):
            wave = torch.istft(mag * angles, n_fft, hop, window=window, length=length)
            rebuilt = torch.stft(wave, n_fft, hop, window=window, return_complex=True)
            angles = rebuilt - alpha * prev
            angles = angles / (angles.abs() + 1e-8)
            prev = rebuilt
        return torch.istft(mag * angles, n_fft, hop, window=window, length=length)


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor, logmel: LogMel) -> float:
    """‖|S_ref| − |S_est|‖_F / ‖|S_ref|‖_F on the linear STFT magnitude (lower is better)."""
    n = min(reference.shape[-1], estimate.shape[-1])
    ref, est = logmel.magnitude(reference[..., :n]), logmel.magnitude(estimate[..., :n])
    return float(torch.linalg.norm(ref - est) / torch.linalg.norm(ref))
