"""A control's DITTO-2 step size (and CTM student, where its sweep compares students) by the issue's own target, on
validation items only: control at least DITTO's, and then control is given up only for a measurably lower FAD
(ditto2.bench.defaults.pick_against_baseline).

    ditto2 bench --config experiments/bench/steps-melody-small-tiny.yaml   # 160 val items per step, FAD
    ditto2 bench --config experiments/bench/ditto-val-melody-tiny.yaml     # DITTO and the same steps on its items
    python results/bench-steps/pick_step.py melody                         # or outpainting, inpainting (configs below)

The bar: DITTO's mean over the validation items its runs finished (the second config's folder), each cell's DITTO-2
mean over exactly those items (the same targets, checked), the paired difference with a 10000-resample interval.
FAD: each cell's 160 generations against the sweep's 250 validation clips, paired differences (the same items drawn
for both cells, 1000 resamples) for the pairs the walk asks about. A cell is a step, or "student step" where the sweep
compares students (its `students:`); the winner names the student then, as experiments/ito/<control>.yaml's `ctm`.
Writes winners.{json,md} into the sweep's folder and, where results/bench-steps/winners.json chose the control's step
before by control alone, marks it superseded there; the test suite recomputes each pick from winners.json and checks
experiments/ito/<control>.yaml."""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ditto2.bench.defaults import cell_key as key
from ditto2.bench.defaults import cell_settings, pick_against_baseline
from ditto2.bench.ito import Bench, cell_name, finished_runs, load_bench_config, plan
from ditto2.controls import CONTROLS as REGISTRY
from ditto2.metrics.bootstrap import bootstrap_ci, fad_difference_ci
from ditto2.metrics.fad import fad_against

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
# control: (the 160-item step sweep, DITTO beside the same steps on its first items, the metric's name in the tables);
# the metric itself and its direction are the control's (ditto2.controls)
CONTROLS = {"melody": ("steps-melody-small-tiny.yaml", "ditto-val-melody-tiny.yaml", "accuracy"),
            "outpainting": ("steps-outpainting-tiny.yaml", "ditto-val-outpainting-tiny.yaml", "masked mel MSE"),
            "inpainting": ("steps-inpainting-tiny.yaml", "ditto-val-inpainting-tiny.yaml", "masked mel MSE")}


def runs(folder: Path, key: str) -> tuple[list, list, torch.Tensor]:
    """A cell's finished runs in order: per-item metric values, targets, CLAP embeddings."""
    summaries, emb = finished_runs(folder)
    return [it[key] for s in summaries for it in s["items"]], [t for s in summaries for t in s["targets"]], emb


def folders(cfg) -> dict:
    """(table, student bundle, step) -> the folder of that planned cell of a bench config (``ditto2.bench.ito.plan``)."""
    return {(c["table"], c["changes"].get("ctm"), c["changes"].get("lr")):
            ROOT / cfg.out / "runs" / cell_name(c["table"], c["control"], c["label"]) for c in plan(cfg)}


