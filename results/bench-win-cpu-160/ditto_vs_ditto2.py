"""DITTO vs DITTO-2 on the same test items, on this machine, paired item by item:
`python results/bench-win-cpu-160/ditto_vs_ditto2.py intensity` after both cells exist:

    ditto2 bench --config experiments/bench/win-tiny-ditto-160.yaml --only intensity           # -> ditto/
    ditto2 bench --config experiments/bench/win-tiny-ctm-160.yaml --only intensity --out results/bench-win-cpu-160/ditto2

Reads each cell's finished run folders (runNN/{summary.json, embeddings.safetensors}); while DITTO's cell is
still partial (41–49 min per run of 32 items alone on 2 cores, spread over sessions) both cells are cut to the items DITTO has
finished, so the pairing stays item by item (FAD over fewer items sits higher for both: compare the paired
difference, not these FADs with the 160-item ones). It checks that item i asked both methods for the same target, and
writes ditto_vs_ditto2-<control>.md (and its numbers as .json, which win_table.py reads): the control metric's mean
and median, how many items each method wins, the paired mean difference (bootstrap over items), both FADs against the
bench's disjoint reference, the paired FAD difference (the same items drawn for both), and the time per item."""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ditto2.bench.ito import Bench, finished_runs, load_bench_config
from ditto2.metrics.bootstrap import bootstrap_ci, fad_ci, fad_difference_ci
from ditto2.metrics.fad import fad_terms, mean_term

HERE = Path(__file__).parent
METRICS = {"intensity": ("intensity_mse_db2", "dB²", -1), "melody": ("melody_accuracy_pct", "%", +1),
           "structure": ("structure_mse", "", -1), "outpainting": ("outpainting_masked_mel_mse", "", -1),
           "inpainting": ("inpainting_masked_mel_mse", "", -1)}


def cell(folder: Path) -> dict:
    """A cell's finished runs: items, targets, pooled embeddings and seconds per item, in item order."""
    summaries, emb = finished_runs(folder)
    items = [it for s in summaries for it in s["items"]]
    run_s = [s["optimize_s"] + s["decode_s"] + s["vocode_s"] for s in summaries]
    return {"items": items, "targets": [t for s in summaries for t in s["targets"]], "emb": emb,
            "per_run": [t / s["batch"] for t, s in zip(run_s, summaries)], "s_per_item": sum(run_s) / len(items)}


def first(c: dict, n: int) -> dict:
    """The cell cut to its first n items (per-item time is kept from the whole cell)."""
    return {**c, "items": c["items"][:n], "targets": c["targets"][:n], "emb": c["emb"][:n]}


