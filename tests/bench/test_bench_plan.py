"""The benchmark's cells come from its YAML alone: table order, per-control defaults, --only / --no-*."""
import pytest

from ditto2.bench.ito import load_bench_config, plan
from ditto2.runs.ito import control_defaults, make_config

ORDER = ["controls", "sweep", "text", "domain"]


def test_plan_lists_every_cell_in_table_order_with_the_per_control_defaults():
    cfg = load_bench_config("experiments/bench/tables-tiny.yaml")
    cells = plan(cfg)
    tables = [c["table"] for c in cells]
    assert tables == sorted(tables, key=ORDER.index) and "controls" in tables
    students = [c for c in cells if c["table"] == "controls" and c["label"] != "ditto"]
    assert students
    for c in students:  # (M, T, γ) and the step size of the control's YAML
        chosen = control_defaults(f"experiments/ito/{c['control']}.yaml", c["changes"]["method"])
        assert {k: c["changes"][k] for k in chosen} == chosen and "lr" in chosen, c
    assert all("lr" not in c["changes"] for c in cells if c["label"] == "ditto")  # DITTO keeps the table's
    for c in cells:  # every cell is a valid ITO config
        make_config(controls=[{"name": c["control"], "domain": c["domain"]}], **c["changes"])


def test_only_and_skip_leave_cells_out():
    cfg = load_bench_config("experiments/bench/tables-tiny.yaml")
    cells = plan(cfg, only=["melody"], skip={"sweep", "text", "domain"})
    assert cells and {c["control"] for c in cells} == {"melody"} and {c["table"] for c in cells} == {"controls"}
    assert len(cells) == len(cfg.methods)


def test_ditto_takes_its_own_step_only_where_the_yaml_has_one(tmp_path):
    """defaults_by_method: {ditto: {lr}} (a tuned baseline) reaches the DITTO cells; without it DITTO keeps the table's."""
    import shutil

    from ditto2.runs.ito import baseline_step

    for name in ("intensity", "melody"):
        shutil.copy(f"experiments/ito/{name}.yaml", tmp_path / f"{name}.yaml")
    tuned = tmp_path / "intensity.yaml"
    tuned.write_text(tuned.read_text().replace("defaults_by_method: {", "defaults_by_method: {ditto: {lr: 3.0e-2}, "))
    assert baseline_step(str(tuned)) == {"lr": 0.03} and baseline_step(str(tmp_path / "melody.yaml")) == {}
    cfg = load_bench_config("experiments/bench/win-gpu.yaml")  # DITTO and both students
    cfg.control_defaults = str(tmp_path)
    ditto = {c["control"]: c["changes"] for c in plan(cfg, only=["intensity", "melody"], skip={"sweep", "text", "domain"})
             if c["label"] == "ditto"}
    assert ditto["intensity"]["lr"] == 0.03 and "lr" not in ditto["melody"]
    from ditto2.runs.ito import load_config

    assert load_config(str(tuned), ["method=ditto"]).lr == 0.03  # `ditto2 ito --config` agrees with the table


def test_ditto2_bench_passes_its_options_on(monkeypatch):
    """`ditto2 bench --config C --set k=v --out D` reaches the bench's own parser whole; other commands still refuse
    options they do not know."""
    import pytest

    import ditto2.bench.ito as bench
    from ditto2.cli import main

    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert main(["bench", "--config", "c.yaml", "--set", "ctm=p", "--out", "o"]) == 0
    assert main(["bench", "--config", "c.yaml", "--only", "intensity", "--no-sweep"]) == 0
    assert seen == [["--config", "c.yaml", "--set", "ctm=p", "--out", "o"],
                    ["--config", "c.yaml", "--only", "intensity", "--no-sweep"]]
    with pytest.raises(SystemExit):
        main(["shards-subset", "a", "b", "--bogus"])


