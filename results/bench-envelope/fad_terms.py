"""FAD of each envelope cell split into its two terms, against the bench's validation reference.

Run from the repository root: `python results/bench-envelope/fad_terms.py` (re-embeds the 250 reference clips, ~2 min
on 2 cores; needs the cells' runs/ folders, which are not committed). Prints, per cell: FAD, its mean term
‖μ − μ_ref‖², the rest (the covariance term) and the embeddings' total variance (their spread) beside the reference's."""
import tempfile
from pathlib import Path

import torch

from ditto2.bench.ito import Bench, finished_runs, load_bench_config
from ditto2.metrics.fad import fad_terms

HERE = Path(__file__).parent


def embeddings(cell: Path) -> torch.Tensor:
    """A cell's pooled CLAP embeddings over its first finished runs (the bench's own rule for committed cells)."""
    return finished_runs(cell)[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reference = Bench(load_bench_config("experiments/bench/envelope-tiny.yaml"), Path(tmp)).reference["clap"]
    print(f"reference: {reference.shape[0]} clips, total variance {float(reference.var(0).sum()):.3f}")
    cells = sorted((HERE / "runs").iterdir(), key=lambda p: float(p.name.rsplit("envelope", 1)[1]))
    for cell in cells:
        emb = embeddings(cell)
        mean, cov = fad_terms(reference, emb)
        print(f"λ = {cell.name.rsplit('envelope', 1)[1]:>4}: FAD {mean + cov:.3f} = mean term {mean:.3f} + covariance "
              f"term {cov:.3f}; total variance {float(emb.var(0).sum()):.3f}")


if __name__ == "__main__":
    main()
