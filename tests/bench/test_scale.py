"""The paper-preset speed checks of the GPU script (python -m ditto2.bench.scale) on a CPU with a 1-step budget, so
the script cannot rot: both precisions through both stages, and the torch.compile wiring (the cheap "eager" backend;
the GPU run uses inductor) through a training step. (A compiled ITO step costs ~50 s of graph capture on 2 cores: it
runs on the GPU only.)"""
import json

from ditto2.bench.scale import main


def test_every_precision_runs_one_step_of_each_stage(teacher_tiny, tmp_path):
    out = tmp_path / "scale"
    assert main(["--preset", "tiny", "--steps", "1", "--batch", "1", "--compile", "off", "--contract", str(teacher_tiny),
                 "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["precision"], r["stage"]) for r in rows} == {
        (p, s) for p in ("32-true", "bf16-mixed") for s in ("pretrain", "ito-ditto2-ctm")}
    assert all(r["steps"] == 1 and r["step_s"] > 0 and r["peak_mb"] > 0 for r in rows)
    assert "| bf16-mixed | off | ito-ditto2-ctm |" in (out / "results.md").read_text()


def test_a_compiled_training_step_runs(teacher_tiny, tmp_path):
    out = tmp_path / "scale"
    assert main(["--preset", "tiny", "--steps", "1", "--batch", "1", "--precision", "bf16-mixed", "--compile", "eager",
                 "--stages", "pretrain", "--contract", str(teacher_tiny), "--out", str(out)]) == 0
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert row["compile"] == "eager" and row["steps"] == 1 and row["step_s"] > 0
