"""Decoding audio from files or archive members into checked mono float32 at a target rate."""
from __future__ import annotations

import io
import re
import struct

import numpy as np
import soundfile as sf
import soxr


class AudioDecodeError(Exception):
    """A file that cannot become usable audio; the message is the reason written to the report."""


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus")


def _truncation_problem(data: bytes, ext: str) -> str | None:
    """Container-level checks libsndfile does not make: it happily decodes half a file."""
    if ext in (".ogg", ".oga", ".opus"):
        last = data.rfind(b"OggS")
        if last < 0 or len(data) - last < 27:
            return "truncated Ogg stream (no complete final page)"
        n_seg = data[last + 26]
        if len(data) - last < 27 + n_seg:
            return "truncated Ogg stream (final page cut)"
        body = sum(data[last + 27 : last + 27 + n_seg])
        if len(data) - last < 27 + n_seg + body:
            return "truncated Ogg stream (final page cut)"
        if not data[last + 5] & 0x04:
            return "truncated Ogg stream (no end-of-stream page)"
    elif ext == ".wav" and data[:4] == b"RIFF" and len(data) >= 8:
        riff_size = struct.unpack("<I", data[4:8])[0]
        if riff_size + 8 > len(data) and riff_size != 0xFFFFFFFF:
            return f"truncated WAV ({len(data)} of {riff_size + 8} bytes)"
    return None


def decode_bytes(data: bytes, name: str, sr: int) -> np.ndarray:
    """Decode ``data`` (named ``name`` for its extension) -> mono float32 at ``sr``.

    Raises AudioDecodeError with a human-readable reason for anything unusable.
    """
    if len(data) == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    problem = _truncation_problem(data, ext)
    if problem:
        raise AudioDecodeError(problem)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            expected = f.frames
            native_sr = f.samplerate
            audio = f.read(dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types for malformed input
        # libsndfile names the in-memory object ("<_io.BytesIO object at 0x..>"); keep the reason only
        reason = re.sub(r"Error opening <[^>]*>: ", "", str(e))
        raise AudioDecodeError(f"cannot decode: {reason}") from None
    if audio.shape[0] == 0:
        raise AudioDecodeError("no audio frames")
    # Lossy streams carry no exact length (MP3: estimated from the bit rate; Vorbis: the last
    # granule position, which encoders pad); their truncation is caught above. Allow 1% there.
    slack = expected // 100 if ext in (".mp3", ".ogg", ".oga", ".opus") else 0
    if expected > 0 and audio.shape[0] < expected - slack:
        raise AudioDecodeError(f"truncated: decoded {audio.shape[0]} of {expected} frames")
    if not np.isfinite(audio).all():
        raise AudioDecodeError("non-finite samples (NaN or inf)")
    mono = audio.mean(axis=1)
    if native_sr != sr:
        mono = soxr.resample(mono, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def decode_file(path: str, sr: int) -> np.ndarray:
    with open(path, "rb") as f:
        return decode_bytes(f.read(), path, sr)


def peak_normalized(wave, peak: float = 0.9):
    """``wave`` (numpy or torch) scaled so its largest |sample| is ``peak``; near-silence is not blown up."""
    return wave / max(1e-6, float(abs(wave).max())) * peak
