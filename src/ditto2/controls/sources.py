"""A user's own material as control targets: audio files, MIDI files and per-frame values, read with the
model's mel config and statistics. Every problem is a ``ControlTargetError`` with one line that names the
file and what to change; nothing here optimizes anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ditto2.audio.io import AUDIO_EXTENSIONS, AudioDecodeError, decode_file
from ditto2.audio.mel import LogMel
from ditto2.controls.base import ControlTargetError, MelContext

MIDI_EXTENSIONS = (".mid", ".midi")
VALUE_EXTENSIONS = (".npy", ".csv", ".txt")


def file_kind(path: Union[str, Path]) -> str:
    """"audio", "midi" or "values", from the file's extension."""
    ext = Path(path).suffix.lower()
    if ext in MIDI_EXTENSIONS:
        return "midi"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in VALUE_EXTENSIONS:
        return "values"
    known = ", ".join(MIDI_EXTENSIONS + AUDIO_EXTENSIONS + VALUE_EXTENSIONS)
    raise ControlTargetError(f"{path}: unknown target file type {ext or '(none)'!r}; use one of {known}")


def _existing(path: Union[str, Path]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ControlTargetError(f"target file {p} does not exist")
    return p


def read_audio(path: Union[str, Path], sample_rate: int) -> np.ndarray:
    """A user's audio file as checked mono float32 at ``sample_rate``; a problem names the file."""
    try:
        return decode_file(str(_existing(path)), sample_rate)
    except AudioDecodeError as e:
        raise ControlTargetError(f"{path}: {e}") from None


def read_audio_window(path: Union[str, Path], ctx: MelContext, offset_s: float = 0.0) -> tuple[np.ndarray, torch.Tensor]:
    """One model window of an audio file from ``offset_s``: (wave (clip_samples,), normalized mel (1, 1, M, T))
    in the model's mel config and statistics."""
    return audio_window(read_audio(path, ctx.cfg.sample_rate), ctx, offset_s, path)


def audio_window(wave: np.ndarray, ctx: MelContext, offset_s: float = 0.0,
                 path: Union[str, Path] = "audio") -> tuple[np.ndarray, torch.Tensor]:
    """``read_audio_window`` of audio already decoded at the model's rate (``path`` names it in errors)."""
    cfg = ctx.cfg
    if not np.isfinite(offset_s) or offset_s < 0:
        raise ControlTargetError(f"offset must be a number of seconds >= 0, got {offset_s}")
    start = int(round(offset_s * cfg.sample_rate))
    duration = len(wave) / cfg.sample_rate
    if start >= len(wave):
        raise ControlTargetError(f"{path}: offset {offset_s:g} s is past its end ({duration:.2f} s)")
    window = wave[start : start + cfg.clip_samples]
    if len(window) < cfg.clip_samples:
        raise ControlTargetError(f"{path}: {len(window) / cfg.sample_rate:.2f} s from offset {offset_s:g} s, but the model's "
                                 f"window is {cfg.clip_seconds:.2f} s: use an earlier --offset or a longer file")
    if np.abs(window).max() < 1e-4:
        raise ControlTargetError(f"{path}: the {cfg.clip_seconds:.2f} s from offset {offset_s:g} s are silent")
    with torch.no_grad():
        logmel = LogMel(cfg).clip(torch.from_numpy(np.ascontiguousarray(window))[None])
    return window, ctx.normalizer.normalize(logmel)[:, None].float()


def read_values(values: Union[str, Path, Sequence[float]], n_frames: int, what: str, lo: float, hi: float,
                resample: bool = False, integer: bool = False) -> torch.Tensor:
    """Per-frame values from an inline list or a .npy / .csv / .txt file -> (n_frames,), checked against
    [lo, hi]; a length other than ``n_frames`` is an error unless ``resample`` (linear; nearest for integers)."""
    if isinstance(values, (str, Path)):
        p = _existing(values)
        if file_kind(p) != "values":
            raise ControlTargetError(f"{p}: per-frame values come from .npy, .csv or .txt files")
        try:
            ext = p.suffix.lower()
            arr = np.load(p) if ext == ".npy" else np.loadtxt(p, delimiter="," if ext == ".csv" else None, ndmin=1)
        except (ValueError, OSError) as e:
            raise ControlTargetError(f"{p}: cannot read numbers ({e})") from None
        name = str(p)
    else:
        arr, name = values, "values"
    arr = np.asarray(arr, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ControlTargetError(f"{name}: no values")
    if not np.isfinite(arr).all():
        raise ControlTargetError(f"{name}: {int((~np.isfinite(arr)).sum())} NaN/inf values")
    if arr.min() < lo or arr.max() > hi:
        raise ControlTargetError(f"{name}: {what} must lie in [{lo:g}, {hi:g}], got [{arr.min():g}, {arr.max():g}]")
    if integer and not np.all(arr == np.round(arr)):
        raise ControlTargetError(f"{name}: {what} must be whole numbers")
    if len(arr) != n_frames:
        if not resample:
            raise ControlTargetError(f"{name}: {len(arr)} values, the model has {n_frames} frames: give {n_frames} values "
                                     "or set resample: true")
        x = np.linspace(0, len(arr) - 1, n_frames)
        arr = arr[np.round(x).astype(int)] if integer else np.interp(x, np.arange(len(arr)), arr)
    return torch.as_tensor(arr, dtype=torch.int64 if integer else torch.float32)


def read_midi_notes(path: Union[str, Path], track: Optional[int] = None):
    """The pitched notes of a MIDI file (drums left out), of one instrument track when ``track`` is given."""
    import pretty_midi

    p = _existing(path)
    try:
        midi = pretty_midi.PrettyMIDI(str(p))
    except Exception as e:  # mido / pretty_midi raise several types for malformed files
        raise ControlTargetError(f"{p}: cannot read MIDI ({type(e).__name__}: {e})") from None
    pitched = [(i, inst) for i, inst in enumerate(midi.instruments) if not inst.is_drum and inst.notes]
    if track is not None:
        pitched = [(i, inst) for i, inst in pitched if i == track]
        if not pitched:
            raise ControlTargetError(f"{p}: no pitched notes in track {track}; tracks with notes: "
                                     f"{[i for i, inst in enumerate(midi.instruments) if inst.notes and not inst.is_drum]}")
    notes = [n for _, inst in pitched for n in inst.notes]
    if not notes:
        raise ControlTargetError(f"{p}: no pitched notes (empty, or drums only)")
    return notes


def frame_times(n_frames: int, sr: int, hop: int, offset_s: float) -> np.ndarray:
    """Time in seconds of each frame centre of a window starting at ``offset_s``."""
    return offset_s + np.arange(n_frames) * hop / sr


def midi_melody(path: Union[str, Path], n_frames: int, sr: int, hop: int, offset_s: float = 0.0,
                track: Optional[int] = None) -> torch.Tensor:
    """Pitch class (0 = C) of the highest sounding note per frame (-1 where none sounds): the top voice."""
    notes = read_midi_notes(path, track)
    end = max(n.end for n in notes)
    if offset_s >= end:
        raise ControlTargetError(f"{path}: offset {offset_s:g} s is past its last note ({end:.2f} s)")
    t = frame_times(n_frames, sr, hop, offset_s)
    top = np.full(n_frames, -1, dtype=np.int64)
    for n in notes:
        on = (t >= n.start) & (t < n.end) & (n.pitch > top)
        top[on] = n.pitch
    if (top < 0).all():
        raise ControlTargetError(f"{path}: no note sounds in the window from {offset_s:g} s")
    return torch.as_tensor(np.where(top >= 0, top % 12, -1))


def midi_velocity_db(path: Union[str, Path], n_frames: int, sr: int, hop: int, offset_s: float = 0.0,
                     track: Optional[int] = None, base_db: float = -25.0, rest_db: float = -20.0) -> torch.Tensor:
    """A level curve (dB) from note velocities: ``base_db`` + 20·log10(velocity / 127) of the loudest sounding
    note per frame, ``base_db + rest_db`` where none sounds (before smoothing by the control's own smoother)."""
    notes = read_midi_notes(path, track)
    t = frame_times(n_frames, sr, hop, offset_s)
    vel = np.zeros(n_frames)
    for n in notes:
        on = (t >= n.start) & (t < n.end)
        vel[on] = np.maximum(vel[on], n.velocity)
    if not vel.any():
        raise ControlTargetError(f"{path}: no note sounds in the window from {offset_s:g} s")
    db = np.where(vel > 0, base_db + 20 * np.log10(np.maximum(vel, 1) / 127), base_db + rest_db)
    return torch.as_tensor(db, dtype=torch.float32)
