"""Control adherence of DECODED AUDIO, measured with librosa / scipy reference extractors.

Nothing here shares code with ``ditto2.controls``: a generation is never graded by the function it
was optimized against (DESIGN decision 8). Inputs are a mono numpy waveform and its sample rate;
targets live on a frame grid of ``hop`` samples with centered frames (frame i at sample i·hop).
librosa's centered framing yields 1 + len(wave) // hop frames; ``fit_frames`` crops that to the
target's length, or, for audio shorter than the target, repeats the last frame (edge padding), so
a short output is graded on what it ends with rather than on invented silence.
"""
from __future__ import annotations

import librosa
import numpy as np
from scipy.signal import butter, savgol_filter, sosfiltfilt

MELODY_CUTOFF_HZ = 261.0


def _mono(wave) -> np.ndarray:
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim != 1:
        raise ValueError(f"expected a mono waveform (samples,), got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("waveform has NaN/inf samples")
    return w


def fit_frames(x: np.ndarray, n: int) -> np.ndarray:
    """Crop / edge-pad the last axis to exactly n frames."""
    if x.shape[-1] >= n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
    return np.pad(x, pad, mode="edge")


def intensity_db(wave, sr: int, hop: int, n_frames: int, frame_length: int = 2048,
                 window_s: float = 1.0, polyorder: int = 1) -> np.ndarray:
    """Savitzky–Golay-smoothed (≈window_s, mode="interp") 20·log10 RMS per frame, rectangular frames.

    Reflect padding at the clip edges (librosa's default zero padding would read the first and last
    frames ≈3 dB low, half their window being silence)."""
    rms = librosa.feature.rms(y=_mono(wave), frame_length=frame_length, hop_length=hop, center=True,
                              pad_mode="reflect")[0]
    db = fit_frames(20.0 * np.log10(np.maximum(rms, 1e-5)), n_frames)
    window = min(int(round(window_s * sr / hop)) | 1, n_frames if n_frames % 2 else n_frames - 1)
    return savgol_filter(db, window, polyorder, mode="interp") if window > polyorder else db


def intensity_mse(wave, sr: int, target_db, hop: int, frame_length: int = 2048) -> float:
    """Mean squared error (dB²) between the audio's smoothed level and ``target_db`` (n_frames,)."""
    target = np.asarray(target_db, dtype=np.float64)
    return float(np.mean((intensity_db(wave, sr, hop, len(target), frame_length) - target) ** 2))


def chroma_argmax(wave, sr: int, hop: int, n_frames: int, n_fft: int = 2048,
                  cutoff_hz: float = MELODY_CUTOFF_HZ) -> np.ndarray:
    """Per-frame argmax pitch class (0 = C) of the chromagram of the high-passed audio.

    Zero-phase 4th-order Butterworth high-pass (no frame delay); tuning fixed at A440, since the
    targets are A440 pitch classes and the optimized control uses an untuned filterbank too.
    """
    sos = butter(4, cutoff_hz, btype="highpass", fs=sr, output="sos")
    y = sosfiltfilt(sos, _mono(wave)).astype(np.float32)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop, tuning=0.0)
    return fit_frames(chroma, n_frames).argmax(axis=0)


def melody_accuracy(wave, sr: int, target_pc, hop: int, n_fft: int = 2048) -> float:
    """% of frames with a melody (target >= 0) whose chroma argmax equals the target pitch class."""
    target = np.asarray(target_pc).astype(np.int64)
    voiced = target >= 0
    if not voiced.any():
        raise ValueError("melody target has no voiced frame (all -1)")
    pred = chroma_argmax(wave, sr, hop, len(target), n_fft)
    return float(100.0 * np.mean(pred[voiced] == target[voiced]))


def mfcc_ssm(wave, sr: int, hop: int, n_frames: int, pool: int = 1, n_mfcc: int = 20) -> np.ndarray:
    """(n_frames, n_frames) cosine self-similarity of time-standardized MFCCs without c0.

    MFCCs are computed every ``hop`` samples and averaged in groups of ``pool`` frames, so a target
    on a pooled grid (``pool`` × hop samples per cell) is met on the same grid.
    """
    mfcc = librosa.feature.mfcc(y=_mono(wave), sr=sr, n_mfcc=n_mfcc, hop_length=hop)[1:]
    mfcc = fit_frames(mfcc, n_frames * pool).reshape(mfcc.shape[0], n_frames, pool).mean(-1)
    mfcc = (mfcc - mfcc.mean(1, keepdims=True)) / (mfcc.std(1, keepdims=True) + 1e-5)
    unit = mfcc / (np.linalg.norm(mfcc, axis=0, keepdims=True) + 1e-5)
    return unit.T @ unit


def structure_mse(wave, sr: int, target_ssm, hop: int, pool: int = 1) -> float:
    """MSE between the audio's MFCC self-similarity and ``target_ssm`` (n, n) on a hop·pool grid."""
    target = np.asarray(target_ssm, dtype=np.float64)
    if target.ndim != 2 or target.shape[0] != target.shape[1]:
        raise ValueError(f"target SSM must be square (n, n), got {target.shape}")
    return float(np.mean((mfcc_ssm(wave, sr, hop, target.shape[0], pool) - target) ** 2))


def painting_mse(wave, sr: int, reference_values, mask, n_fft: int, hop: int, n_mels: int,
                 log_floor: float, mean: float, std: float, target_std: float) -> float:
    """Outpainting / inpainting adherence: MSE over the masked frames between the normalized log-mel of
    the decoded audio (re-analysed with librosa) and the reference clip's normalized mel there."""
    ref = np.asarray(reference_values, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    mel = librosa.feature.melspectrogram(y=_mono(wave), sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                         power=1.0, pad_mode="reflect")
    norm = (np.log(np.maximum(fit_frames(mel, ref.shape[-1]), log_floor)) - mean) / std * target_std
    return float(np.mean((norm[:, m] - ref[:, m]) ** 2))


def tempo_bpm(wave, sr: int, hop: int = 512) -> float:
    """Global tempo (BPM) of the audio by librosa's onset-autocorrelation estimator."""
    return float(librosa.feature.tempo(y=_mono(wave), sr=sr, hop_length=hop)[0])


def tempo_errors(estimated_bpm: float, target_bpm: float, tolerance_pct: float = 8.0) -> dict:
    """How far an estimated tempo is from a target: ``error_pct``; ``within_8pct`` (1/0) at the exact tempo,
    and ``octave_within_8pct`` (1/0) at half or double the target only, counted separately."""
    if not (target_bpm > 0 and estimated_bpm > 0):
        raise ValueError(f"tempi must be > 0, got estimated {estimated_bpm}, target {target_bpm}")
    err = lambda bpm: 100.0 * abs(estimated_bpm - bpm) / bpm  # noqa: E731
    exact = err(target_bpm) <= tolerance_pct
    octave = not exact and min(err(target_bpm / 2), err(target_bpm * 2)) <= tolerance_pct
    return {"error_pct": round(err(target_bpm), 3), "within_8pct": float(exact), "octave_within_8pct": float(octave)}
