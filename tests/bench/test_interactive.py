"""The interactive preset's picker (bench/interactive.py): the fewest steps within the bound of the control's full-K
value, direction-aware, and the preset file the page reads holds what the picker wrote."""
from pathlib import Path

import pytest

from ditto2.bench.interactive import kept_share, pick, preset_for, within, write_preset

ROOT = Path(__file__).resolve().parents[2]


def row(control, kind, k, lr, decay, value, higher=False, betas=(0.9, 0.999)):
    return {"control": control, "metric": "m", "higher_is_better": higher, "kind": kind, "K": k, "lr": lr,
            "lr_decay": decay, "adam_betas": list(betas), "value": value}


def test_within_is_relative_and_direction_aware():
    assert within(1.10, 1.0, 0.15, higher_is_better=False) and not within(1.2, 1.0, 0.15, False)
    assert within(0.5, 1.0, 0.15, False)  # better is always fine
    assert within(80.0, 90.0, 0.15, True) and not within(70.0, 90.0, 0.15, True)


def test_kept_share_is_the_same_for_both_directions():
    assert kept_share(10.0, none=100.0, reference=1.0) == pytest.approx(90 / 99)
    assert kept_share(80.0, none=10.0, reference=90.0) == pytest.approx(70 / 80)
    assert kept_share(0.5, none=100.0, reference=1.0) > 1  # better than the full run


def test_pick_takes_the_fewest_steps_keeping_the_share_else_the_best_of_the_most():
    rows = [row("a", "reference", 70, 0.005, "constant", 1.0), row("a", "no control", 0, 0.005, "constant", 91.0),
            row("a", "fresh", 5, 0.04, "cosine", 30.0), row("a", "fresh", 5, 0.08, "constant", 20.0),
            row("a", "fresh", 10, 0.04, "cosine", 8.0), row("a", "fresh", 10, 0.08, "cosine", 9.5),
            row("a", "fresh", 20, 0.04, "cosine", 0.9),
            row("b", "reference", 150, 0.005, "constant", 90.0, True), row("b", "no control", 0, 0.005, "constant",
                                                                           10.0, True),
            row("b", "fresh", 5, 0.04, "cosine", 50.0, True), row("b", "fresh", 10, 0.04, "cosine", 70.0, True),
            row("b", "fresh", 10, 0.02, "constant", 72.0, True), row("b", "fresh", 10, 0.02, "constant", 71.0, True,
                                                                        (0.5, 0.9))]
    picks = pick(rows, 0.9)
    a = picks["a"]  # K=5 keeps (91-20)/90 = 79 %, K=10's best (8.0) keeps 92 %
    assert (a["steps"], a["lr"], a["lr_decay"], a["value"], a["kept_share"]) == (10, 0.04, "cosine", 8.0, 0.922)
    assert a["adam_betas"] == [0.9, 0.999]
    assert a["within_bound"] and not a["within_15pct"] and a["reference_K"] == 70
    b = picks["b"]  # no K keeps 90 % (the best, 72.0, keeps 77.5 %): the best of the largest K, flagged
    assert (b["steps"], b["lr"], b["value"]) == (10, 0.02, 72.0) and not b["within_bound"]
    rows[-1]["value"] = 73.0  # the same step with Adam's shorter memory now does better: its betas are picked
    assert pick(rows, 0.9)["b"]["adam_betas"] == [0.5, 0.9]


def test_written_preset_reads_back(tmp_path):
    picks = {"intensity": {"steps": 8, "lr": 0.04, "lr_decay": "cosine", "adam_betas": [0.5, 0.9], "value": 1.3,
                           "reference": 1.2, "reference_K": 70, "no_control": 90.0, "kept_share": 0.999,
                           "within_bound": True}}
    path = tmp_path / "interactive.yaml"
    write_preset(picks, 0.9, "results/x", path)
    assert preset_for(str(path), "intensity") == {"steps": 8, "lr": 0.04, "lr_decay": "cosine",
                                                  "adam_betas": [0.5, 0.9]}
    old = tmp_path / "old.yaml"  # a preset written before adam_betas: Adam's defaults
    old.write_text("controls:\n  melody: {steps: 8, lr: 0.08, lr_decay: constant}\n")
    assert preset_for(str(old), "melody")["adam_betas"] == [0.9, 0.999]
    with pytest.raises(ValueError, match="no interactive settings for 'text'"):
        preset_for(str(path), "text")


def test_the_committed_preset_covers_every_page_control_and_is_what_the_page_uses():
    from ditto2.serve.inputs import PAGE_CONTROLS
    from ditto2.serve.studio import Studio

    path = ROOT / "experiments" / "serve" / "interactive.yaml"
    studio = Studio(str(ROOT / "checkpoints" / "tiny"), preset_file=str(path))
    for control in PAGE_CONTROLS:
        p = studio.preset(control)
        parts = [preset_for(str(path), c) for c in control.split("+")]
        assert p == max(parts, key=lambda x: x["steps"]) and len(p["adam_betas"]) == 2
        assert 1 <= p["steps"] <= 70 and p["lr_decay"] in ("constant", "cosine")


