"""The demo's whole code path on synth shards and small random models, in seconds."""
import json
import shutil

import pytest

from ditto2.demo import main
from ditto2.runs.ito import load_config


def test_demo_end_to_end(synth_tiny, teacher_tiny, student_bundles, clap_bundle, clap_judge_bundle, tagger_bundle,
                         tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for src, name in ((teacher_tiny, "teacher"), (student_bundles["cm"], "cm"), (student_bundles["ctm"], "ctm"),
                      (student_bundles["ctm"], "ctm-decode"), (clap_bundle, "clap"), (clap_judge_bundle, "clap-judge"),
                      (tagger_bundle, "tagger")):
        for ext in (".safetensors", ".json"):
            shutil.copy(str(src) + ext, models / (name + ext))
    out = tmp_path / "demo"
    defaults = tmp_path / "defaults"  # per-control (M, T, γ, step size): the demo must use exactly these
    defaults.mkdir()
    chosen = {"intensity": (1, 1, 0.0), "melody": (2, 2, 0.0), "structure": (1, 2, 0.2), "outpainting": (1, 1, 0.0),
              "inpainting": ("adaptive", 4, 0.2), "text": (1, 2, 0.0)}
    for i, (c, (m, t, g)) in enumerate(chosen.items()):
        (defaults / f"{c}.yaml").write_text(f"m: {m}\ndecode_steps: {t}\ngamma: {g}\nlr: {0.01 * (i + 1)}\n"
                                            # a control's own student: by its name, from the models folder
                                            + ("ctm: checkpoints/elsewhere/ctm-decode\n" if c == "melody" else ""))
    rc = main(["--models", str(models), "--shards", str(synth_tiny), "--out", str(out), "--steps", "2", "--items", "2",
               "--defaults", str(defaults), "--table", "", "--override", "base_steps=3", "tensorboard=false"])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["control"] for r in rows] == ["intensity", "melody", "structure", "outpainting", "inpainting", "text"]
    for r in rows:
        assert r["ditto_s"] > 0 and r["ditto2_s"] > 0
        if r["control"] == "text":  # the text control optimizes the demo's CLAP: that score is only ever self-graded
            assert r["ditto2_clap"] is None and r["ditto2_clap_self_graded"] is not None
            assert r["metric"] == "text_clap_judge_cosine"  # its grade comes from the models folder's judging CLAP
        else:
            assert r["ditto2_clap"] is not None and r["ditto2_clap_self_graded"] is None
        assert (out / r["control"] / "ditto.wav").exists() and (out / r["control"] / "ditto2.png").exists()
        m, t, g = chosen[r["control"]]
        assert r["settings"].startswith(f"M={m}, T={t}") and r["ditto2_n"] == 2
        assert r["settings"].endswith("student ctm-decode" if r["control"] == "melody" else "student ctm"), r["settings"]
        a, b = r["ditto2_metric"], r["ditto_metric"]  # the winner follows from the two numbers and the direction
        expect = "tie" if abs(a - b) <= 0.02 * max(abs(b), 1e-9) else ("DITTO-2" if (a > b) == r["higher_is_better"] else "DITTO")
        assert r["winner"] == expect, r
        assert r["higher_is_better"] == (r["control"] in ("melody", "text"))
        summary = json.loads((out / r["control"] / "ditto2" / "summary.json").read_text())
        assert (summary["M"], summary["T"], summary["gamma"]) == (m, t, g) and summary["batch"] == 2
        assert json.loads((out / r["control"] / "ditto" / "summary.json").read_text())["batch"] == 1
        lr = 0.01 * (list(chosen).index(r["control"]) + 1)  # DITTO-2 takes the control's step size, DITTO keeps 5e-3
        assert load_config(str(out / r["control"] / "ditto2" / "config.yaml")).lr == pytest.approx(lr)
        assert load_config(str(out / r["control"] / "ditto" / "config.yaml")).lr == 5e-3
    assert (out / "outpainting" / "reference.wav").exists()
    page = (out / "index.html").read_text()
    assert "<audio" in page and "speed-up" in page and (out / "README.md").exists()


