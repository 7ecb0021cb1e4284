"""FAD of each anchor cell split into its two terms, beside the cells it is read against, on the validation reference.

Run from the repository root: `python results/bench-anchor/fad_terms.py` (re-embeds the 250 reference clips, ~2 min
on 2 cores; needs the cells' runs/ folders, which are not committed). Prints, per cell: FAD, its mean term
‖μ − μ_ref‖², the rest (the covariance term), the embeddings' total variance (their spread; the reference's on the first
line) and the mean in-domain CLAP score against the items' captions. Weight 0 is results/bench-envelope's envelope-0 cell
(the same default, items and seeds); K = 0 rows are results/bench-floor's (no optimization)."""
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from ditto2.bench.ito import Bench, load_bench_config
from ditto2.metrics.fad import fad_terms

HERE = Path(__file__).parent
OTHERS = {"K = 0, teacher 20 steps": "results/bench-floor/runs/controls-intensity-ditto",
          "K = 0, ctm-decode 1 step": "results/bench-floor/runs/sweep-intensity-ditto2-ctm_M1_T1_γ0.0_ctm-decode",
          "anchor 0 (the default)": "results/bench-envelope/runs/sweep-intensity-ditto2-ctm_M1_T1_γ0.0_ctm-decode_lr0.02_envelope0"}


def cell(folder: Path) -> tuple[torch.Tensor, float]:
    runs = sorted(folder.glob("run[0-9][0-9]"))
    if not runs or not all((r / "summary.json").is_file() for r in runs):
        sys.exit(f"{folder}: not every run has finished")
    scores = [it["clap_score"] for r in runs for it in json.loads((r / "summary.json").read_text())["items"]]
    return torch.cat([load_file(r / "embeddings.safetensors")["audio"] for r in runs]), sum(scores) / len(scores)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reference = Bench(load_bench_config("experiments/bench/anchor-tiny.yaml"), Path(tmp)).reference["clap"]
    print(f"reference: {reference.shape[0]} clips, total variance {float(reference.var(0).sum()):.3f}")
    cells = {k: Path(v) for k, v in OTHERS.items()}
    for folder in sorted((HERE / "runs").iterdir(), key=lambda p: float(p.name.rsplit("anchor", 1)[1])):
        cells[f"anchor {folder.name.rsplit('anchor', 1)[1]}"] = folder
    for name, folder in cells.items():
        if not folder.is_dir():
            print(f"{name}: {folder} not here (run its bench first)")
            continue
        emb, clap = cell(folder)
        mean, cov = fad_terms(reference, emb)
        print(f"{name:>24}: FAD {mean + cov:.3f} = mean term {mean:.3f} + covariance term {cov:.3f}; total variance "
              f"{float(emb.var(0).sum()):.3f}; CLAP score {clap:.3f}")


if __name__ == "__main__":
    main()