def main(control: str) -> None:
    key, unit, better = METRICS[control]
    ditto = cell(HERE / "ditto" / "runs" / f"controls-{control}-ditto")
    fast = cell(HERE / "ditto2" / "runs" / f"controls-{control}-ditto2-ctm")
    n, of = min(len(ditto["items"]), len(fast["items"])), max(len(ditto["items"]), len(fast["items"]))
    partial = n < of
    ditto, fast = first(ditto, n), first(fast, n)
    if ditto["targets"] != fast["targets"]:
        sys.exit("the two cells did not ask for the same targets item by item: they cannot be paired")
    a = np.array([it[key] for it in fast["items"]])  # DITTO-2
    b = np.array([it[key] for it in ditto["items"]])  # DITTO
    cfg = load_bench_config("experiments/bench/win-tiny-ditto-160.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(cfg, Path(tmp))
        reference, floor = bench.reference["clap"], bench.floor.get("clap")
    terms_a, terms_b = fad_terms(reference, fast["emb"]), fad_terms(reference, ditto["emb"])
    mean_a, mean_b = mean_term(reference, fast["emb"]), mean_term(reference, ditto["emb"])  # defined at any n
    fad = None
    if terms_a and terms_b:
        fad_a, fad_b = sum(terms_a), sum(terms_b)
        ci_a, ci_b = fad_ci(reference, fast["emb"], n_boot=1000), fad_ci(reference, ditto["emb"], n_boot=1000)
        d_lo, d_hi = fad_difference_ci(reference, fast["emb"], ditto["emb"], n_boot=1000)
        fad = {"ditto": fad_b, "ditto_ci": list(ci_b), "ditto2": fad_a, "ditto2_ci": list(ci_a),
               "difference_ci": [d_lo, d_hi]}
        fad_rows = [f"| FAD (↓) | {fad_b:.3f} [{ci_b[0]:.3f}, {ci_b[1]:.3f}] | {fad_a:.3f} [{ci_a[0]:.3f}, {ci_a[1]:.3f}] "
                    f"| {fad_a - fad_b:+.3f} [{d_lo:+.3f}, {d_hi:+.3f}] |"]
        cov_rows = [f"| FAD's covariance term (the rest) | {terms_b[1]:.3f} | {terms_a[1]:.3f} "
                    f"| {terms_a[1] - terms_b[1]:+.3f} |"]
    else:  # a covariance of n <= D embeddings is singular: FAD waits for more of DITTO's runs
        dim = reference.shape[1]
        fad_rows = [f"| FAD (↓) | needs more than {dim} items (the embedding's dimension); {n} so far | | |"]
        cov_rows = []
    m_lo, m_hi = bootstrap_ci(a - b, n_boot=10000)
    wins = int(((a - b) * better > 0).sum())
    fmt = lambda x: f"{x:.3g}"  # noqa: E731
    lines = [
        f"# {control}: DITTO vs DITTO-2 CTM on the same {len(a)} test items, 2 CPU cores", "",
        *([f"**Partial:** the first {n} of the {of} items, the ones DITTO's finished runs cover. FAD and its mean term "
           f"over {n} items sit higher than over {of} for both methods (the mean term by about each set's spread / n): "
           "compare the two methods here, not these values with other tables'.", ""] if partial else []),
        f"`python results/bench-win-cpu-160/ditto_vs_ditto2.py {control}`. Items, targets and K = 70 as in "
        f"`experiments/bench/win-tiny-*-160.yaml`; FAD against the {reference.shape[0]} held-out clips no run drew "
        f"(floor {floor:.3f}); intervals: 95 % bootstrap (10000 resamples over items for the metric, 1000 for FAD; "
        "paired: the same items drawn for both methods).", "",
        "| | DITTO | DITTO-2 CTM (defaults) | DITTO-2 minus DITTO [95 % paired CI] |", "|---|---|---|---|",
        f"| {key} mean ({'↓' if better < 0 else '↑'}) | {fmt(b.mean())} {unit} | {fmt(a.mean())} {unit} "
        f"| {fmt(a.mean() - b.mean())} [{fmt(m_lo)}, {fmt(m_hi)}] |",
        f"| median | {fmt(float(np.median(b)))} | {fmt(float(np.median(a)))} | |",
        f"| items won | {len(a) - wins} | {wins} | (ties counted for DITTO) |",
        *fad_rows,
        f"| FAD's mean term ‖μ − μ_ref‖² | {mean_b:.3f} | {mean_a:.3f} | {mean_a - mean_b:+.3f} |",
        *cov_rows,
        f"| seconds per item (its runs of 32: min–max) | {ditto['s_per_item']:.1f} ({min(ditto['per_run']):.0f}–"
        f"{max(ditto['per_run']):.0f}) | {fast['s_per_item']:.2f} ({min(fast['per_run']):.2f}–{max(fast['per_run']):.2f}) "
        f"| {ditto['s_per_item'] / fast['s_per_item']:.0f}× faster |", "",
        "DITTO's runs were made in different sessions on the same kind of 2-core machine (one run of 32 items each); "
        "their spread is the machine's from day to day, not the method's.", ""]
    out = HERE / f"ditto_vs_ditto2-{control}.md"
    out.write_text("\n".join(lines))
    numbers = {"control": control, "metric": key, "unit": unit, "better": better, "n": n, "of": of,
               "ditto": float(b.mean()), "ditto2": float(a.mean()), "difference_ci": [float(m_lo), float(m_hi)],
               "ditto2_wins": wins, "fad": fad, "mean_term": {"ditto": mean_b, "ditto2": mean_a},
               "s_per_item": {"ditto": ditto["s_per_item"], "ditto2": fast["s_per_item"]}}
    out.with_suffix(".json").write_text(json.dumps(numbers, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in METRICS:
        sys.exit(f"usage: python {sys.argv[0]} {{{','.join(METRICS)}}}")
    main(sys.argv[1])
