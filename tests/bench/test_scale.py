"""The paper-preset speed checks of the GPU script (python -m ditto2.bench.scale) on a CPU with a 1-step budget:
every setting it will run on a GPU (32-true and bf16-mixed, eager and compiled) goes through the same code here."""
import json

from ditto2.bench.scale import main


def test_every_setting_runs_one_step(teacher_tiny, tmp_path):
    out = tmp_path / "scale"
    assert main(["--preset", "tiny", "--steps", "1", "--batch", "1", "--compile", "off", "eager", "--contract",
                 str(teacher_tiny), "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["precision"], r["compile"], r["stage"]) for r in rows} == {
        (p, c, s) for p in ("32-true", "bf16-mixed") for c in ("off", "eager") for s in ("pretrain", "ito-ditto2-ctm")}
    assert all(r["steps"] == 1 and r["step_s"] > 0 and r["peak_mb"] > 0 for r in rows)
    assert "| bf16-mixed | eager | ito-ditto2-ctm |" in (out / "results.md").read_text()