def test_a_sweep_compares_students_cell_by_cell():
    """A sweep entry's students: every (M, T, γ) cell once per bundle, the bundle in the cell's ITO config and
    its label; rows then name the student (Bench.record) for the defaults picker."""
    cfg = load_bench_config("experiments/bench/tables-tiny.yaml")
    cfg.controls, cfg.methods, cfg.text, cfg.domains = {"intensity": 70}, [], None, None
    cfg.sweep = {"controls": ["intensity"], "method": "ditto2-ctm", "mt": [[1, 1, 0.0], [1, 2, 0.0]],
                 "students": ["checkpoints/tiny/ctm", "checkpoints/tiny/ctm-decode"]}
    cells = plan(cfg)
    assert [c["changes"]["ctm"] for c in cells] == ["checkpoints/tiny/ctm"] * 2 + ["checkpoints/tiny/ctm-decode"] * 2
    assert [c["label"] for c in cells] == ["ditto2-ctm M=1 T=1 γ=0.0 ctm", "ditto2-ctm M=1 T=2 γ=0.0 ctm",
                                           "ditto2-ctm M=1 T=1 γ=0.0 ctm-decode", "ditto2-ctm M=1 T=2 γ=0.0 ctm-decode"]
    for c in cells:
        assert make_config(controls=[{"name": "intensity"}], **c["changes"]).ctm == c["changes"]["ctm"]
    cfg.sweep["student"] = cfg.sweep.pop("students")  # a typo fails before any compute
    with pytest.raises(ValueError, match="unknown keys"):
        plan(cfg)


def test_a_sweep_compares_step_sizes_cell_by_cell():
    """A sweep entry's lrs: every cell once per (student, step size), the step in the cell's ITO config and label."""
    cfg = load_bench_config("experiments/bench/tables-tiny.yaml")
    cfg.controls, cfg.methods, cfg.text, cfg.domains = {"intensity": 70}, [], None, None
    cfg.sweep = {"controls": ["intensity"], "method": "ditto2-ctm", "mt": [[1, 1, 0.0]],
                 "students": ["checkpoints/tiny/ctm-decode"], "lrs": [0.005, "1e-2"]}
    cells = plan(cfg)
    assert [c["changes"]["lr"] for c in cells] == [0.005, 0.01]
    assert [c["label"] for c in cells] == ["ditto2-ctm M=1 T=1 γ=0.0 ctm-decode lr=0.005",
                                           "ditto2-ctm M=1 T=1 γ=0.0 ctm-decode lr=0.01"]
    assert make_config(controls=[{"name": "intensity"}], **cells[1]["changes"]).lr == 0.01
    cfg.sweep["lrs"] = [0.01, 0]
    with pytest.raises(ValueError, match="positive step sizes"):
        plan(cfg)


def test_a_sweep_compares_teacher_refinements_cell_by_cell():
    """A sweep entry's refine: every student cell once per σ (0 = the student's decode as is), σ in config and label."""
    cfg = load_bench_config("experiments/bench/tables-tiny.yaml")
    cfg.controls, cfg.methods, cfg.text, cfg.domains = {"intensity": 70}, [], None, None
    cfg.sweep = {"controls": ["intensity"], "method": "ditto2-ctm", "mt": [[1, 1, 0.0]], "lrs": [0.02],
                 "refine": [0, 0.5]}
    cells = plan(cfg)
    assert [c["changes"]["refine_sigma"] for c in cells] == [0.0, 0.5]
    assert [c["label"] for c in cells] == ["ditto2-ctm M=1 T=1 γ=0.0 lr=0.02 refine=0",
                                           "ditto2-ctm M=1 T=1 γ=0.0 lr=0.02 refine=0.5"]
    assert make_config(controls=[{"name": "intensity"}], **cells[1]["changes"]).refine_sigma == 0.5
    cfg.sweep["refine"] = [-1]
    with pytest.raises(ValueError, match="refine"):
        plan(cfg)


def test_a_sweep_compares_anchor_priors_cell_by_cell():
    """A sweep entry's anchor: every cell once per weight, the weight in config and label; negative weights refused."""
    cfg = load_bench_config("experiments/bench/anchor-tiny.yaml")
    cells = plan(cfg)
    assert [c["changes"]["anchor_weight"] for c in cells] == [100.0, 300.0, 1000.0]
    assert cells[1]["label"] == "ditto2-ctm M=1 T=1 γ=0.0 ctm-decode lr=0.02 anchor=300"
    assert make_config(controls=[{"name": "intensity"}], **cells[1]["changes"]).anchor_weight == 300.0
    cfg.sweep[0]["anchor"] = [-1]
    with pytest.raises(ValueError, match="anchor weights"):
        plan(cfg)


