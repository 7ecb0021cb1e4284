"""`ditto2 bench` end to end on small random models: every table well formed, FAD where n > dim."""
import csv
import json
import math

import pytest
import torch

from ditto2.bench.ito import main
from ditto2.metrics.fad import FrechetAudioDistance


def test_bench_writes_every_table_with_fad(synth_eval, teacher_tiny, student_bundles, clap_bundle, laion_clap_dir,
                                           clap_judge_bundle, tagger_bundle, tmp_path):
    n_test = json.loads((synth_eval / "index.json").read_text())["splits"]["test"]["n_clips"]
    assert n_test > 17, n_test
    out = tmp_path / "out"
    cfg = tmp_path / "bench.yaml"
    # n = 17 > the test CLAP's 16 dimensions, in batches of 9 (two runs per cell: 9 + 8)
    cfg.write_text(
        "n: 17\nbatch: 9\nthreads: 1\nisolate: false\nreport_items: 1\n"
        f"out: {out}\n"
        "controls: {intensity: 2}\nmethods: [ditto, ditto2-ctm]\n"
        "sweep: {control: intensity, method: ditto2-ctm, mt: [[adaptive, 2]]}\n"
        "text: {steps: 2, rows: [[base, ditto, 0, reference], [ditto2-tags, ditto2-ctm, null, reference], "
        "[ditto2-null, ditto2-ctm, null, 'null']]}\n"
        "domains: null\n"
        f"overrides: [teacher={teacher_tiny}, cm={student_bundles['cm']}, ctm={student_bundles['ctm']}, "
        f"shards={synth_eval}, clap={clap_bundle}, laion_clap={laion_clap_dir}, tags=reference, "
        f"clap_judge={clap_judge_bundle}, tagger={tagger_bundle}]\n")
    assert main(["--config", str(cfg), "--set", "base_steps=3"]) == 0  # --set: after the YAML's overrides
    result = json.loads((out / "results.json").read_text())
    rows, meta = result["rows"], result["meta"]
    # the FAD reference: test clips no cell drew (seeds 0, 1 with batches 9, 8), less 17 more for the real-vs-real floor
    from ditto2.metrics.reference import reference_embeddings, target_clip_ids

    drawn = target_clip_ids(synth_eval, "test", [0, 1], [9, 8])
    assert meta["fad_reference_excluded_clips"] == len(drawn) and meta["fad_floor_n"] == 17
    assert meta["fad_reference_clips"] == n_test - len(drawn) - 17 and meta["fad_floor"] >= 0
    assert [(r["table"], r["label"]) for r in rows] == [
        ("controls", "ditto"), ("controls", "ditto2-ctm"), ("sweep", "ditto2-ctm M=adaptive T=2"), ("text", "base"),
        ("text", "ditto2-tags"), ("text", "ditto2-null"), ("text", "real clips")]
    real = rows.pop()  # the graders on the floor's 17 real clips, against their own captions
    assert real["method"] == "real" and real["n"] == 17 and real["value"] == real["clap_judge_score"]
    assert 0 <= real["genre_acc"] <= 1 and 0 <= real["text_tempo_within_8pct"] <= 1
    for r in rows:
        assert r["n"] == 17 and r["batch"] == 9 and r["seconds_per_item"] > 0 and r["lr"] > 0  # the step it ran at
        assert r["fad"] is not None and r["fad"] >= 0 and math.isfinite(r["fad"]) and r["fad_floor"] == meta["fad_floor"]
        lo, hi = r["value_ci95"]  # the spread of the mean over 17 items, and of the FAD over 17 generations
        assert lo <= r["value"] <= hi and r["fad_ci95"][0] < r["fad_ci95"][1]
        assert -1 <= r["clap_score"] <= 1 and -1 <= r["clap_score_laion"] <= 1
        assert r["fad_laion"] is not None and r["fad_laion"] >= 0  # 16-d tiny LAION CLAP, n = 17
        assert r["fad_judge"] >= 0 and r["fad_judge_floor"] >= 0 and -1 <= r["clap_judge_score"] <= 1
        assert 0 <= r["genre_acc"] <= 1 and 0 <= r["mood_acc"] <= 1  # the tagger, on every row with captions
    assert rows[0]["speedup_vs_ditto"] == 1.0 and rows[0]["T"] == 3 and rows[1]["T"] == 2  # DITTO's T: --set base_steps
    text = {r["label"]: r for r in rows if r["table"] == "text"}
    assert text["base"]["K"] == 0 and text["base"]["loss_start"] == text["base"]["loss_end"]
    assert text["base"]["condition"] == "tags" and text["ditto2-null"]["condition"] == "null"
    # the text rows' grade is the judge's (not the CLAP they optimized): the same number as the row's judge score
    assert all(r["metric"] == "text_clap_judge_cosine" and r["value"] == pytest.approx(r["clap_judge_score"], abs=2e-4)
               for r in text.values())
    # the cell FAD is the FAD of its pooled embeddings (two runs) against the reference set
    emb = torch.load(out / "runs" / "controls-intensity-ditto2-ctm" / "embeddings.pt")
    assert emb.shape == (17, 16)
    m = FrechetAudioDistance(16)
    m.update(reference_embeddings(synth_eval, clap_bundle, meta["fad_reference_clips"], exclude=drawn), real=True)
    m.update(emb, real=False)
    assert rows[1]["fad"] == pytest.approx(float(m.compute()), abs=6e-6)  # the row keeps 5 decimals
    md = (out / "results.md").read_text()
    assert "Table 1" in md and "Table 2" in md and "Table 3" in md and md.count("| intensity |") == 3
    assert "fad_laion" in md and "LAION" in md
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows) + 1  # + the real clips row
    assert (out / "fig4_intensity.png").exists() and (out / "fig5_intensity.png").exists()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    # each run graded every item but wrote files for report_items of them
    run = out / "runs" / "controls-intensity-ditto" / "run00"
    assert len(json.loads((run / "items.json").read_text())) == 9 and sorted(p.name for p in run.glob("item_*")) == ["item_00"]
    # a subset run into the same folder (finished runs are kept, so nothing is recomputed) redoes its rows, keeps the rest
    assert main(["--config", str(cfg), "--set", "base_steps=3", "--only", "intensity", "--no-sweep", "--no-text"]) == 0
    again = json.loads((out / "results.json").read_text())["rows"]
    assert sorted((r["table"], r["label"]) for r in again) == sorted((r["table"], r["label"]) for r in [*rows, real])
    assert [r["value"] for r in again if r["table"] == "controls"] == [r["value"] for r in rows[:2]]
    # --k: every control's K for this call (new cells, since K is part of a run's config), into another folder
    assert main(["--config", str(cfg), "--set", "base_steps=3", "--only", "intensity", "--no-sweep", "--no-text",
                 "--k", "1", "--out", str(tmp_path / "k1")]) == 0
    k1 = json.loads((tmp_path / "k1" / "results.json").read_text())["rows"]
    assert [r["K"] for r in k1 if r["table"] == "controls"] == [1, 1]


