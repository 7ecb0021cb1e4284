"""The README's promise: a control is one file plus one registry line, and the runner, its per-control
report callback and the config checks find it by name (examples/brightness.py)."""
import importlib.util
import json
from pathlib import Path

import pytest

from ditto2.controls import CONTROLS
from ditto2.runs.ito import load_config, run_ito

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "brightness.py"


def load_example():
    spec = importlib.util.spec_from_file_location("brightness_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BrightnessControl


def test_a_control_added_by_one_registry_line_runs_end_to_end(synth_tiny, teacher_tiny, student_bundles, tmp_path,
                                                              monkeypatch):
    over = [f"teacher={teacher_tiny}", f"ctm={student_bundles['ctm']}", f"shards={synth_tiny}", "batch=2", "steps=4",
            "lr=0.05", f"out={tmp_path}", "tensorboard=false", "controls=[{name: brightness, target: {khz: 1.5}}]"]
    with pytest.raises(ValueError, match="unknown control 'brightness'"):
        load_config(None, over)
    monkeypatch.setitem(CONTROLS, "brightness", load_example())  # the one registry line
    summary = run_ito(load_config(None, over))
    assert summary["loss_end"] < summary["loss_start"], summary
    item = json.loads((tmp_path / "item_00" / "result.json").read_text())
    assert "brightness_centroid_mse_khz2" in item["metrics"] and item["targets"]["brightness"] == "centroid 1.5 kHz"
    assert (tmp_path / "item_00" / "brightness.png").exists()
