"""Melody's DITTO-2 step size by the issue's own target, on validation items only: control at least DITTO's, and then
control is given up only for a measurably lower FAD (ditto2.bench.defaults.pick_against_baseline).

    ditto2 bench --config experiments/bench/steps-melody-small-tiny.yaml   # 160 val items per step, FAD -> this folder
    ditto2 bench --config experiments/bench/ditto-val-melody-tiny.yaml     # DITTO and the same steps on its items
    python results/bench-steps/melody-small/pick_step.py

The bar: DITTO's mean accuracy over the validation items its runs finished (results/bench-steps/ditto-val-melody,
in runs of 16), each step's DITTO-2 mean over exactly those items (the same targets, checked), the paired difference
with a 10000-resample interval. FAD: each step's 160 generations against the sweep's 250 validation clips, paired
differences (the same items drawn for both steps, 1000 resamples) for the pairs the walk asks about. Writes
winners.{json,md} here and marks melody superseded in results/bench-steps/winners.json; the test suite recomputes the
pick from winners.json and checks experiments/ito/melody.yaml."""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ditto2.bench.defaults import pick_against_baseline
from ditto2.bench.ito import Bench, finished_runs, load_bench_config
from ditto2.metrics.bootstrap import bootstrap_ci, fad_difference_ci
from ditto2.metrics.fad import fad_against

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
KEY = "melody_accuracy_pct"
CELL = "sweep-melody-ditto2-ctm_M1_T1_γ0.0_ctm-decode_lr{lr:g}"


def runs(folder: Path) -> tuple[list, list, torch.Tensor]:
    """A cell's finished runs in order: per-item accuracies, targets, CLAP embeddings."""
    summaries, emb = finished_runs(folder)
    return [it[KEY] for s in summaries for it in s["items"]], [t for s in summaries for t in s["targets"]], emb


def main() -> None:
    cfg = load_bench_config("experiments/bench/steps-melody-small-tiny.yaml")
    (entry,) = cfg.sweep
    lrs = sorted(entry["lrs"])
    with tempfile.TemporaryDirectory() as tmp:
        reference = Bench(cfg, Path(tmp)).reference["clap"]
    bar_dir = HERE.parent / "ditto-val-melody" / "runs"
    ditto, ditto_targets, _ = runs(bar_dir / "controls-melody-ditto")
    n_bar = len(ditto)
    cells, emb = [], {}
    for lr in lrs:
        values, _, emb[lr] = runs(HERE / "runs" / CELL.format(lr=lr))
        on_bar, targets, _ = runs(bar_dir / CELL.format(lr=lr))
        on_bar = on_bar[:n_bar]
        if targets[:n_bar] != ditto_targets:
            sys.exit(f"step {lr:g}: its cell beside DITTO's did not ask for DITTO's targets item by item")
        d = np.asarray(on_bar) - np.asarray(ditto)
        lo, hi = bootstrap_ci(d, n_boot=10000)
        cells.append({"lr": lr, "n": len(values), "value": round(float(np.mean(values)), 3),
                      "value_bar": round(float(np.mean(on_bar)), 3), "minus_ditto": round(float(d.mean()), 3),
                      "minus_ditto_ci95": [round(lo, 3), round(hi, 3)]})
    pairs = {}

    def fad_lower(a: dict, b: dict) -> bool:  # a's FAD measurably below b's (paired over the 160 items)
        key = f"{a['lr']:g}-{b['lr']:g}"
        if key not in pairs:
            lo, hi = fad_difference_ci(reference, emb[a["lr"]], emb[b["lr"]], n_boot=1000)
            pairs[key] = [round(lo, 4), round(hi, 4)]
        return pairs[key][1] < 0

    for c in cells:
        c["fad"] = round(fad_against(reference, emb[c["lr"]]), 4)
    bar = round(float(np.mean(ditto)), 3)
    win = pick_against_baseline(cells, bar, True, fad_lower)
    rule = ("among the steps whose mean accuracy on DITTO's validation items is at least DITTO's, start at the "
            "best-controlling one (over all 160 items) and move to a worse-controlling one only where its FAD is "
            "measurably lower (paired 95 % interval of the difference below zero)")
    (HERE / "winners.json").write_text(json.dumps({
        "rule": rule, "bar": {"method": "ditto", "items": n_bar, "value": bar}, "cells": cells, "fad_pairs": pairs,
        "winners": {"melody": {"ditto2-ctm": {"lr": win["lr"]} if win else None}}}, indent=1))
    earlier = HERE.parent / "winners.json"  # results/bench-steps chose melody's step before, by control alone
    data = json.loads(earlier.read_text())
    data["superseded_by"] = {**data.get("superseded_by", {}), "melody": str((HERE / "winners.json").relative_to(ROOT))}
    earlier.write_text(json.dumps(data, indent=1))
    lines = ["# Melody's DITTO-2 step size against DITTO's bar (validation items)", "", f"Rule: {rule}.", "",
             f"DITTO (step 5e-3, K = 70): {bar:.1f} % on its {n_bar} validation items.", "",
             "| step | accuracy, 160 items | on DITTO's items | minus DITTO [95 % paired CI] | FAD (160) |",
             "|---|---|---|---|---|"]
    for c in cells:
        mark = " **chosen**" if win and c["lr"] == win["lr"] else ""
        lines.append(f"| {c['lr']:g}{mark} | {c['value']:.1f} | {c['value_bar']:.1f} | {c['minus_ditto']:+.1f} "
                     f"[{c['minus_ditto_ci95'][0]:+.1f}, {c['minus_ditto_ci95'][1]:+.1f}] | {c['fad']:.3f} |")
    lines += ["", "Paired FAD differences the walk asked about (first minus second, 95 %): "
              + "; ".join(f"{k}: [{v[0]:+.3f}, {v[1]:+.3f}]" for k, v in pairs.items()), ""]
    (HERE / "winners.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