def test_bench_leaves_fad_blank_when_n_is_not_above_the_dimension(synth_eval, teacher_tiny, student_bundles,
                                                                  clap_bundle, tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(
        f"n: 4\nbatch: 4\nthreads: 1\nisolate: false\nout: {out}\n"
        "controls: {melody: 2}\nmethods: [ditto2-cm]\nsweep: null\ntext: null\n"
        "domains: {controls: [melody], method: ditto2-ctm}\n"
        f"overrides: [teacher={teacher_tiny}, cm={student_bundles['cm']}, ctm={student_bundles['ctm']}, "
        f"shards={synth_eval}, clap={clap_bundle}]\n")
    assert main(["--config", str(cfg)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["table"], r["domain"]) for r in rows] == [("controls", "mel"), ("domain", "audio")]
    assert all(r["fad"] is None and r["metric"] == "melody_accuracy_pct" for r in rows)
    assert "blank when n <= the embedding dimension" in (out / "results.md").read_text()


def _fake_row(table, control, label, method, seconds, value):
    return {"table": table, "control": control, "label": label, "method": method, "condition": "tags", "domain": "mel",
            "K": 70, "M": 1, "T": 20 if method == "ditto" else 2, "n": 160, "batch": 160, "seconds_per_item": seconds,
            "metric": "m", "value": value, "clap_score": 0.3, "fad": 0.4}


def test_merge_orders_rows_like_the_paper_and_recomputes_speedups(tmp_path):
    from ditto2.bench.ito import merge

    def write(name, rows, skipped):
        d = tmp_path / name
        d.mkdir()
        meta = {"machine": "x86_64", "threads": 8, "n": 160, "batch": 160, "config": {"isolate": False},
                "skipped": skipped, "wall_minutes": 2.0}
        (d / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}))
        return str(d)

    a = write("a", [_fake_row("controls", "melody", "ditto2-ctm", "ditto2-ctm", 0.01, 80.0),
                    _fake_row("controls", "intensity", "ditto", "ditto", 0.5, 4.0)], ["controls-melody-ditto"])
    b = write("b", [_fake_row("text", "text", "base", "ditto", 0.002, 0.5),
                    _fake_row("controls", "melody", "ditto", "ditto", 0.4, 87.0),
                    _fake_row("controls", "melody", "ditto2-ctm", "ditto2-ctm", 0.02, 10.0)], [])
    merge([a, b], tmp_path / "m")
    result = json.loads((tmp_path / "m" / "results.json").read_text())
    rows = result["rows"]
    assert [(r["control"], r["label"], r["source"]) for r in rows] == [
        ("intensity", "ditto", "a"), ("melody", "ditto", "b"), ("melody", "ditto2-ctm", "a"), ("text", "base", "b")]
    assert rows[2]["value"] == 80.0 and rows[2]["speedup_vs_ditto"] == 40.0  # first of duplicate cells wins
    assert result["meta"]["skipped"] == [] and result["meta"]["wall_minutes"] == 4.0
    md = (tmp_path / "m" / "results.md").read_text()
    assert "Merged from a (2 cells, 2.0 min), b (3 cells, 2.0 min)" in md and "Table 3" in md
    assert (tmp_path / "m" / "fig4_melody.png").exists()


