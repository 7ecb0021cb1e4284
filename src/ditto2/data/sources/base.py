"""What every audio source hands to the shard writer: a list of tracks that can load themselves."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ditto2.audio.io import AudioDecodeError  # noqa: F401  (re-exported: what a track's load raises)


@dataclass
class Track:
    """One piece of music. Splits are assigned per track, never per clip.

    ``load(sr)`` returns mono float32 audio at ``sr`` or raises ``AudioDecodeError``.
    ``frame_labels(sr, hop, n_samples)``, when present, returns exact per-mel-frame labels
    (e.g. ``{"melody": int array, -1 = no melody}``) for the whole track, aligned to frames of
    ``hop`` samples; the shard writer cuts them together with the audio.
    """

    track_id: str
    source_file: str
    tags: dict = field(default_factory=dict)
    load: Callable[[int], np.ndarray] = None  # type: ignore[assignment]
    frame_labels: Optional[Callable[[int, int, int], dict]] = None