def test_a_latency_budget_caps_the_steps():
    rows = [row("a", "reference", 70, 0.005, "constant", 1.0), row("a", "no control", 0, 0.005, "constant", 91.0),
            row("a", "fresh", 5, 0.08, "constant", 20.0), row("a", "fresh", 8, 0.04, "constant", 12.0),
            row("a", "fresh", 20, 0.04, "constant", 0.9)]
    assert pick(rows, 0.9)["a"]["steps"] == 20
    capped = pick(rows, 0.9, max_k=8)["a"]  # nothing within 8 steps keeps 90 %: the best at K = 8, flagged
    assert (capped["steps"], capped["value"], capped["within_bound"]) == (8, 12.0, False)
    filled = pick(rows, 0.9, max_k=8, fill=True)["a"]  # the whole budget: K = 8 even where 5 steps would do
    assert filled["steps"] == 8


def test_betas_arguments_parse_and_fail_in_one_line():
    import argparse

    from ditto2.bench.interactive import _pair

    assert _pair("0.5,0.9") == [0.5, 0.9]
    for bad in ("0.5", "0.5,1", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError):
            _pair(bad)


def test_repick_merges_sweeps_of_the_same_items_and_refuses_others(tmp_path):
    import json

    from ditto2.bench.interactive import sweep_rows

    args = {"split": "val", "n": 32, "seed": 0}
    ends = [row("a", "reference", 70, 0.02, "constant", 1.0), row("a", "no control", 0, 0.02, "constant", 91.0)]
    first, second, other = tmp_path / "k8.json", tmp_path / "k7.json", tmp_path / "test.json"
    first.write_text(json.dumps({"args": args, "rows": ends + [row("a", "fresh", 8, 0.08, "constant", 5.0)]}))
    second.write_text(json.dumps({"args": args, "rows": [{**ends[0], "seconds_batch": 9.9}, ends[1],
                                                         row("a", "fresh", 7, 0.08, "constant", 6.0)]}))
    rows = sweep_rows([str(first), str(second)])
    assert sorted((r["kind"], r["K"]) for r in rows) == [("fresh", 7), ("fresh", 8), ("no control", 0),
                                                         ("reference", 70)]
    assert pick(rows, 0.9, max_k=7)["a"]["steps"] == 7
    other.write_text(json.dumps({"args": {**args, "split": "test"}, "rows": ends}))
    with pytest.raises(ValueError, match="graded different items"):
        sweep_rows([str(first), str(other)])
    # another control may come from a sweep of more items (text's): items are checked per control
    more = tmp_path / "text96.json"
    more.write_text(json.dumps({"args": {**args, "n": 96}, "rows": [row("b", "reference", 70, 0.005, "constant", 0.3),
                                                                   row("b", "fresh", 8, 0.03, "constant", 0.2)]}))
    assert {r["control"] for r in sweep_rows([str(first), str(more)])} == {"a", "b"}
    # a repick's own results.json (its arguments are the CLI defaults): each row says which items it graded
    repicked = tmp_path / "repicked.json"
    repicked.write_text(json.dumps({"args": {"split": "val", "n": 8, "seed": 0},
                                    "rows": [{**r, "n": 32} for r in ends]}))
    assert len(sweep_rows([str(first), str(repicked)])) == 3  # its two ends are first's: counted once
    assert len(sweep_rows([str(first), str(more), str(other)], controls=["b"])) == 2  # other's "a" rows left out


def test_repick_refuses_sweeps_of_another_method(tmp_path):
    """--set method=ditto sweeps the baseline's step sizes: its rows never mix with the students' of the same items."""
    import json

    from ditto2.bench.interactive import sweep_rows

    args = {"split": "val", "n": 8, "seed": 0}
    rows = [row("a", "reference", 70, 0.005, "constant", 1.0), row("a", "no control", 0, 0.005, "constant", 91.0)]
    student, ditto = tmp_path / "student.json", tmp_path / "ditto.json"
    student.write_text(json.dumps({"args": args, "rows": rows}))  # results written before --set existed
    ditto.write_text(json.dumps({"args": {**args, "overrides": ["method=ditto"]}, "rows": rows}))
    assert len(sweep_rows([str(student), str(student)])) == 2
    with pytest.raises(ValueError, match="graded different items"):
        sweep_rows([str(student), str(ditto)])


def test_write_preset_refuses_overrides():
    from ditto2.bench.interactive import main

    with pytest.raises(SystemExit):
        main(["--set", "method=ditto", "--write-preset", "--pick", "0.9", "--controls"])


def test_kept_share_interval_is_paired_over_items():
    from ditto2.bench.interactive import kept_share_ci

    none, ref = [100.0, 50.0, 80.0, 20.0], [0.0, 10.0, 20.0, 4.0]
    half = [(u + r) / 2 for u, r in zip(none, ref)]  # every item keeps exactly half: so does every resample
    assert kept_share_ci(half, none, ref) == pytest.approx((0.5, 0.5))
    noisy = [60.0, 10.0, 70.0, 4.0]  # item-wise shares 0.4, 1.0, 0.17, 1.0: a wide interval around the mean's 0.56
    lo, hi = kept_share_ci(noisy, none, ref)
    assert lo < kept_share(sum(noisy) / 4, sum(none) / 4, sum(ref) / 4) < hi and hi - lo > 0.2
    with pytest.raises(ValueError, match="paired"):
        kept_share_ci([1.0, 2.0], [3.0, 4.0, 5.0], [0.0, 0.0])
