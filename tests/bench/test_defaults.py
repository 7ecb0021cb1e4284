"""Per-control defaults: the picker chooses by the graded metric in the right direction, and the
committed experiment YAMLs hold what the committed validation sweep chose (what demo and bench use)."""
import json
from pathlib import Path

import pytest

from ditto2.bench.defaults import as_settings, check, pick, superseded
from ditto2.ito.surrogates import parse_m
from ditto2.runs.ito import decode_defaults, load_config

ROOT = Path(__file__).resolve().parents[2]


def _row(control, method, m, t, gamma, metric, value, secs=1.0):
    return {"table": "sweep", "control": control, "method": method, "M": m, "T": t, "gamma": gamma,
            "metric": metric, "value": value, "seconds_per_item": secs}


def test_pick_uses_the_metric_direction_and_breaks_ties_by_speed():
    rows = [_row("melody", "ditto2-ctm", 1, 2, 0.2, "melody_accuracy_pct", 60.0),
            _row("melody", "ditto2-ctm", 2, 4, 0.2, "melody_accuracy_pct", 70.0, secs=3.0),
            _row("intensity", "ditto2-ctm", 1, 2, 0.2, "intensity_mse_db2", 9.0),
            _row("intensity", "ditto2-ctm", 1, 1, 0.0, "intensity_mse_db2", 1.0, secs=2.0),
            _row("intensity", "ditto2-ctm", 2, 2, 0.0, "intensity_mse_db2", 1.01, secs=1.5),  # within 2 %, faster
            {**_row("intensity", "ditto2-ctm", 1, 1, 0.0, "intensity_mse_db2", 0.1), "table": "controls"}]  # not a sweep row
    w = pick(rows)
    assert (w["melody"]["ditto2-ctm"]["M"], w["melody"]["ditto2-ctm"]["T"]) == (2, 4)
    assert (w["intensity"]["ditto2-ctm"]["M"], w["intensity"]["ditto2-ctm"]["value"]) == (2, 1.01)
    assert pick(rows, tolerance=0.0)["intensity"]["ditto2-ctm"]["value"] == 1.0
    assert pick(rows, max_m=1)["melody"]["ditto2-ctm"]["M"] == 1 and pick(rows, max_m=1)["intensity"]["ditto2-ctm"]["M"] == 1


def test_pick_bounds_a_schedule_by_its_mean_m():
    """A schedule's cost is its mean M: '1:0.8,2' (1.2) passes a bound of 1.25, the adaptive one (1.75) does not;
    the winner's settings carry the schedule string (ints stay ints)."""
    rows = [_row("melody", "ditto2-ctm", 1, 1, 0.0, "melody_accuracy_pct", 60.0),
            _row("melody", "ditto2-ctm", "1:0.8,2", 2, 0.0, "melody_accuracy_pct", 70.0),
            _row("melody", "ditto2-ctm", "adaptive", 4, 0.0, "melody_accuracy_pct", 80.0)]
    assert pick(rows)["melody"]["ditto2-ctm"]["M"] == "adaptive"
    assert pick(rows, max_m=1.25)["melody"]["ditto2-ctm"]["M"] == "1:0.8,2"
    assert pick(rows, max_m=1)["melody"]["ditto2-ctm"]["M"] == 1
    assert as_settings(pick(rows, max_m=1.25)["melody"]["ditto2-ctm"])["m"] == "1:0.8,2"
    assert as_settings({"M": "2", "T": 2, "gamma": 0.0})["m"] == 2


