"""A benchmark cell spread over 2 processes merges into the cell one process computes (same runs, same seeds)."""
import json

import pytest

from ditto2.bench.ito import run_cell
from ditto2.runs.ito import ControlSpec, make_config


def test_a_cell_over_two_processes_equals_the_one_process_cell(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    ito = make_config(teacher=str(teacher_tiny), cm=str(student_bundles["cm"]), ctm=str(student_bundles["ctm"]),
                      shards=str(synth_tiny), controls=[ControlSpec(name="intensity")], steps=2, tensorboard=False,
                      report_items=0, device="cpu", engine="loop")
    one = run_cell(ito, n=4, batch=2, seed=3, out=str(tmp_path / "one"), devices=1, threads=2)
    two = run_cell(ito, n=4, batch=2, seed=3, out=str(tmp_path / "two"), devices=2, threads=2)
    assert one["runs"] == two["runs"] == 2 and two["devices"] == 2
    assert two["metrics_mean"].keys() == one["metrics_mean"].keys()
    for key, value in one["metrics_mean"].items():
        assert two["metrics_mean"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    # run j of both cells is the same run (seed 3 + j): its targets and loss curve match item by item
    for j in range(2):
        a, b = (json.loads((tmp_path / d / f"run{j:02d}" / "items.json").read_text()) for d in ("one", "two"))
        assert [x["target"] for x in a] == [x["target"] for x in b]
        assert [x["intensity_mse_db2"] for x in a] == pytest.approx([x["intensity_mse_db2"] for x in b], rel=1e-4)