def test_demo_says_how_to_get_missing_models(tmp_path, capsys):
    assert main(["--models", str(tmp_path), "--shards", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "make pretrain" in err and "make distill-ctm" in err


def test_demo_table_column_reads_the_committed_tables():
    """The demo's default --table files exist; DITTO comes from this machine's cells where they are done (else the GPU
    table), DITTO-2 (defaults, n = 160) from the CPU tables:
    with its chosen step sizes, DITTO-2 CTM beats DITTO's mean on every control there."""
    from pathlib import Path

    from ditto2.demo import COMMITTED_TABLES, _table_values

    root = Path(__file__).resolve().parents[1]
    tables = [root / t for t in COMMITTED_TABLES]  # DITTO-2 beside DITTO, steps, students, first defaults, DITTO here, GPU
    fast_tables, here, gpu = tables[:4], tables[4], tables[5]
    values = _table_values(tables)
    assert set(values) == {"intensity", "melody", "structure", "outpainting", "inpainting"}
    # each DITTO-2 number the page shows was made with the student (and, where the row says, the step) the control's
    # YAML names now
    from ditto2.runs.ito import control_defaults

    shown = {}
    for path in fast_tables:
        for r in json.loads(path.read_text())["rows"]:
            if r["table"] == "controls" and r["method"] == "ditto2-ctm":
                shown.setdefault(r["control"], r)
    assert shown["melody"]["lr"] == 0.01  # the step chosen against DITTO's bar with FAD (results/bench-steps/melody-small)
    for control, row in shown.items():
        now = control_defaults(str(root / "experiments/ito" / f"{control}.yaml"), "ditto2-ctm")
        assert now["ctm"] == row.get("student", "checkpoints/tiny/ctm"), control
        assert row.get("lr", now["lr"]) == now["lr"], control
    # DITTO on this machine where its cell is done (intensity, melody: the same 160 items), else the GPU table's
    ditto_here = {r["control"]: r["value"] for r in json.loads(here.read_text())["rows"] if r["method"] == "ditto"}
    assert {"intensity", "melody", "structure"} <= set(ditto_here)
    v = values["intensity"]
    assert v["ditto"] == ditto_here["intensity"] and v["n"] == 160 and v["ditto2"] < v["ditto"]
    ditto_gpu = {r["control"]: r["value"] for r in json.loads(gpu.read_text())["rows"]
                 if r["table"] == "controls" and r["method"] == "ditto"}
    for control, v in values.items():
        assert v["ditto"] == ditto_here.get(control, ditto_gpu[control]), control
    from ditto2.bench.defaults import higher_is_better

    for control, v in values.items():
        d, d2 = v["ditto"], v["ditto2"]
        assert (d2 >= d) if higher_is_better(f"{control}_x") else (d2 <= d), control
    # FAD only as a pair scored on one machine against one reference: intensity's (both cells on 2 CPU cores, the 259
    # disjoint test clips) shows DITTO ahead; a control whose DITTO cell is the GPU table's has none
    assert values["intensity"]["fad_ditto"] == 0.24296 and round(values["intensity"]["fad_ditto2"], 3) == 0.393
    # melody's (the same 160 items and reference; the step chosen against DITTO's bar) meets the issue's + 0.02
    assert values["melody"]["fad_ditto"] == 0.31747 and values["melody"]["fad_ditto2"] <= 0.31747 + 0.02
    # structure's DITTO cell finished here too (five runs of 32 items): DITTO-2 within DITTO's + 0.02 by the point estimate
    assert values["structure"]["fad_ditto"] == 0.21332 and values["structure"]["fad_ditto2"] <= 0.21332 + 0.02
    # outpainting's (five runs of 32 items) misses it, as intensity's does, at every step the validation sweep tried
    # (results/bench-steps/outpainting): a documented miss, not a pass
    assert values["outpainting"]["fad_ditto"] == 0.19009 and round(values["outpainting"]["fad_ditto2"], 3) == 0.244
    for control, v in values.items():
        assert (v["fad_ditto"] is None) == (control not in ditto_here) == (v["fad_ditto2"] is None), control


def test_demo_pairs_fads_only_when_scored_alike(tmp_path):
    """A FAD pair needs the same device kind, machine, reference split and size, and n; the GPU table's DITTO FAD is
    never set beside a CPU cell's."""
    from ditto2.demo import _table_values

    def table(name, method, device, clips, fad, n=160):
        path = tmp_path / f"{name}.json"
        row = {"table": "controls", "control": "intensity", "method": method, "device": device, "n": n,
               "value": 1.0, "fad": fad}
        path.write_text(json.dumps({"meta": {"machine": "x86_64", "fad_reference_split": "test",
                                             "fad_reference_clips": clips}, "rows": [row]}))
        return path

    fast = table("fast", "ditto2-ctm", "cpu", 259, 0.4)
    assert _table_values([fast, table("here", "ditto", "cpu", 259, 0.3)])["intensity"]["fad_ditto"] == 0.3
    for other in (table("gpu", "ditto", "cuda:0", 259, 0.3), table("ref", "ditto", "cpu", 512, 0.3),
                  table("n", "ditto", "cpu", 259, 0.3, n=96)):
        v = _table_values([fast, other])["intensity"]
        assert v["ditto"] == 1.0 and v["fad_ditto"] is None and v["fad_ditto2"] is None, other.name
    # the first file with a DITTO cell wins, as for the control metric
    v = _table_values([fast, table("gpu", "ditto", "cuda:0", 512, 0.3), table("here", "ditto", "cpu", 259, 0.2)])
    assert v["intensity"]["fad_ditto"] is None