def test_a_sweep_compares_smoothing_cell_by_cell():
    """A sweep entry's smooth: every cell once per σ (0 = off), σ in config and label; negative σ's refused."""
    cfg = load_bench_config("experiments/bench/smooth-tiny.yaml")
    cells = plan(cfg)
    assert [c["changes"]["smooth_sigma"] for c in cells] == [0.3, 0.6]
    assert cells[0]["label"] == "ditto2-ctm M=1 T=1 γ=0.0 ctm-decode lr=0.02 smooth=0.3"
    assert make_config(controls=[{"name": "intensity"}], **cells[0]["changes"]).smooth_sigma == 0.3
    cfg.sweep[0]["smooth"] = [-0.1]
    with pytest.raises(ValueError, match="smoothing"):
        plan(cfg)


def test_a_sweep_compares_envelope_priors_cell_by_cell():
    """A sweep entry's envelope: every cell once per weight (0 = off), the weight in config and label."""
    cfg = load_bench_config("experiments/bench/envelope-tiny.yaml")
    cells = plan(cfg)
    assert [c["changes"]["envelope_weight"] for c in cells] == [0.0, 30.0, 100.0, 300.0]
    assert cells[2]["label"] == "ditto2-ctm M=1 T=1 γ=0.0 ctm-decode lr=0.02 envelope=100"
    assert make_config(controls=[{"name": "intensity"}], **cells[2]["changes"]).envelope_weight == 100.0
    cfg.sweep[0]["envelope"] = [-1]
    with pytest.raises(ValueError, match="envelope weights"):
        plan(cfg)


def test_a_sweep_compares_best_of_n_starts_cell_by_cell():
    """A sweep entry's starts: every cell once per candidate count, the count in config and label; counts < 1 refused."""
    cfg = load_bench_config("experiments/bench/starts-tiny.yaml")
    cells = plan(cfg)
    assert [c["changes"]["start_candidates"] for c in cells] == [4, 16, 64]
    assert cells[1]["label"] == "ditto2-ctm M=1 T=1 γ=0.0 ctm-decode lr=0.02 starts=16"
    assert make_config(controls=[{"name": "intensity"}], **cells[1]["changes"]).start_candidates == 16
    cfg.sweep[0]["starts"] = [0]
    with pytest.raises(ValueError, match="candidate counts"):
        plan(cfg)


def test_a_sweep_compares_noise_optimizers_cell_by_cell():
    """A sweep entry's optimizers: every cell once per optimizer, the name in config and label; unknown names refused."""
    cfg = load_bench_config("experiments/bench/optimizer-tiny.yaml")
    cells = plan(cfg)
    assert [c["changes"]["optimizer"] for c in cells] == ["adam", "adam-item"]
    assert cells[1]["label"] == "ditto2-ctm M=1 T=1 γ=0.0 ctm-decode lr=0.02 adam-item"
    assert make_config(controls=[{"name": "intensity"}], **cells[1]["changes"]).optimizer == "adam-item"
    cfg.sweep[0]["optimizers"] = ["sgd"]
    with pytest.raises(ValueError, match="optimizers"):
        plan(cfg)


def test_a_subset_run_into_a_folder_keeps_the_rows_it_does_not_redo():
    """kept_rows: earlier rows of cells this run did not redo stay (in order), a redone cell's row is replaced, and this
    run's rows follow."""
    from ditto2.bench.ito import kept_rows

    row = lambda control, value, label="ditto2-ctm": {"table": "controls", "control": control, "label": label,  # noqa: E731
                                                     "value": value}
    before = [row("intensity", 0.87), row("melody", 90.0), row("intensity", 5.75, "ditto")]
    after = kept_rows(before, [row("melody", 97.3)])
    assert after == [row("intensity", 0.87), row("intensity", 5.75, "ditto"), row("melody", 97.3)]
    assert kept_rows([], [row("melody", 97.3)]) == [row("melody", 97.3)]
