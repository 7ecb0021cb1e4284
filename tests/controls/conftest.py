"""Fixtures for the control tests."""
from __future__ import annotations

import pytest
from control_signals import CFG, NORM

from ditto2.controls import MelContext
from ditto2.data.sources.synth import render_synth_track


@pytest.fixture(scope="session")
def ctx():
    return MelContext(CFG, NORM)


@pytest.fixture(scope="session")
def melody_stem():
    """Melody stem of a synth track (seed 3, rock) and the track, for its exact labels."""
    track = render_synth_track(3, CFG.sample_rate, CFG.clip_seconds, stems=True)
    return track.stems["melody"][: CFG.clip_samples], track
