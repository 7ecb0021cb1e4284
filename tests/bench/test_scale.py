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


def test_timed_steps_one_formula_for_step_and_compile_time():
    from ditto2.bench.scale import _timed_steps

    times = [10.0, 3.0, 1.0, 1.2, 0.8, 1.0]  # a compile, a warm-up step, then steady ~1 s steps
    assert _timed_steps(times, compiled=True) == {"step_s": 1.0, "steps_per_s": 1.0, "first_step_s": 10.0,
                                                  "compile_s": 9.0}
    assert _timed_steps(times, compiled=False)["compile_s"] == 0.0
    assert _timed_steps([4.0, 2.0], compiled=True)["step_s"] == 2.0  # <= 3 steps: only the first is left out
