"""The tempo grader of text control: a click track of known tempo, and the error bookkeeping."""
import numpy as np
import pytest

from ditto2.metrics.control import tempo_bpm, tempo_errors


@pytest.mark.parametrize("bpm", [90.0, 120.0])
def test_a_click_track_reads_its_tempo(bpm):
    sr = 22050
    wave = np.zeros(int(8 * sr), np.float32)
    click = (np.hanning(256) * np.sin(2 * np.pi * 1500 * np.arange(256) / sr)).astype(np.float32)
    for t in np.arange(0, 7.9, 60.0 / bpm):
        i = int(t * sr)
        wave[i : i + 256] += click
    est = tempo_bpm(wave, sr)
    assert tempo_errors(est, bpm)["within_8pct"] == 1.0, est


def test_tempo_errors_count_half_and_double_time_separately():
    assert tempo_errors(120.0, 120.0) == {"error_pct": 0.0, "within_8pct": 1.0, "octave_within_8pct": 0.0}
    assert tempo_errors(60.0, 120.0) == {"error_pct": 50.0, "within_8pct": 0.0, "octave_within_8pct": 1.0}
    assert tempo_errors(245.0, 120.0)["octave_within_8pct"] == 1.0
    assert tempo_errors(100.0, 120.0) == {"error_pct": 16.667, "within_8pct": 0.0, "octave_within_8pct": 0.0}
    with pytest.raises(ValueError):
        tempo_errors(0.0, 120.0)
