"""A user's own targets through the runner and the CLI: `--target`, run folders that reproduce, refused
reference shards, chained outpainting, one-line errors."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from safetensors import safe_open

from ditto2.cli import main
from ditto2.runs.ito import load_config, run_ito


def base_args(teacher_tiny, student_bundles, synth_tiny, out):
    return [f"teacher={teacher_tiny}", f"cm={student_bundles['cm']}", f"ctm={student_bundles['ctm']}",
            f"shards={synth_tiny}", "batch=2", "steps=2", f"out={out}", "tensorboard=false", "report_items=1"]


def write_tune(path):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=90, pitch=60 + 2 * i, start=i, end=i + 1) for i in range(6)]
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def test_target_flag_with_a_midi_file_and_a_run_folder_that_reproduces(tmp_path, teacher_tiny, student_bundles,
                                                                       synth_tiny, capsys):
    tune = write_tune(tmp_path / "tune.mid")
    out = tmp_path / "run"
    args = ["ito", "--config", "experiments/ito/melody.yaml", *base_args(teacher_tiny, student_bundles, synth_tiny, out),
            "--target", str(tune), "--offset", "1.0"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["targets"] == ["tune.mid from 1 s"] * 2
    with safe_open(str(out / "targets.safetensors"), framework="pt") as f:
        melody = f.get_tensor("melody")
    assert melody.shape[0] == 2 and int(melody[0, 0]) == 2  # D (62) sounds from 1 s to 2 s
    cfg = load_config(str(out / "config.yaml"))
    assert cfg.controls[0].target == {"path": str(tune), "offset": 1.0}
    wave, sr = sf.read(out / "item_00" / "ito.wav")
    normalized, _ = sf.read(out / "item_00" / "ito_normalized.wav")
    assert np.abs(normalized).max() == pytest.approx(0.9, abs=1e-3)
    assert not np.allclose(np.abs(wave).max(), 0.9, atol=1e-3)  # the decoded level, not re-normalized


def test_reference_shards_with_other_statistics_are_refused(tmp_path, teacher_tiny, student_bundles, synth_tiny):
    other = tmp_path / "other-shards"
    shutil.copytree(synth_tiny, other)
    index = json.loads((other / "index.json").read_text())
    index["stats"]["mean"] += 0.2  # e.g. a folder built with its own statistics
    (other / "index.json").write_text(json.dumps(index))
    over = base_args(teacher_tiny, student_bundles, other, tmp_path / "run")
    with pytest.raises(ValueError, match="normalized with other statistics.*--stats-of"):
        run_ito(load_config("experiments/ito/outpainting.yaml", over))


@pytest.mark.parametrize("args, match", [
    (["ito", "method=dito"], "method must be one of"),
    (["ito", "controls=[{name: melod}]"], "did you mean 'melody'"),
    (["ito", "controls=[{name: melod}"], "not valid YAML"),
    (["ito", "stepz=3"], "did you mean 'steps'"),
    (["ito", "batch=0"], "batch >= 1"),
    (["ito", "teacher=nope/x", "steps=1"], "nope/x.safetensors is missing"),
    (["ito", "--config", "experiments/ito/melody.yaml", "--target", "nope.mid"], "does not exist"),
    (["sample", "--model", "nope/x"], "is missing"),
    (["fit", "--config", "experiments/pretrain/tiny.yaml", "--data.root", "/nonexistent"], "no shard index"),
])
def test_user_errors_are_one_line_and_exit_2(args, match, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ditto2: error: ") and match in err[0], err
    assert "Traceback" not in "\n".join(err)


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="method must be one of"):
        main(["ito", "method=dito", "--debug"])


def test_chained_outpainting_continues_a_recording_to_the_requested_length(tmp_path, teacher_tiny, student_bundles):
    from ditto2.runs.continuation import continue_recording

    rng = np.random.default_rng(0)
    sr, seconds = 22050, 7.0
    t = np.arange(int(seconds * sr)) / sr
    song = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
    sf.write(tmp_path / "song.wav", song, sr, subtype="FLOAT")
    cfg = load_config("experiments/ito/outpainting.yaml", [f"teacher={teacher_tiny}", f"ctm={student_bundles['ctm']}",
                                                           "steps=2", "tags={}", f"out={tmp_path / 'cont'}"])
    summary = continue_recording(cfg, str(tmp_path / "song.wav"), seconds=12.0)
    wave, file_sr = sf.read(tmp_path / "cont" / "continued.wav")
    assert file_sr == sr and len(wave) == len(song) + int(12.0 * sr) == summary["total_samples"]
    assert summary["windows"] == 3 and len(summary["seams_s"]) == 3
    np.testing.assert_allclose(wave[: len(song) - int(summary["overlap_seconds"] * sr)],
                               song[: len(song) - int(summary["overlap_seconds"] * sr)], atol=1e-6)
    # no jump at a seam: the level moves by no more there, frame to frame, than the bound measured for the
    # equal-power crossfade on these random-weight models (below 3 dB), whatever the two sides' levels
    assert max(summary["seam_max_level_step_db"]) < 3.0, summary
    with pytest.raises(ValueError, match="outpainting"):
        continue_recording(load_config("experiments/ito/melody.yaml", ["tags={}"]), str(tmp_path / "song.wav"), 5.0)


def test_continuation_steps_with_every_setting_of_the_config(tmp_path, teacher_tiny, student_bundles, monkeypatch):
    """Each window's optimization takes the config's step settings and options as `ditto2 ito` does (step_options),
    its own seed (initial noise, candidates, side streams), not a hand-picked few."""
    import ditto2.runs.continuation as continuation
    from ditto2.ito.optimize import optimize_noise

    calls = []

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return optimize_noise(*args, **kwargs)

    monkeypatch.setattr(continuation, "optimize_noise", recording)
    sr = 22050
    sf.write(tmp_path / "song.wav", (0.1 * np.sin(np.arange(6 * sr) / sr * 2 * np.pi * 220)).astype(np.float32), sr)
    cfg = load_config("experiments/ito/outpainting.yaml", [
        f"teacher={teacher_tiny}", f"ctm={student_bundles['ctm']}", "steps=2", "tags={}", f"out={tmp_path / 'c'}",
        "lr_decay=cosine", "smooth_sigma=0.1", "start_candidates=2", "adam_betas=[0.5,0.9]", "seed=5"])
    continuation.continue_recording(cfg, str(tmp_path / "song.wav"), seconds=2.0)
    assert len(calls) == 1
    got = calls[0]
    assert got["lr_decay"] == "cosine" and got["smooth_sigma"] == 0.1 and tuple(got["betas"]) == (0.5, 0.9)
    assert got["seed"] == 5 and got["start_others"].shape[0] == 1


def test_shards_of_your_own_folder_in_a_models_statistics(audio_folder, teacher_tiny, tmp_path):
    out = tmp_path / "mine"
    assert main(["shards", "folder", "--audio-dir", str(audio_folder["root"]), "--out", str(out),
                 "--stats-of", str(teacher_tiny), "--workers", "1"]) == 0
    index = json.loads((out / "index.json").read_text())
    teacher = json.loads((teacher_tiny.parent / f"{teacher_tiny.name}.json").read_text())["data"]
    assert index["stats"] == teacher["stats"] and index["mel"] == teacher["mel"]
    assert set(index["splits"]) >= {"test"} and index["splits"]["test"]["n_clips"] > 0