def main(control: str) -> None:
    sweep_yaml, bar_yaml, name = CONTROLS[control]
    metric, higher = f"{control}_{REGISTRY[control].metric}", REGISTRY[control].higher_is_better
    cfg, bar_cfg = (load_bench_config(f"experiments/bench/{y}") for y in (sweep_yaml, bar_yaml))
    out, sweep, beside = ROOT / cfg.out, folders(cfg), folders(bar_cfg)
    many = len({student for _, student, _ in sweep}) > 1  # the sweep compares students, not only steps
    with tempfile.TemporaryDirectory() as tmp:
        reference = Bench(cfg, Path(tmp)).reference["clap"]
    (ditto_dir,) = [d for (table, _, _), d in beside.items() if table == "controls"]
    ditto, ditto_targets, _ = runs(ditto_dir, metric)
    n_bar = len(ditto)
    digits = 3 if higher else 5  # accuracy in %, or an MSE of a few hundredths
    r = lambda x: round(float(x), digits)  # noqa: E731
    cells, emb = [], {}
    for (table, student, lr), folder in sweep.items():
        if table != "sweep":
            continue
        cell = {"student": student, "lr": lr} if many else {"lr": lr}
        if ("sweep", student, lr) not in beside:
            sys.exit(f"{key(cell)}: {bar_yaml} has no such cell beside DITTO's")
        values, _, emb[key(cell)] = runs(folder, metric)
        on_bar, targets, _ = runs(beside["sweep", student, lr], metric)
        on_bar = on_bar[:n_bar]
        if targets[:n_bar] != ditto_targets:
            sys.exit(f"{key(cell)}: its cell beside DITTO's did not ask for DITTO's targets item by item")
        d = np.asarray(on_bar) - np.asarray(ditto)
        lo, hi = bootstrap_ci(d, n_boot=10000)
        cells.append({**cell, "n": len(values), "value": r(np.mean(values)), "value_bar": r(np.mean(on_bar)),
                      "minus_ditto": r(d.mean()), "minus_ditto_ci95": [r(lo), r(hi)]})
    pairs = {}

    def fad_lower(a: dict, b: dict) -> bool:  # a's FAD measurably below b's (paired over the 160 items)
        pair = f"{key(a)}-{key(b)}"
        if pair not in pairs:
            lo, hi = fad_difference_ci(reference, emb[key(a)], emb[key(b)], n_boot=1000)
            pairs[pair] = [round(lo, 4), round(hi, 4)]
        return pairs[pair][1] < 0

    for c in cells:
        c["fad"] = round(fad_against(reference, emb[key(c)]), 4)
    bar = r(np.mean(ditto))
    win = pick_against_baseline(cells, bar, higher, fad_lower)
    rule = (f"among the {'cells' if many else 'steps'} whose mean {name} on DITTO's validation items is at "
            f"{'least' if higher else 'most'} "
            "DITTO's, start at the best-controlling one (over all 160 items) and move to a worse-controlling one only "
            "where its FAD is measurably lower (paired 95 % interval of the difference below zero)")
    (out / "winners.json").write_text(json.dumps({
        "rule": rule, "bar": {"method": "ditto", "items": n_bar, "value": bar}, "cells": cells, "fad_pairs": pairs,
        "winners": {control: {"ditto2-ctm": cell_settings(win) if win else None}}}, indent=1))
    # results/bench-steps chose intensity's and melody's steps by control alone, results/bench-students each control's
    # student by control first (then FAD): a control chosen again here is marked there
    for earlier in [HERE / "winners.json"] + ([ROOT / "results" / "bench-students" / "winners.json"]
                                              if many else []):
        data = json.loads(earlier.read_text())
        if control in data["winners"]:
            later = str((out / "winners.json").relative_to(ROOT))
            data["superseded_by"] = {**data.get("superseded_by", {}), control: later}
            earlier.write_text(json.dumps(data, indent=1))
    f = (lambda x: f"{x:.1f}") if higher else (lambda x: f"{x:.4f}")  # noqa: E731
    s = (lambda x: f"{x:+.1f}") if higher else (lambda x: f"{x:+.4f}")  # noqa: E731
    lines = [f"# {control.capitalize()}'s DITTO-2 {'student and ' if many else ''}step size against DITTO's "
             "bar (validation items)", "",
             f"Rule: {rule}.", "",
             f"DITTO (step 5e-3, K = 70): {f(bar)}{' %' if higher else ''} on its {n_bar} validation items.", "",
             f"| {'student, step' if many else 'step'} | {name}, 160 items | on DITTO's items "
             "| minus DITTO [95 % paired CI] | FAD (160) |",
             "|---|---|---|---|---|"]
    for c in cells:
        mark = " **chosen**" if win and key(c) == key(win) else ""
        lines.append(f"| {key(c)}{mark} | {f(c['value'])} | {f(c['value_bar'])} | {s(c['minus_ditto'])} "
                     f"[{s(c['minus_ditto_ci95'][0])}, {s(c['minus_ditto_ci95'][1])}] | {c['fad']:.3f} |")
    lines += ["", "Paired FAD differences the walk asked about (first minus second, 95 %): "
              + "; ".join(f"{k}: [{v[0]:+.3f}, {v[1]:+.3f}]" for k, v in pairs.items()), ""]
    (out / "winners.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CONTROLS:
        sys.exit(f"usage: python results/bench-steps/pick_step.py {{{','.join(CONTROLS)}}}")
    main(sys.argv[1])
