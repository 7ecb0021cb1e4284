"""The page's engine on the committed tiny models: one request = one run folder whose config reproduces it, the
uncontrolled sample from the same noise, graded before / after; bad uploads become a message; DITTO can be
cancelled; warm starts only when only the target changed."""
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ditto2.runs.ito import load_config, run_ito
from midi_tune import write_midi

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "checkpoints" / "tiny"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from ditto2.serve.studio import Studio

    pytest.importorskip("omegaconf")
    out = tmp_path_factory.mktemp("serve")
    preset = out / "interactive.yaml"
    preset.write_text("controls:\n" + "".join(f"  {c}: {{steps: 4, lr: 0.04, lr_decay: cosine, adam_betas: [0.5, 0.9]}}\n"
                                              for c in
                                              ("intensity", "melody", "structure", "outpainting", "inpainting", "text")))
    return Studio(str(MODELS), str(out / "runs"), str(ROOT / "experiments" / "ito"), str(preset))


def test_a_request_is_a_run_folder_that_its_config_reproduces(studio, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_dir = studio.new_run_dir()
    page = {"melody_file": str(write_midi(tmp_path / "tune.mid"))}
    cfg = studio.config("melody", page, {"genre": "ambient"}, 3, "interactive", run_dir)
    assert (cfg.steps, cfg.lr, cfg.lr_decay, cfg.batch, cfg.seed) == (4, 0.04, "cosine", 1, 3)
    assert cfg.adam_betas == [0.5, 0.9]
    out = studio.generate(cfg)
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "uncontrolled.wav", "ditto2.wav", "ditto2-target.png",
                                                    "ditto2-result.json", "upload-tune.mid"}
    wave, sr = sf.read(out.wavs["ditto2"])
    assert sr == studio.gen.mel.sample_rate and len(wave) > sr and np.abs(wave).max() > 0
    (grade,) = out.grades
    assert grade["control"] == "melody" and grade["metric"] == "accuracy_pct" and grade["higher_is_better"]
    assert grade["controlled"] > grade["uncontrolled"]  # 4 steps already steer the chroma towards the MIDI's notes
    assert out.timing["generation_s"] <= out.timing["total_s"] and out.steps == 4
    # ditto2 ito --config RUN/config.yaml: the same request, the same noise, the same grade
    again = run_ito(load_config(str(out.config), [f"out={tmp_path / 'again'}", "engine=loop"]))
    assert again["items"][0]["melody_accuracy_pct"] == pytest.approx(grade["controlled"], abs=0.5)


def test_two_controls_at_once_and_text_graded_by_the_judge(studio, monkeypatch):
    monkeypatch.chdir(ROOT)
    page = {"intensity_points": "0:-40, 5.9:-15", "melody_notes": "C E G C", "caption": "A calm ambient song."}
    both = studio.generate(studio.config("intensity+melody", page, {}, 0, "interactive", studio.new_run_dir()))
    assert [g["control"] for g in both.grades] == ["intensity", "melody"]
    assert both.grades[0]["controlled"] < both.grades[0]["uncontrolled"]  # the loudness moved towards the curve
    text = studio.generate(studio.config("text", page, {}, 0, "interactive", studio.new_run_dir()))
    assert text.grades[0]["metric"] == "clap_judge_cosine"  # graded by the CLAP no control optimizes


def test_bad_uploads_are_a_message_and_the_page_keeps_working(studio, tmp_path, monkeypatch):
    from ditto2.serve.app import Handlers

    monkeypatch.chdir(ROOT)
    h = Handlers(studio)
    junk = tmp_path / "song.wav"
    junk.write_text("this is not audio")
    fields = dict(points="0:-30, 5:-20", notes="C E G", melody_file=None, form="ABBA", structure_file=None,
                  recording=None, offset=0, caption="", genre="", mood="", tempo=0, seed=0, preset="interactive",
                  warm=False)
    for control, change in [("outpainting", {"recording": str(junk)}), ("melody", {"melody_file": str(junk)}),
                            ("outpainting", {}), ("intensity", {"points": "0:+30"}), ("melody", {"notes": "X9"}),
                            ("intensity", {"genre": "polka"})]:
        status, *rest = h.generate(control, **{**fields, **change})
        assert status.startswith("⚠️") and "Traceback" not in status and len(status.splitlines()) == 1, status
        assert rest[:3] == [None, None, None]
    status, plain, controlled, plot, grades, files, config = h.generate("intensity", **fields)
    assert "generation" in status and Path(controlled).is_file() and Path(plot).is_file() and "mse_db2" in grades
    assert [Path(f).name for f in files] == ["ditto2.wav", "config.yaml"]


def test_ditto_baseline_reports_progress_and_stops_on_cancel(studio, monkeypatch):
    from ditto2.serve.app import Handlers

    monkeypatch.chdir(ROOT)
    h = Handlers(studio)
    first = next(h.ditto(None))
    assert first[0].startswith("⚠️ press Generate first")
    cfg = studio.config("intensity", {"intensity_points": "0:-30"}, {}, 0, "interactive", studio.new_run_dir())
    studio.generate(cfg)
    updates = h.ditto(str(Path(cfg.out) / "config.yaml"))
    status = next(updates)[0]
    assert status.startswith("DITTO baseline: step") and "of 70" in status
    updates.close()  # what the page's Cancel does to the running event
    assert h.cancel_ditto.is_set()
    # and the worker stops at its next step: Cancelled, with no DITTO wav written
    from ditto2.serve.studio import Cancelled

    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        studio.generate(studio.ditto_config(cfg), cancel=stop)
    assert not (Path(cfg.out) / "ditto" / "ditto.wav").exists()


def test_warm_start_only_when_only_the_target_changed(studio, monkeypatch):
    monkeypatch.chdir(ROOT)
    ask = lambda points, seed: studio.config("intensity", {"intensity_points": points}, {}, seed,  # noqa: E731
                                             "interactive", studio.new_run_dir())
    studio.generate(ask("0:-30", 5))
    same_seed = studio.generate(ask("0:-20", 5), warm=True)
    other_seed = studio.generate(ask("0:-20", 6), warm=True)
    assert same_seed.warm_start and not other_seed.warm_start
    assert "warm start" in json.loads((same_seed.run_dir / "ditto2-result.json").read_text())["notes"][0]
