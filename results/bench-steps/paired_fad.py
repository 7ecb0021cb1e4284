"""Paired FAD difference of each step size minus the step each control had before (intensity 0.02, melody 0.04), over
the same 160 validation items (metrics.bootstrap.fad_difference_ci, 1000 resamples):
`python results/bench-steps/paired_fad.py` after `ditto2 bench --config experiments/bench/steps-tiny.yaml`.
Writes results/bench-steps/paired_fad.md."""
from pathlib import Path

import torch

from ditto2.bench.ito import Bench, load_bench_config
from ditto2.metrics.bootstrap import fad_difference_ci
from ditto2.metrics.fad import fad_against

HERE = Path(__file__).parent
cfg = load_bench_config("experiments/bench/steps-tiny.yaml")
reference = Bench(cfg, Path("/tmp/paired-fad-steps")).reference["clap"]  # the sweep's validation reference
before = {"intensity": 0.02, "melody": 0.04}
lines = ["# FAD of each step size minus the earlier default's, on the same validation items (paired bootstrap, 95 %)", "",
         "| control | step | FAD | minus FAD at the earlier step [95 % paired CI] |", "|---|---|---|---|"]
for entry in cfg.sweep:
    (control,) = entry["controls"]
    emb = {lr: torch.load(HERE / "runs" / f"sweep-{control}-ditto2-ctm_M1_T1_γ0.0_ctm-decode_lr{lr:g}" / "embeddings.pt")
           for lr in entry["lrs"]}
    base = emb[before[control]]
    for lr, e in emb.items():
        fad = fad_against(reference, e)
        if lr == before[control]:
            lines.append(f"| {control} | {lr:g} (earlier default) | {fad:.3f} | |")
            continue
        lo, hi = fad_difference_ci(reference, e, base, n_boot=1000)
        lines.append(f"| {control} | {lr:g} | {fad:.3f} | {fad - fad_against(reference, base):+.3f} [{lo:+.3f}, {hi:+.3f}] |")
(HERE / "paired_fad.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
