"""Hand-built and label-derived control targets (reference-clip targets: ``Control.target_from_reference``)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ditto2.controls.base import ControlTargetError

INTENSITY_DELTAS_DB = (6.0, 9.0, 12.0, 15.0)  # DITTO's intensity benchmark grid
TANH_STEEPNESS = 6.0  # tanh(±3) = ±0.995: an S-curve whose turn fills the middle third of the clip

# s: [0, 1] -> [0, 1], s(0) = 0, s(1) = 1
_SHAPES = {
    "linear": lambda t: t,
    "tanh": lambda t: 0.5 + 0.5 * np.tanh(TANH_STEEPNESS * (t - 0.5)) / math.tanh(TANH_STEEPNESS / 2),
    "cosine": lambda t: 0.5 - 0.5 * np.cos(math.pi * t),
}
_DIRECTIONS = {"rising": 1.0, "falling": -1.0}


def intensity_curve(kind: str, direction: str, delta_db: float, base_db: float, n_frames: int) -> torch.Tensor:
    """A DITTO intensity target (n_frames,) in dB: starts at ``base_db`` and ends at base_db ± delta_db
    (+ rising, − falling), following a linear, tanh (S-curve) or half-cosine shape."""
    if kind not in _SHAPES:
        raise ControlTargetError(f"unknown intensity curve kind {kind!r}; choose one of {sorted(_SHAPES)}")
    if direction not in _DIRECTIONS:
        raise ControlTargetError(f"unknown direction {direction!r}; choose one of {sorted(_DIRECTIONS)}")
    if not (math.isfinite(delta_db) and delta_db > 0 and math.isfinite(base_db)):
        raise ControlTargetError(f"need finite base_db and delta_db > 0, got base {base_db}, delta {delta_db}")
    if n_frames < 2:
        raise ControlTargetError(f"an intensity curve needs >= 2 frames, got {n_frames}")
    t = np.linspace(0.0, 1.0, n_frames)
    curve = base_db + _DIRECTIONS[direction] * delta_db * _SHAPES[kind](t)
    return torch.as_tensor(curve, dtype=torch.float32)


def form_sections(form: str, n_frames: int) -> np.ndarray:
    """Section index of each frame (equal-length sections) and the validated, upper-cased form."""
    if not isinstance(form, str) or not form.isascii() or not form.isalpha():
        raise ControlTargetError(f"form must be a string of letters such as 'ABA' or 'ABBA', got {form!r}")
    if len(set(form.upper())) < 2:
        # standardizing each MFCC over time removes whatever the whole clip shares, so a one-letter
        # form has no reachable similarity matrix
        raise ControlTargetError(f"form {form!r} needs at least two different letters")
    if len(form) > n_frames:
        raise ControlTargetError(f"form {form!r} has more sections than the {n_frames} frames")
    return np.minimum(np.arange(n_frames) * len(form) // n_frames, len(form) - 1)


def form_ssm(form: str, n_frames: int, across: Optional[float] = None) -> torch.Tensor:
    """Block self-similarity target (n_frames, n_frames) for a form string, sections of equal length.

    1 between frames of same-letter sections; ``across`` between different letters. Default
    across = −1/(L−1) for L distinct letters: StructureControl standardizes each coefficient over
    time, so the section means sum to zero and, for equal-weight sections, the most distinct
    reachable layout is a regular simplex with exactly that cosine (−1 for any two-letter form,
    whatever the section lengths). A target of 0 would ask ABA's A and B to be less distinct than
    that geometry allows; pass ``across=0.0`` for DITTO-style 1/0 targets.
    """
    sections = form_sections(form, n_frames)
    letters = np.array([ord(c) for c in form.upper()])[sections]
    n_letters = len(set(form.upper()))
    across = -1.0 / (n_letters - 1) if across is None else float(across)
    if not -1.0 <= across < 1.0:
        raise ControlTargetError(f"across-section similarity must lie in [-1, 1), got {across}")
    same = letters[:, None] == letters[None, :]
    return torch.as_tensor(np.where(same, 1.0, across), dtype=torch.float32)


def melody_from_synth(track, hop_length: int, n_frames: int) -> torch.Tensor:
    """Exact per-frame melody pitch classes (-1 = no melody) of a ``SynthTrack``, frames on the mel grid."""
    return torch.as_tensor(track.frame_labels(hop_length, n_frames)["melody"].astype(np.int64))


def shifted_melody(target: torch.Tensor, semitones: int) -> torch.Tensor:
    """Transpose a melody target by ``semitones`` (rests stay -1): a wrong-on-purpose control."""
    return torch.where(target >= 0, (target + semitones) % 12, target)
