"""Paired FAD difference, student ctm-decode minus ctm, per control, over the same 160 validation items
(metrics.bootstrap.fad_difference_ci, 1000 resamples): `python results/bench-students/paired_fad.py` after the
commands in experiments/bench/students-tiny.yaml. Writes results/bench-students/paired_fad.md."""
import json
from pathlib import Path

import torch

from ditto2.bench.ito import Bench, load_bench_config
from ditto2.metrics.bootstrap import fad_difference_ci
from ditto2.metrics.fad import fad_against

HERE = Path(__file__).parent
cfg = load_bench_config("experiments/bench/students-tiny.yaml")
reference = Bench(cfg, Path("/tmp/paired-fad")).reference["clap"]  # the sweep's validation reference (cached)
rows = json.loads((HERE / "results.json").read_text())["rows"]
lines = ["# FAD of ctm-decode minus ctm on the same validation items (paired bootstrap, 95 %)", "",
         "| control | FAD ctm | FAD ctm-decode | difference [95 % paired CI] |", "|---|---|---|---|"]
for control in cfg.controls:
    part = "intensity" if control == "intensity" else "rest"
    emb = {s: torch.load(HERE / part / "runs" / f"sweep-{control}-ditto2-ctm_M1_T1_γ0.0_{s}" / "embeddings.pt")
           for s in ("ctm", "ctm-decode")}
    fa, fb = (fad_against(reference, emb[s]) for s in ("ctm-decode", "ctm"))
    lo, hi = fad_difference_ci(reference, emb["ctm-decode"], emb["ctm"], n_boot=1000)
    lines.append(f"| {control} | {fb:.3f} | {fa:.3f} | {fa - fb:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
(HERE / "paired_fad.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
