"""Items spread over 2 processes (`ditto2 ito --devices 2`, a bench YAML's `devices: 2`: the same runner) merge into
what one process computes: the same runs (seed, seed + 1, ...), the same items, the same means."""
import json

import pytest

from ditto2.bench.ito import run_cell
from ditto2.cli import main
from ditto2.runs.ito import ControlSpec, make_config


def test_a_batch_over_two_processes_equals_the_one_process_cell(synth_tiny, teacher_tiny, student_bundles, tmp_path):
    common = dict(teacher=str(teacher_tiny), cm=str(student_bundles["cm"]), ctm=str(student_bundles["ctm"]),
                  shards=str(synth_tiny), steps=2, tensorboard=False, report_items=0, device="cpu", engine="loop")
    one = run_cell(make_config(controls=[ControlSpec(name="intensity")], **common), n=4, batch=2, seed=3,
                   out=str(tmp_path / "one"), devices=1, threads=2)
    assert main(["ito", *(f"{k}={v}" for k, v in common.items()), "batch=4", "seed=3", f"out={tmp_path / 'two'}",
                 "--devices", "2"]) == 0
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert one["runs"] == two["runs"] == 2 and two["devices"] == 2 and two["n"] == 4
    assert two["metrics_mean"].keys() == one["metrics_mean"].keys()
    for key, value in one["metrics_mean"].items():
        assert two["metrics_mean"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    # run j of both is the same run (seed 3 + j): its targets and grades match item by item
    for j in range(2):
        a, b = (json.loads((tmp_path / d / f"run{j:02d}" / "items.json").read_text()) for d in ("one", "two"))
        assert [x["target"] for x in a] == [x["target"] for x in b]
        assert [x["intensity_mse_db2"] for x in a] == pytest.approx([x["intensity_mse_db2"] for x in b], rel=1e-4)


def test_a_stopped_cell_resumes_at_its_first_unfinished_run(synth_tiny, teacher_tiny, student_bundles, tmp_path,
                                                            monkeypatch, capsys):
    """Runs that finished with the same config are kept (a DITTO cell on 2 cores spans sessions); a run stopped
    midway (no summary.json) or one made with another config is redone."""
    import ditto2.runs.ito as ito

    common = dict(teacher=str(teacher_tiny), cm=str(student_bundles["cm"]), ctm=str(student_bundles["ctm"]),
                  shards=str(synth_tiny), steps=2, tensorboard=False, report_items=0, device="cpu", engine="loop",
                  controls=[ControlSpec(name="intensity")])
    out = str(tmp_path / "cell")
    first = run_cell(make_config(**common), n=6, batch=2, seed=3, out=out)
    calls, real = [], ito.run_ito
    monkeypatch.setattr(ito, "run_ito", lambda cfg: calls.append(cfg.out) or real(cfg))
    (tmp_path / "cell" / "run01" / "summary.json").unlink()  # run 1 was stopped before it finished
    again = run_cell(make_config(**common), n=6, batch=2, seed=3, out=out)
    assert calls == [f"{out}/run01"]
    assert again["metrics_mean"] == pytest.approx(first["metrics_mean"], rel=1e-4)
    calls.clear()
    import shutil

    shutil.copytree(out, tmp_path / "moved")  # the same runs under another cell name: still finished
    run_cell(make_config(**common), n=6, batch=2, seed=3, out=str(tmp_path / "moved"))
    assert calls == []
    saved = tmp_path / "moved" / "run00" / "config.yaml"  # a run made before a setting existed (at its default now)
    saved.write_text("\n".join(line for line in saved.read_text().splitlines() if not line.startswith("gradient_clip:")))
    capsys.readouterr()
    run_cell(make_config(**common), n=6, batch=2, seed=3, out=str(tmp_path / "moved"))
    assert calls == []
    run_cell(make_config(**{**common, "lr": 0.01}), n=6, batch=2, seed=3, out=out)  # another config: all redone
    assert calls == [f"{out}/run00", f"{out}/run01", f"{out}/run02"]
    assert f"{out}/run02: 2 items in" in capsys.readouterr().out  # a long cell says where it is
