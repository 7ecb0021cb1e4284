"""FAD of bench cells split into its two terms, against a bench config's own reference, paired with the first cell.

    python -m ditto2.bench.fad_terms --config experiments/bench/starts-tiny.yaml \\
        "n = 1=results/bench-envelope/runs/<cell>" results/bench-starts/runs/*

Each cell is a bench cell folder (runNN/{summary.json, embeddings.safetensors}; its first finished runs are read),
optionally labelled ``LABEL=DIR``.
Per cell: FAD against the config's reference (re-embedded as the bench does, ~2 min on 2 cores for 250 clips), its mean
term ‖μ − μ_ref‖², the rest (the covariance term), the embeddings' total variance (their spread; the reference's is
printed first), the mean in-domain CLAP score where the items carry one, and FAD minus the first cell's with its 95 %
paired bootstrap interval (the same items drawn for both) where the two cells hold the same number of items."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from ditto2.metrics.bootstrap import fad_difference_ci
from ditto2.metrics.fad import fad_terms, mean_term


def read_cell(folder: Path) -> tuple[torch.Tensor, list]:
    """A cell's pooled CLAP embeddings and its items over its first finished runs, in run order (the rule every
    item-by-item comparison of committed cells uses: an unfinished last run is left out, a gap is an error)."""
    from ditto2.bench.ito import finished_runs

    summaries, emb = finished_runs(folder)
    return emb, [it for s in summaries for it in s["items"]]


def terms_table(reference: torch.Tensor, cells: dict, n_boot: int = 1000) -> list[str]:
    """One line per cell (``cells``: label -> (embeddings, items)), paired with the first."""
    lines = [f"reference: {reference.shape[0]} clips, total variance {float(reference.var(0).sum()):.3f}"]
    first = next(iter(cells.values()))[0] if cells else None
    for label, (emb, items) in cells.items():
        terms = fad_terms(reference, emb)
        clap = [it["clap_score"] for it in items if "clap_score" in it]
        fad = (f"FAD {sum(terms):.3f} = mean term {terms[0]:.3f} + covariance term {terms[1]:.3f}" if terms else
               f"FAD needs more than {emb.shape[1]} items, mean term {mean_term(reference, emb):.3f}")
        line = (f"{label} ({emb.shape[0]} items): {fad}; total variance {float(emb.var(0).sum()):.3f}"
                + (f"; CLAP score {sum(clap) / len(clap):.3f}" if clap else ""))
        if terms and emb is not first and emb.shape == first.shape:
            lo, hi = fad_difference_ci(reference, emb, first, n_boot=n_boot)
            line += f"; minus the first [95 % paired]: [{lo:+.3f}, {hi:+.3f}]"
        lines.append(line)
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the bench YAML whose FAD reference the cells are scored against")
    p.add_argument("cells", nargs="+", help="bench cell folders, each DIR or LABEL=DIR; the first is the baseline")
    p.add_argument("--n-boot", type=int, default=1000)
    args = p.parse_args(argv)
    named = {}
    for spec in args.cells:
        label, _, path = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        named[label or Path(path).name] = Path(path)
    cells = {label: read_cell(folder) for label, folder in named.items()}  # every folder checked before the reference
    from ditto2.bench.ito import Bench, load_bench_config

    with tempfile.TemporaryDirectory() as tmp:
        reference = Bench(load_bench_config(args.config), Path(tmp)).reference["clap"]
    print("\n".join(terms_table(reference, cells, args.n_boot)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