def test_per_method_defaults_resolve_and_overrides_still_win(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("m: 1\ndecode_steps: 2\ngamma: 0.2\ndefaults_by_method: {ditto2-cm: {m: 2, decode_steps: 1}}\n")
    assert decode_defaults(str(y), "ditto2-ctm") == {"m": 1, "decode_steps": 2, "gamma": 0.2}
    assert decode_defaults(str(y), "ditto2-cm") == {"m": 2, "decode_steps": 1, "gamma": 0.2}
    assert load_config(str(y), ["method=ditto2-cm", "m=4"]).m == 4
    with pytest.raises(ValueError, match="unknown methods"):
        load_config(None, ["defaults_by_method={ditto3: {m: 1}}"])
    with pytest.raises(ValueError, match="split"):
        load_config(None, ["split=train"])


@pytest.mark.parametrize("folder", ["bench-defaults", "bench-students", "bench-steps"])
def test_committed_yamls_hold_the_committed_sweep_winners(folder):
    """(M, T, γ) from the first sweep, then the student (at those settings, by FAD) from the second, then the step."""
    sweep = ROOT / "results" / folder / "results.json"
    rows = json.loads(sweep.read_text())["rows"]
    rule = json.loads((sweep.parent / "winners.json").read_text())["rule"]
    winners = pick(rows, rule["tolerance"], rule["max_m"], rule.get("by_fad", False))
    entries = json.loads(sweep.read_text())["meta"]["config"]["sweep"]
    swept = {c for entry in entries for c in entry.get("controls") or [entry["control"]]}
    redone = superseded(sweep.parent)  # controls a later sweep chose again (melody's step, against DITTO's bar)
    for later in redone.values():
        assert set(json.loads((ROOT / later).read_text())["winners"]) <= set(redone), later
    rows = [r for r in rows if r["control"] not in redone]
    winners, swept = {c: w for c, w in winners.items() if c not in redone}, swept - set(redone)
    assert set(winners) == swept and (folder == "bench-steps" or swept | set(redone) >= {
        "intensity", "melody", "structure", "outpainting", "inpainting"})  # each control chosen here or again later
    assert check(winners, ROOT / "experiments" / "ito", rows) == []
    # the sweep graded validation material only, and scored FAD against validation clips
    meta = json.loads(sweep.read_text())["meta"]
    assert "split=val" in meta["config"]["overrides"] and meta["config"]["seed"] >= 1000
    assert meta.get("fad_reference_split", "val") == "val"


def test_the_bench_tables_use_the_per_control_defaults():
    from omegaconf import OmegaConf

    for name in ("tables-tiny.yaml", "tables-gpu.yaml"):
        assert OmegaConf.load(ROOT / "experiments" / "bench" / name).control_defaults == "experiments/ito", name


def test_every_ito_and_bench_yaml_resolves():
    """Each control's YAML loads; each bench table that reads control_defaults finds a YAML per control
    and method, and every sweep cell is [M, T] or [M, T, γ] with a known control."""
    from omegaconf import OmegaConf

    for path in sorted((ROOT / "experiments" / "ito").glob("*.yaml")):
        load_config(str(path))
    for path in sorted((ROOT / "experiments" / "bench").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        if cfg.get("control_defaults"):
            for control in cfg.controls:
                for method in cfg.get("methods") or []:
                    if method != "ditto":
                        assert decode_defaults(str(ROOT / cfg.control_defaults / f"{control}.yaml"), method)
        sweeps = cfg.get("sweep")
        for sw in ([] if not sweeps else sweeps if OmegaConf.is_list(sweeps) else [sweeps]):
            for control in sw.get("controls") or [sw.control]:
                assert control in cfg.get("controls", {"intensity": 70}), (path.name, control)
            assert all(len(cell) in (2, 3) for cell in sw.mt), path.name
            for cell in sw.mt:
                parse_m(cell[0])  # an int, "adaptive" or a schedule string, else a one-line error


def test_pick_by_fad_takes_the_lowest_fad_among_cells_not_measurably_worse():
    """Control first: a cell whose interval overlaps the best cell's competes on FAD; a clearly worse one never
    does, however good its FAD; a cell without FAD is out. The winner names its student."""
    def row(student, value, ci, fad, metric="intensity_mse_db2", control="intensity"):
        return {**_row(control, "ditto2-ctm", 1, 1, 0.0, metric, value), "value_ci95": ci, "fad": fad,
                "student": student}

    rows = [row("ckpt/ctm", 0.11, [0.07, 0.18], 0.486), row("ckpt/ctm-decode", 0.22, [0.10, 0.39], 0.372),
            row("ckpt/other", 4.9, [4.2, 5.6], 0.30), row("ckpt/nofad", 0.05, [0.01, 0.09], None),
            row("ckpt/ctm", 97.4, [96.1, 98.5], 0.46, "melody_accuracy_pct", "melody"),
            row("ckpt/ctm-decode", 93.0, [92.0, 94.0], 0.30, "melody_accuracy_pct", "melody")]
    w = pick(rows, by_fad=True)
    assert w["intensity"]["ditto2-ctm"]["student"] == "ckpt/ctm-decode"  # 0.22 overlaps 0.11's interval
    assert w["melody"]["ditto2-ctm"]["student"] == "ckpt/ctm"  # 93 % is measurably worse than 97.4 %
    assert pick(rows)["intensity"]["ditto2-ctm"]["student"] == "ckpt/nofad"  # the plain rule: best metric
    assert as_settings(w["intensity"]["ditto2-ctm"]) == {"m": 1, "decode_steps": 1, "gamma": 0.0,
                                                         "ctm": "ckpt/ctm-decode"}


def test_check_compares_the_student_bundle(tmp_path):
    (tmp_path / "intensity.yaml").write_text("m: 1\ndecode_steps: 1\ngamma: 0.0\nctm: ckpt/ctm\n")
    winner = {**_row("intensity", "ditto2-ctm", 1, 1, 0.0, "intensity_mse_db2", 0.2), "student": "ckpt/ctm-decode"}
    assert check({"intensity": {"ditto2-ctm": winner}}, tmp_path) != []
    (tmp_path / "intensity.yaml").write_text("m: 1\ndecode_steps: 1\ngamma: 0.0\nctm: ckpt/ctm-decode\n")
    assert check({"intensity": {"ditto2-ctm": winner}}, tmp_path) == []


def test_check_compares_the_step_size_only_where_the_sweep_compared_steps(tmp_path):
    (tmp_path / "melody.yaml").write_text("m: 1\ndecode_steps: 1\ngamma: 0.0\nlr: 0.04\n")
    rows = [{**_row("melody", "ditto2-ctm", 1, 1, 0.0, "melody_accuracy_pct", v), "lr": lr, "fad": fad,
             "value_ci95": [v - 1, v + 1]} for v, lr, fad in ((97.3, 0.04, 0.56), (97.1, 0.02, 0.50), (88.0, 0.005, 0.3))]
    w = pick(rows, by_fad=True)
    assert w["melody"]["ditto2-ctm"]["lr"] == 0.02  # not measurably worse than 0.04's, and a lower FAD
    assert check(w, tmp_path) == []  # rows not given: steps not compared
    assert check(w, tmp_path, rows) == [f"{tmp_path / 'melody.yaml'} gives ditto2-ctm {{'m': 1, 'decode_steps': 1, "
                                        f"'gamma': 0.0, 'lr': 0.04}}, the sweep chose {{'m': 1, 'decode_steps': 1, "
                                        f"'gamma': 0.0, 'lr': 0.02}}"]
    one_step = [r for r in rows if r["lr"] == 0.04]
    assert check(pick(one_step, by_fad=True), tmp_path, one_step) == []


def test_a_saved_run_config_reloads_to_the_values_the_run_used(tmp_path):
    """config.yaml holds the resolved values: the control YAML's per-method step is not applied a second time over a
    step the run chose otherwise (the interactive preset's 0.04 over melody's 0.01)."""
    from ditto2.runs.ito import save_config

    cfg = load_config(str(ROOT / "experiments/ito/melody.yaml"), ["lr=0.04"])
    assert cfg.lr == 0.04 and cfg.defaults_by_method["ditto2-ctm"]["lr"] == 0.01
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(str(tmp_path / "config.yaml")).lr == 0.04


def test_check_compares_the_envelope_prior_a_winner_ran_with(tmp_path):
    (tmp_path / "intensity.yaml").write_text("m: 1\ndecode_steps: 1\ngamma: 0.0\n")
    winner = {**_row("intensity", "ditto2-ctm", 1, 1, 0.0, "intensity_mse_db2", 0.2), "envelope_weight": 100.0}
    assert as_settings(winner)["envelope_weight"] == 100.0
    assert check({"intensity": {"ditto2-ctm": winner}}, tmp_path) == [
        f"{tmp_path / 'intensity.yaml'} gives ditto2-ctm {{'m': 1, 'decode_steps': 1, 'gamma': 0.0, 'envelope_weight': "
        f"0.0}}, the sweep chose {{'m': 1, 'decode_steps': 1, 'gamma': 0.0, 'envelope_weight': 100.0}}"]
    (tmp_path / "intensity.yaml").write_text("m: 1\ndecode_steps: 1\ngamma: 0.0\nenvelope_weight: 100\n")
    assert check({"intensity": {"ditto2-ctm": winner}}, tmp_path) == []
    assert "envelope_weight" not in as_settings({**winner, "envelope_weight": None})
    assert as_settings({**winner, "anchor_weight": 300.0})["anchor_weight"] == 300.0
    assert as_settings({**winner, "start_candidates": 16})["start_candidates"] == 16
    assert "start_candidates" not in as_settings({**winner, "start_candidates": 1})  # 1 = off
    assert as_settings({**winner, "optimizer": "adam-item"})["optimizer"] == "adam-item"
    assert "optimizer" not in as_settings({**winner, "optimizer": "adam"})  # the default
    assert check({"intensity": {"ditto2-ctm": {**winner, "optimizer": "adam-item"}}}, tmp_path)[0].endswith(
        "'envelope_weight': 100.0, 'optimizer': 'adam-item'}")


def test_pick_against_baseline_needs_the_bar_and_trades_control_only_for_a_measurable_fad_gain():
    """Steps by control (accuracy, higher is better): the bar drops what controls worse than the baseline on its items,
    and the walk from the best-controlling step moves down only where the FAD gain is measurable."""
    from ditto2.bench.defaults import pick_against_baseline

    cells = [{"lr": lr, "value": v, "value_bar": vb, "fad": f} for lr, v, vb, f in
             [(0.04, 98.3, 98.0, 0.56), (0.02, 97.8, 97.5, 0.51), (0.01, 95.6, 95.0, 0.48), (0.005, 86.8, 84.0, 0.47),
              (0.0025, 64.3, 65.0, 0.46)]]
    measurable = {(0.02, 0.04), (0.01, 0.02), (0.005, 0.01), (0.0025, 0.005)}
    lower = lambda a, b: (a["lr"], b["lr"]) in measurable  # noqa: E731
    assert pick_against_baseline(cells, 83.0, True, lower)["lr"] == 0.005  # every measurable step down, to the bar
    assert pick_against_baseline(cells, 90.0, True, lower)["lr"] == 0.01  # 0.005 is under the bar on its items
    assert pick_against_baseline(cells, 83.0, True, lambda a, b: (a["lr"], b["lr"]) == (0.02, 0.04))["lr"] == 0.02
    assert pick_against_baseline(cells, 83.0, True, lambda a, b: False)["lr"] == 0.04  # no gain: the best control
    assert pick_against_baseline(cells, 99.0, True, lower) is None
    # lower is better (e.g. dB²): the bar and the order flip
    down = [{**c, "value": -c["value"], "value_bar": -c["value_bar"]} for c in cells]
    assert pick_against_baseline(down, -90.0, False, lower)["lr"] == 0.01


@pytest.mark.parametrize("control, folder", [("melody", "melody-small"), ("outpainting", "outpainting"),
                                             ("inpainting", "inpainting")])
def test_step_is_the_one_chosen_against_dittos_bar(control, folder):
    """results/bench-steps/<folder>/winners.json (pick_step.py, validation items): the pick recomputed from its
    committed cells, bar and paired FAD intervals is the step experiments/ito/<control>.yaml gives DITTO-2 CTM, and the
    bar is DITTO's own on validation items."""
    from ditto2.bench.defaults import cell_key, cell_settings, pick_against_baseline
    from ditto2.controls import CONTROLS
    from ditto2.runs.ito import control_defaults

    higher = CONTROLS[control].higher_is_better
    w = json.loads((ROOT / "results" / "bench-steps" / folder / "winners.json").read_text())
    pairs = w["fad_pairs"]
    # a cell is a step, or a student and a step where the sweep compared students (pick_step.py's pair names)
    lower = lambda a, b: pairs[f"{cell_key(a)}-{cell_key(b)}"][1] < 0  # noqa: E731  (a pair the walk did not record: KeyError)
    win = pick_against_baseline(w["cells"], w["bar"]["value"], higher, lower)
    assert win is not None and w["winners"][control]["ditto2-ctm"] == cell_settings(win)
    assert w["bar"]["method"] == "ditto" and w["bar"]["items"] >= 16
    have = control_defaults(str(ROOT / "experiments" / "ito" / f"{control}.yaml"), "ditto2-ctm")
    assert have["lr"] == win["lr"]
    if "student" in win:  # the YAML decodes with the chosen student
        assert have["ctm"] == win["student"]
    from omegaconf import OmegaConf

    for name in (f"steps-{folder}-tiny.yaml", f"ditto-val-{control}-tiny.yaml"):  # both measured validation items
        cfg = OmegaConf.load(ROOT / "experiments" / "bench" / name)
        assert "split=val" in cfg.overrides and cfg.seed >= 1000, name
