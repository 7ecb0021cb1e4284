"""Your own material as targets: each source builds the right target on a small known input, and every bad
input is refused with a message that names it."""
import numpy as np
import pytest
import soundfile as sf
import torch
from control_signals import CFG

from ditto2.controls import ControlTargetError, IntensityControl, MelodyControl, OutpaintingControl, StructureControl
from ditto2.controls.shapes import form_ssm
from ditto2.controls.sources import midi_melody, read_audio_window, read_values

SR, HOP, N = CFG.sample_rate, CFG.hop_length, CFG.frames


def write_midi(path, notes, drums=()):
    """notes: (pitch, start s, end s, velocity) of one piano track; drums: the same on a drum track."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for program, is_drum, spec in ((0, False, notes), (0, True, drums)):
        if spec:
            inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
            inst.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in spec]
            midi.instruments.append(inst)
    midi.write(str(path))
    return path


def frame_of(t):
    return int(np.ceil(t * SR / HOP))


def test_midi_top_voice_gives_those_pitch_classes_at_those_frames(tmp_path, ctx):
    # C4 0-1 s, E4 1-2 s, a G4 + C5 chord 2-3 s (top voice: C5), rest 3-4 s, A3 4-6 s; drums everywhere
    notes = [(60, 0.0, 1.0, 90), (64, 1.0, 2.0, 90), (67, 2.0, 3.0, 90), (72, 2.0, 3.0, 90), (57, 4.0, 6.0, 90)]
    path = write_midi(tmp_path / "tune.mid", notes, drums=[(36, 0.0, 6.0, 120)])
    pc = midi_melody(path, N, SR, HOP).numpy()
    expect = {0.5: 0, 1.5: 4, 2.5: 0, 3.5: -1, 5.0: 9}
    for t, want in expect.items():
        assert pc[frame_of(t)] == want, (t, pc[frame_of(t)])
    assert pc[frame_of(1.0) - 1] == 0 and pc[frame_of(1.0)] == 4  # the boundary lands on the right frame
    # offset: the window starts 4 s in, so its first frame plays A3
    assert midi_melody(path, N, SR, HOP, offset_s=4.0).numpy()[0] == 9
    ts = MelodyControl(ctx).targets(2, 0, path=str(path))
    assert ts.target.shape == (2, N) and torch.equal(ts.target[0], torch.as_tensor(pc)) and "tune.mid" in ts.descriptions[0]


def test_midi_velocity_becomes_an_intensity_curve(tmp_path, ctx):
    path = write_midi(tmp_path / "dyn.mid", [(60, 0.0, 3.0, 32), (60, 3.0, 6.0, 127)])
    control = IntensityControl(ctx)
    t = control.targets(1, 0, path=str(path), base_db=-20.0).target[0].numpy()
    quiet, loud = t[frame_of(1.0)], t[frame_of(5.0)]
    assert loud == pytest.approx(-20.0, abs=0.5) and quiet == pytest.approx(-20.0 + 20 * np.log10(32 / 127), abs=0.5)


@pytest.mark.parametrize("notes, drums, match", [
    ([], [(36, 0.0, 2.0, 100)], "no pitched notes"),
    ([(60, 0.0, 1.0, 90)], [], "past its last note"),
])
def test_midi_without_usable_notes_is_refused(tmp_path, ctx, notes, drums, match):
    path = write_midi(tmp_path / "bad.mid", notes, drums)
    with pytest.raises(ControlTargetError, match=match):
        MelodyControl(ctx).targets(1, 0, path=str(path), offset=5.0 if notes else 0.0)


def test_a_tone_with_a_known_loudness_ramp_gives_that_ramp(tmp_path, ctx):
    seconds = CFG.clip_seconds + 0.5
    t = np.arange(int(seconds * SR)) / SR
    ramp_db = -30.0 + 20.0 * t / seconds  # -30 dB -> -10 dB of amplitude, linear in dB
    wave = (10 ** (ramp_db / 20) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "ramp.wav", wave, SR, subtype="FLOAT")
    target = IntensityControl(ctx).targets(1, 0, path=str(tmp_path / "ramp.wav")).target[0].numpy()
    frames_t = np.arange(N) * HOP / SR
    expected = -30.0 + 20.0 * frames_t / seconds - 20 * np.log10(np.sqrt(2))  # RMS of a sine: peak / √2
    inner = slice(N // 8, -N // 8)  # away from the smoother's clip edges
    assert np.abs(target[inner] - expected[inner]).max() < 1.0


def test_an_aba_recording_gives_a_block_self_similarity(tmp_path, ctx):
    third = CFG.clip_samples // 3
    rng = np.random.default_rng(0)
    t = np.arange(third) / SR
    a = 0.3 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 330 * t))
    b = 0.3 * np.convolve(rng.standard_normal(third), np.ones(8) / 8, mode="same")
    wave = np.concatenate([a, b, a, a[: CFG.clip_samples - 3 * third]]).astype(np.float32)
    sf.write(tmp_path / "aba.wav", wave, SR)
    control = StructureControl(ctx)
    ssm = control.targets(1, 0, path=str(tmp_path / "aba.wav")).target[0]
    block = form_ssm("ABA", control.ssm_size)
    assert np.corrcoef(ssm.flatten().numpy(), block.flatten().numpy())[0, 1] > 0.8


def test_outpainting_context_from_a_recording_at_an_offset(tmp_path, ctx):
    wave = (0.2 * np.random.default_rng(1).standard_normal(CFG.clip_samples * 2)).astype(np.float32)
    sf.write(tmp_path / "song.wav", wave, SR)
    control = OutpaintingControl(ctx)
    ts = control.targets(2, 0, path=str(tmp_path / "song.wav"), offset=1.0)
    _, mel = read_audio_window(tmp_path / "song.wav", ctx, 1.0)
    k = control.overlap_frames
    assert torch.allclose(ts.target.values[1][:, :k], mel[0, 0][:, -k:]) and ts.references.shape[0] == 2


def test_values_inline_from_files_and_resampled(tmp_path):
    ramp = np.linspace(-30, -10, N)
    np.save(tmp_path / "v.npy", ramp)
    np.savetxt(tmp_path / "v.csv", ramp[None], delimiter=",")
    for source in (list(ramp), tmp_path / "v.npy", tmp_path / "v.csv"):
        assert torch.allclose(read_values(source, N, "dB", -120, 20), torch.as_tensor(ramp, dtype=torch.float32))
    short = read_values([-30.0, -10.0], N, "dB", -120, 20, resample=True)
    assert short.shape == (N,) and short[0] == -30 and short[-1] == -10
    pcs = read_values([0, 4, 7, -1], N, "pitch classes", -1, 11, resample=True, integer=True)
    assert pcs.dtype == torch.int64 and set(pcs.tolist()) == {0, 4, 7, -1}


@pytest.mark.parametrize("values, kw, match", [
    ([-20.0] * 10, {}, f"10 values, the model has {N} frames"),
    ([float("nan")] * N, {}, "NaN"),
    ([50.0] * N, {}, "must lie in"),
    ([], {}, "no values"),
])
def test_bad_values_are_refused(values, kw, match):
    with pytest.raises(ControlTargetError, match=match):
        read_values(values, N, "intensity (dB)", -120, 20, **kw)


def test_bad_audio_is_refused_with_its_reason(tmp_path, ctx):
    sf.write(tmp_path / "short.wav", np.zeros(SR, np.float32) + 0.1, SR)
    sf.write(tmp_path / "silent.wav", np.zeros(CFG.clip_samples + SR, np.float32), SR)
    good = (0.1 * np.random.default_rng(2).standard_normal(CFG.clip_samples + SR)).astype(np.float32)
    sf.write(tmp_path / "ok.wav", good, SR)
    (tmp_path / "empty.wav").write_bytes(b"")
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    cases = {"missing.wav": "does not exist", "empty.wav": "empty", "cut.wav": "truncated",
             "short.wav": "the model's window", "silent.wav": "silent", "notes.xyz": "unknown target file type"}
    (tmp_path / "notes.xyz").write_text("x")
    for name, match in cases.items():
        with pytest.raises(ControlTargetError, match=match):
            IntensityControl(ctx).targets(1, 0, path=str(tmp_path / name))
    with pytest.raises(ControlTargetError, match="past its end"):
        IntensityControl(ctx).targets(1, 0, path=str(tmp_path / "ok.wav"), offset=60.0)
    with pytest.raises(ControlTargetError, match="MIDI files only"):
        MelodyControl(ctx).targets(1, 0, path=str(tmp_path / "ok.wav"), track=1)
    (tmp_path / "garbage.mid").write_bytes(b"MThd not really")
    with pytest.raises(ControlTargetError, match="cannot read MIDI"):
        MelodyControl(ctx).targets(1, 0, path=str(tmp_path / "garbage.mid"))