def test_paper_speed_script_on_the_tiny_preset(tmp_path):
    from ditto2.bench.paper_speed import main as speed_main

    assert speed_main(["--preset", "tiny", "--probe-steps", "2", "2", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["method"], r["T"]) for r in rows] == [("ditto", 20), ("ditto2-ctm", 2)]
    assert all(r["step_s"] > 0 and r["projected_s_K70"] > r["decode_s"] for r in rows)
    assert "tiny preset" in (tmp_path / "results.md").read_text()


def test_fad_reference_and_floor_come_from_the_items_split(monkeypatch, tmp_path):
    """Validation items (choosing a default) are scored against validation clips, never the test clips that
    later grade the default; test items keep the test reference. The targets drawn are left out either way."""
    from types import SimpleNamespace

    import ditto2.data.heldout as heldout
    import ditto2.metrics.reference as reference
    from ditto2.bench.ito import Bench, BenchConfig

    calls = []
    clips = [{"clip_id": f"c{i}"} for i in range(40)]

    def targets(shards, split, seeds, sizes):
        calls.append(("targets", split))
        return {"c0", "c1"}

    def order(shards, split="test", seed=0, exclude=()):
        calls.append(("order", split))
        return [c for c in clips if c["clip_id"] not in exclude]

    def ref_set(shards, claps, n=None, split="test", skip=0, exclude=(), **kw):
        calls.append(("reference", split, n, skip))
        g = torch.Generator().manual_seed(skip)
        return SimpleNamespace(embeddings={"clap": torch.randn(n, 3, generator=g)}, rows=list(range(n)), waves=None)

    monkeypatch.setattr(reference, "target_clip_ids", targets)
    monkeypatch.setattr(heldout, "clip_order", order)
    monkeypatch.setattr(reference, "reference_set", ref_set)
    for split in ("val", "test"):
        calls.clear()
        cfg = BenchConfig(n=10, batch=5, overrides=[f"split={split}", f"shards={tmp_path}", f"clap={tmp_path}"])
        bench = Bench(cfg, tmp_path / split)
        # 38 clips left after the 2 targets: 28 for the reference, 10 for the floor, all of the items' split
        assert calls == [("targets", split), ("order", split), ("reference", split, 28, 0),
                         ("reference", split, 10, 28)]
        assert bench.meta["fad_reference_split"] == split and bench.meta["fad_reference_clips"] == 28
        assert bench.meta["fad_floor"] is not None


def test_finished_runs_and_targets_read_only_a_cells_first_finished_runs(tmp_path):
    """Committed cells are read item by item: summaries, embeddings and targets of the finished runs, pooled in order;
    an unfinished run after them is left out, a gap before a finished one is an error."""
    import json

    import pytest
    import torch
    from safetensors.torch import save_file

    from ditto2.bench.ito import finished_runs, finished_targets

    for i, finished in enumerate((True, True, False)):
        run = tmp_path / f"run{i:02d}"
        run.mkdir()
        save_file({"intensity": torch.full((2, 5), float(i))}, run / "targets.safetensors")
        save_file({"audio": torch.full((2, 3), float(i))}, run / "embeddings.safetensors")
        if finished:
            (run / "summary.json").write_text(json.dumps({"items": [{"k": i}, {"k": i}]}))
    summaries, emb = finished_runs(tmp_path)
    assert [s["items"][0]["k"] for s in summaries] == [0, 1] and emb[:, 0].tolist() == [0, 0, 1, 1]
    assert finished_targets(tmp_path, "intensity")[:, 0].tolist() == [0, 0, 1, 1]
    (tmp_path / "run00" / "summary.json").unlink()
    with pytest.raises(SystemExit, match="needs its first runs finished"):
        finished_targets(tmp_path, "intensity")
