"""Intensity control: f = w ∗ 20·log10(frame RMS), w a ≈1 s Savitzky–Golay smoother; L = MSE in dB²."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import savgol_coeffs

from ditto2.controls.base import Control, ControlTargetError, MelContext, TargetSet, as_float_target, batch_target
from ditto2.controls.shapes import intensity_curve
from ditto2.metrics import control as grader

DB_RANGE = (-120.0, 20.0)  # digital audio lives below 0 dBFS; the -100 dB floor sits well inside
POWER_FLOOR = 1e-10  # -100 dB: silence stays finite and differentiable
# DITTO's intensity benchmark: linear / tanh / cosine curves, rising or falling by 6-15 dB
INTENSITY_CURVES = [(k, d, delta) for delta in (6, 9, 12, 15) for k in ("linear", "tanh", "cosine")
                    for d in ("rising", "falling")]

_KERNELS: dict = {}


def _savgol_kernels(window: int, polyorder: int, device, dtype):
    key = (window, polyorder, str(device), dtype)
    if key not in _KERNELS:
        half = window // 2
        # use="dot": coefficients that dot with the window in time order (conv1d is a correlation).
        # pos=i evaluates the fitted polynomial at offset i, which is scipy's mode="interp" edge rule.
        mk = lambda pos: torch.as_tensor(savgol_coeffs(window, polyorder, pos=pos, use="dot"), dtype=dtype)
        _KERNELS[key] = (
            mk(None).to(device).view(1, 1, window),
            torch.stack([mk(i) for i in range(half)]).to(device),
            torch.stack([mk(half + 1 + i) for i in range(half)]).to(device),
        )
    return _KERNELS[key]


def savgol_smooth(x: torch.Tensor, window: int, polyorder: int) -> torch.Tensor:
    """scipy.signal.savgol_filter(x, window, polyorder, mode="interp") along the last axis, in torch.

    The window shrinks to the largest odd length <= T for short inputs (scipy would refuse)."""
    n = x.shape[-1]
    window = min(window, n if n % 2 else n - 1)
    if window <= polyorder:
        return x
    interior, head, tail = _savgol_kernels(window, polyorder, x.device, x.dtype)
    flat = x.reshape(-1, 1, n)
    mid = F.conv1d(flat, interior).squeeze(1)
    start = flat[:, 0, :window] @ head.T
    end = flat[:, 0, -window:] @ tail.T
    return torch.cat([start, mid, end], dim=-1).reshape(x.shape)


def savgol_window(frames_per_second: float, seconds: float = 1.0) -> int:
    return int(round(frames_per_second * seconds)) | 1  # odd, so the smoother is centered


class IntensityControl(Control):
    """Smoothed frame level in dB (full scale = 1.0 amplitude).

    mel domain: Parseval on the NNLS linear magnitude. For a frame x·w (Hann w, N = n_fft),
    Σ_n (x w)² = (1/N) Σ_k |X_k|² over the full spectrum; with the one-sided STFT that is
    |X_0|² + |X_{N/2}|² + 2 Σ_rest |X_k|². Dividing by Σ_n w² (= 3N/8 for a periodic Hann)
    gives the mean square of the signal under the window, so both domains measure the same quantity.
    audio domain: the same Hann-weighted mean square, framed directly on the Griffin-Lim waveform
    (centered frames, reflect padding, hop = mel hop, exactly the STFT's framing).
    """

    name = "intensity"
    metric = "mse_db2"

    @classmethod
    def uses_references(cls, source=None) -> bool:
        return True  # built-in curves start at a held-out clip's level when there is one

    def __init__(self, ctx: MelContext, domain: str = "mel", window_s: float = 1.0, polyorder: int = 1):
        super().__init__(ctx, domain)
        # polyorder 1: the interior is a ≈1 s moving average (beats and notes are smoothed away),
        # edges fit a line, so ramps (the DITTO targets) pass unbiased up to the clip ends.
        self.window = savgol_window(ctx.frames_per_second, window_s)
        self.polyorder = polyorder

    def level_db(self, mel: torch.Tensor) -> torch.Tensor:
        """Unsmoothed 20·log10(RMS) per frame, (B, T)."""
        cfg = self.ctx.cfg
        window = self.ctx.logmel_module(mel.device).window
        if self.domain == "mel":
            power = self.ctx.linear_magnitude(mel).pow(2)
            full = 2 * power.sum(1) - power[:, 0] - power[:, -1]  # one-sided -> full spectrum
            mean_square = full / (cfg.n_fft * window.pow(2).sum())
        else:
            wave = self.ctx.waveform(mel)
            pad = cfg.n_fft // 2
            framed = F.pad(wave.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
            framed = framed.unfold(-1, cfg.n_fft, cfg.hop_length)[:, : mel.shape[-1]]
            mean_square = (framed * window).pow(2).sum(-1) / window.pow(2).sum()
        return 10 * torch.log10(mean_square + POWER_FLOOR)

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        return savgol_smooth(self.level_db(mel), self.window, self.polyorder)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (features - target.to(features)).pow(2).mean(-1)

    def check_target(self, target, batch_size: Optional[int] = None) -> torch.Tensor:
        t = batch_target(as_float_target(target, self.name), (self.n_frames,), batch_size, self.name)
        lo, hi = DB_RANGE
        if t.min() < lo or t.max() > hi:
            raise ControlTargetError(
                f"intensity target must lie in [{lo}, {hi}] dB, got [{float(t.min()):.1f}, {float(t.max()):.1f}]")
        return t

    def targets(self, n, seed, references=None, source="curve", clips=None, base_db: float = -25.0,
                path=None, values=None, offset: float = 0.0, resample: bool = False, track=None) -> TargetSet:
        """Hand-built DITTO curves (linear/tanh/cosine, rising/falling by 6-15 dB), each centred on the level of
        a held-out clip when references are given (else ``base_db``). ``source="reference"``: the clip's own curve.
        Your own: ``path`` (an audio file: its loudness curve; a MIDI file: its velocities, around ``base_db``;
        .npy/.csv/.txt: dB per frame) or inline ``values`` (dB per frame)."""
        if path is not None or values is not None:
            from ditto2.controls.sources import file_kind

            options = {"track": track} if track is not None else {}
            if path is not None and file_kind(path) == "midi":
                options["base_db"] = base_db  # the level the velocities are placed around
            return self.user_targets(n, path, values, offset, resample, **options)
        if source == "reference":
            return self.reference_targets(n, references)
        if source != "curve":
            raise ValueError(f"intensity target source must be 'curve' or 'reference', got {source!r}")
        levels = self.features(references).mean(-1).tolist() if references is not None else [base_db] * n
        rng = np.random.default_rng(seed)
        picks = [INTENSITY_CURVES[i] for i in rng.permutation(len(INTENSITY_CURVES))[:n]]
        picks += [INTENSITY_CURVES[i % len(INTENSITY_CURVES)] for i in range(n - len(picks))]
        curves = []
        for (kind, direction, delta), level in zip(picks, levels):
            start = level - delta / 2 if direction == "rising" else level + delta / 2
            curves.append(intensity_curve(kind, direction, float(delta), float(start), self.n_frames))
        t = torch.stack(curves)
        return TargetSet(t, list(t.numpy()), [f"{k} {d} {delta} dB" for k, d, delta in picks], references)

    def target_from_values(self, values, resample=False) -> torch.Tensor:
        from ditto2.controls.sources import read_values

        return read_values(values, self.n_frames, "intensity (dB)", *DB_RANGE, resample=resample)

    def target_from_midi(self, path, offset=0.0, track=None, base_db: float = -25.0) -> torch.Tensor:
        """Note velocities as a level curve around ``base_db``, smoothed like the control's own features."""
        from ditto2.controls.sources import midi_velocity_db

        cfg = self.ctx.cfg
        db = midi_velocity_db(path, self.n_frames, cfg.sample_rate, cfg.hop_length, offset, track, base_db)
        return savgol_smooth(db[None], self.window, self.polyorder)[0]

    def grade(self, wave, sample_rate, metric_target) -> float:
        return grader.intensity_mse(wave, sample_rate, metric_target, self.ctx.cfg.hop_length)

    def achieved(self, wave, sample_rate):
        return grader.intensity_db(wave, sample_rate, self.ctx.cfg.hop_length, self.n_frames)

    def plot(self, target, achieved, mel, reference, title):
        from ditto2.viz import series_figure

        return series_figure(target, achieved, "target", "achieved (librosa RMS dB)", "dB", title)
