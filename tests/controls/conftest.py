"""Fixtures for the control tests."""
from __future__ import annotations

import pytest
import torch

from control_signals import CFG, NORM
from ditto2.controls import MelContext
from ditto2.data.sources.synth import render_synth_track


@pytest.fixture(autouse=True)
def one_thread():
    # These tensors are small: with a background job on a 2-core box, two intra-op threads spend
    # ~50x longer waiting on each other than computing. One thread keeps every test ~a second.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ctx():
    return MelContext(CFG, NORM)


@pytest.fixture(scope="session")
def melody_stem():
    """Melody stem of a synth track (seed 3, rock) and the track, for its exact labels."""
    track = render_synth_track(3, CFG.sample_rate, CFG.clip_seconds, stems=True)
    return track.stems["melody"][: CFG.clip_samples], track
