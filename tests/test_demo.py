"""The demo's whole code path on synth shards and small random models, in seconds."""
import json
import shutil

from ditto2.demo import main


def test_demo_end_to_end(synth_tiny, teacher_tiny, student_bundles, clap_bundle, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for src, name in ((teacher_tiny, "teacher"), (student_bundles["cm"], "cm"), (student_bundles["ctm"], "ctm"),
                      (clap_bundle, "clap")):
        for ext in (".safetensors", ".json"):
            shutil.copy(str(src) + ext, models / (name + ext))
    out = tmp_path / "demo"
    rc = main(["--models", str(models), "--shards", str(synth_tiny), "--out", str(out), "--steps", "2",
               "--override", "base_steps=3", "tensorboard=false"])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["control"] for r in rows] == ["intensity", "melody", "structure", "outpainting", "inpainting", "text"]
    for r in rows:
        assert r["ditto_s"] > 0 and r["ditto2_s"] > 0 and r["ditto2_clap"] is not None
        assert (out / r["control"] / "ditto.wav").exists() and (out / r["control"] / "ditto2.png").exists()
    assert (out / "outpainting" / "reference.wav").exists()
    page = (out / "index.html").read_text()
    assert "<audio" in page and "speed-up" in page and (out / "README.md").exists()


def test_demo_says_how_to_get_missing_models(tmp_path, capsys):
    assert main(["--models", str(tmp_path), "--shards", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "make pretrain" in err and "make distill-ctm" in err
