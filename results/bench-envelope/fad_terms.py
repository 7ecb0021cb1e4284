"""FAD of each envelope cell split into its two terms, against the bench's validation reference.

Run from the repository root: `python results/bench-envelope/fad_terms.py` (re-embeds the 250 reference clips, ~2 min
on 2 cores; needs the cells' runs/ folders, which are not committed). Prints, per cell (its first finished runs, read
by `ditto2.bench.fad_terms`): FAD, its mean term ‖μ − μ_ref‖², the rest (the covariance term) and the embeddings' total
variance (their spread) beside the reference's, with each cell's FAD minus the first's where they hold as many items."""
import tempfile
from pathlib import Path

from ditto2.bench.fad_terms import read_cell, terms_table
from ditto2.bench.ito import Bench, load_bench_config

HERE = Path(__file__).parent


def main() -> None:
    cells = sorted((HERE / "runs").iterdir(), key=lambda p: float(p.name.rsplit("envelope", 1)[1]))
    read = {f"λ = {cell.name.rsplit('envelope', 1)[1]:>4}": read_cell(cell) for cell in cells}  # before the reference
    with tempfile.TemporaryDirectory() as tmp:
        reference = Bench(load_bench_config("experiments/bench/envelope-tiny.yaml"), Path(tmp)).reference["clap"]
    print("\n".join(terms_table(reference, read)))


if __name__ == "__main__":
    main()
