"""Reference extractors on decoded audio: known-answer signals, frame alignment, bad inputs."""
import math

import numpy as np
import pytest

from ditto2.data.sources.synth import render_synth_track
from ditto2.metrics.control import fit_frames, intensity_db, intensity_mse, melody_accuracy, mfcc_ssm, structure_mse

SR, HOP, FRAMES = 22050, 512, 256
N = HOP * FRAMES


def _ramp(start_db=-30.0, delta_db=12.0):
    t = np.arange(N) / SR
    level = start_db + delta_db * t / t[-1]
    wave = np.sqrt(2) * np.sin(2 * math.pi * 440 * t) * 10 ** (level / 20)
    return wave.astype(np.float32), np.interp(np.arange(FRAMES) * HOP / SR, t, level)


def _block_ssm(labels):
    labels = np.asarray(labels)
    return np.where(labels[:, None] == labels[None], 1.0, -1.0)


def test_intensity_of_a_ramp():
    wave, level = _ramp()
    assert np.abs(intensity_db(wave, SR, HOP, FRAMES) - level).max() < 0.1  # measured 0.006
    assert intensity_mse(wave, SR, level, HOP) < 0.05
    assert intensity_mse(wave, SR, level + 3.0, HOP) == pytest.approx(9.0, abs=0.5)
    assert intensity_mse(wave, SR, level[::-1], HOP) > 40  # the falling curve is far off


def test_frames_are_cropped_or_edge_padded_to_the_target():
    wave, level = _ramp()
    assert len(intensity_db(wave, SR, HOP, FRAMES)) == FRAMES  # librosa gives FRAMES + 1
    short = intensity_db(wave[: N // 2], SR, HOP, FRAMES)
    assert len(short) == FRAMES and np.ptp(short[-FRAMES // 4:]) < 1e-3  # the padded tail is flat
    assert np.array_equal(fit_frames(np.arange(5)[None], 3), [[0, 1, 2]])
    assert np.array_equal(fit_frames(np.arange(3)[None], 5), [[0, 1, 2, 2, 2]])


def test_melody_accuracy_on_a_synth_melody():
    track = render_synth_track(5, SR, N / SR, stems=True)
    labels = track.frame_labels(HOP, FRAMES)["melody"].astype(int)
    wave = track.stems["melody"][:N]
    assert melody_accuracy(wave, SR, labels, HOP) > 95.0  # measured 100%
    shifted = np.where(labels >= 0, (labels + 1) % 12, -1)
    assert melody_accuracy(wave, SR, shifted, HOP) < 10.0  # measured 0%
    # the full mix (pads, bass, drums) is still mostly graded right thanks to the 261 Hz high-pass
    assert melody_accuracy(track.audio[:N], SR, labels, HOP) > 85.0  # measured 97.4%
    with pytest.raises(ValueError, match="voiced"):
        melody_accuracy(wave, SR, np.full(FRAMES, -1), HOP)


@pytest.mark.parametrize("pool", [1, 4])
def test_structure_of_an_aba_signal(pool):
    t = np.arange(N) / SR
    rng = np.random.default_rng(1)
    a = sum(np.sin(2 * math.pi * 660 * k * t) * 0.8 ** k for k in range(1, 9))
    b = np.convolve(rng.standard_normal(N), np.ones(8) / 8, mode="same")
    a, b = a / a.std(), b / b.std()
    section = np.minimum(np.arange(N) * 3 // N, 2)
    wave = (0.1 * np.where(section == 1, b, a)).astype(np.float32)
    n = FRAMES // pool
    grid = np.minimum(np.arange(n) * 3 // n, 2)
    aba = _block_ssm(np.where(grid == 1, 1, 0))
    abba = _block_ssm(np.minimum(np.arange(n) * 4 // n, 3) % 3 != 0)
    ssm = mfcc_ssm(wave, SR, HOP, n, pool)
    assert ssm.shape == (n, n) and np.allclose(ssm, ssm.T, atol=1e-5)
    assert np.corrcoef(ssm.ravel(), aba.ravel())[0, 1] > 0.9
    assert structure_mse(wave, SR, aba, HOP, pool) < 0.2 < 0.8 < structure_mse(wave, SR, abba, HOP, pool)


def test_bad_inputs():
    wave, level = _ramp()
    with pytest.raises(ValueError, match="mono"):
        intensity_mse(np.stack([wave, wave]), SR, level, HOP)
    bad = wave.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        intensity_mse(bad, SR, level, HOP)
    with pytest.raises(ValueError, match="square"):
        structure_mse(wave, SR, np.zeros((4, 5)), HOP)
