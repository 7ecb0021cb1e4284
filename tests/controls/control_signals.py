"""Signals with known answers for the control tests (tiny preset); imported by tests and conftest."""
from __future__ import annotations

import math

import numpy as np
import torch

from ditto2.audio.mel import LogMel, MelNormalizer, mel_preset

CFG = mel_preset("tiny")
NORM = MelNormalizer(mean=-4.0, std=3.0)
RAMP_START_DB, RAMP_DELTA_DB = -30.0, 12.0


def to_mel(wave: np.ndarray) -> torch.Tensor:
    """Normalized (1, 1, n_mels, frames) mel of a clip."""
    x = torch.from_numpy(np.asarray(wave, dtype=np.float32)[: CFG.clip_samples])[None]
    return NORM.normalize(LogMel(CFG).clip(x)).unsqueeze(1)


def frame_times() -> np.ndarray:
    return np.arange(CFG.frames) * CFG.hop_length / CFG.sample_rate


def ramp_tone():
    """Harmonic tone (220 Hz, 6 partials) whose RMS rises linearly in dB by RAMP_DELTA_DB.
    Returns the wave and the exact level at each mel frame."""
    t = np.arange(CFG.clip_samples) / CFG.sample_rate
    tone = sum(np.sin(2 * math.pi * 220 * k * t + k) / k for k in range(1, 7))
    tone /= np.sqrt(np.mean(tone ** 2))
    level = RAMP_START_DB + RAMP_DELTA_DB * t / t[-1]
    return (tone * 10 ** (level / 20)).astype(np.float32), np.interp(frame_times(), t, level)


def aba_signal():
    """Three equal sections: A = bright harmonic tone at 660 Hz, B = low-passed noise + 110 Hz hum."""
    sr, n = CFG.sample_rate, CFG.clip_samples
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    a = sum(np.sin(2 * math.pi * 660 * k * t) * 0.8 ** k for k in range(1, 9))
    b = 3 * np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same") + 0.5 * np.sin(2 * math.pi * 110 * t)
    a, b = a / np.sqrt(np.mean(a ** 2)), b / np.sqrt(np.mean(b ** 2))
    section = np.minimum(np.arange(n) * 3 // n, 2)
    return (0.1 * np.where(section == 1, b, a)).astype(np.float32)
