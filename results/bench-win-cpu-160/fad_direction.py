"""Which way do intensity's DITTO-2 outputs sit off DITTO's in the FAD embedding, in terms of real music?
`python results/bench-win-cpu-160/fad_direction.py` (reads the two committed intensity cells; ~1 min on 2 cores).

d = mean CLAP embedding of DITTO-2's 160 test outputs − DITTO's (the FAD gap is this mean shift:
ditto_vs_ditto2-intensity.md). The FAD reference's real clips are projected on d and the projection set beside each
clip's tags (genre, mood) and simple features of its normalized log-mel; where the two methods' outputs fall on d is
printed on the same scale, by the target clip's genre and by the loudness target's level (the curve's mean in dB: how
loud the item is asked to be), with each method's control loss beside it. Writes fad_direction.txt."""
import collections
import math
import tempfile
from pathlib import Path

import numpy as np

from ditto2.bench.ito import Bench, finished_runs, finished_targets, load_bench_config
from ditto2.data.heldout import clip_order, load_mels

HERE = Path(__file__).parent


DITTO_CELL, FAST_CELL = "ditto/runs/controls-intensity-ditto", "ditto2/runs/controls-intensity-ditto2-ctm"


def target_levels(name: str) -> np.ndarray:
    """A committed cell's loudness targets' mean level (dB) per item, in item order."""
    return finished_targets(HERE / name, "intensity").numpy().mean(1)


def by_target_level(clips: list[dict], ditto: np.ndarray, fast: np.ndarray, items_a: list[dict],
                    items_b: list[dict]) -> list[str]:
    """Lines: the two methods' projections on d and control losses (their items' grades) by the quartile of the
    target's mean level, then per genre for the quieter and the louder half of its items' targets."""
    level = target_levels(DITTO_CELL)
    if not np.allclose(level, target_levels(FAST_CELL), atol=1e-3):
        raise SystemExit("the two cells' loudness targets differ: not the same items")
    loss_a = np.array([m["intensity_mse_db2"] for m in items_a])
    loss_b = np.array([m["intensity_mse_db2"] for m in items_b])
    lines = ["", f"by the target's mean level (quartiles over the items; r(level, DITTO-2 − DITTO projection) = "
             f"{np.corrcoef(level, fast - ditto)[0, 1]:+.2f}):"]
    edges = np.quantile(level, [0, 0.25, 0.5, 0.75, 1])
    quartile = np.searchsorted(edges[1:-1], level, side="right")  # each item in exactly one
    for i in range(4):
        m = quartile == i
        lines.append(f"  {edges[i]:6.1f} … {edges[i + 1]:6.1f} dB (n {m.sum()}): projection DITTO {ditto[m].mean():+.2f}, "
                     f"DITTO-2 {fast[m].mean():+.2f}; loss dB² median DITTO {np.median(loss_a[m]):.3f}, "
                     f"DITTO-2 {np.median(loss_b[m]):.3f}")
    genre = np.array([c["tags"].get("genre") for c in clips])
    lines.append("per genre, quieter / louder half of its targets (n, projection DITTO → DITTO-2):")
    for g in ("orchestral", "cinematic", "ambient", "electronic"):
        m = genre == g
        louder = level >= np.median(level[m])
        parts = [f"{half} ({(m & h).sum()}, {ditto[m & h].mean():+.2f} → {fast[m & h].mean():+.2f})"
                 for half, h in (("quieter", ~louder), ("louder", louder))]
        lines.append(f"  {g}: " + ", ".join(parts))
    return lines


def main() -> None:
    summaries_a, ditto = finished_runs(HERE / DITTO_CELL)
    summaries_b, fast = finished_runs(HERE / FAST_CELL)
    ditto, fast = np.asarray(ditto), np.asarray(fast)
    cfg = load_bench_config("experiments/bench/win-tiny-ditto-160.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(cfg, Path(tmp))  # its FAD reference: embeddings and the clips' index rows
    emb, rows = np.asarray(bench.reference["clap"]), bench.reference_rows
    shards, split = bench.ito.shards, bench.ito.split
    mu = emb.mean(0)
    d = fast.mean(0) - ditto.mean(0)
    unit = d / np.linalg.norm(d)
    proj = (emb - mu) @ unit
    lines = [f"d = mean(DITTO-2) − mean(DITTO), |d| = {np.linalg.norm(d):.3f}, over {len(fast)} test items each",
             f"projection on d (0 = the reference's mean): reference clips spread {proj.std():.3f} (std); "
             f"DITTO {((ditto - mu) @ unit).mean():+.3f}, DITTO-2 {((fast - mu) @ unit).mean():+.3f} (means)", ""]
    for key in ("genre", "mood"):
        groups = collections.defaultdict(list)
        for row, p in zip(rows, proj):
            groups[row["tags"].get(key)].append(p)
        lines.append(f"reference clips by {key} (n, mean projection): " + ", ".join(
            f"{k} ({len(v)}, {np.mean(v):+.2f})" for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))))
    # the items' target clips in item order: run j draws the first clips of clip_order(seed + j), as held_out_clips does
    sizes = [min(cfg.batch, cfg.n - j * cfg.batch) for j in range(math.ceil(cfg.n / cfg.batch))]
    items = [c for j, size in enumerate(sizes) for c in clip_order(shards, split, cfg.seed + j)[:size]]
    by_genre = collections.defaultdict(lambda: ([], []))
    for row, a, b in zip(items, (ditto - mu) @ unit, (fast - mu) @ unit):
        by_genre[row["tags"].get("genre")][0].append(a)
        by_genre[row["tags"].get("genre")][1].append(b)
    lines.append("outputs by their target clip's genre (n, DITTO, DITTO-2 mean projection): " + ", ".join(
        f"{k} ({len(a)}, {np.mean(a):+.2f}, {np.mean(b):+.2f})"
        for k, (a, b) in sorted(by_genre.items(), key=lambda kv: -len(kv[1][0]))))
    lines += by_target_level(items, (ditto - mu) @ unit, (fast - mu) @ unit,
                             [m for r in summaries_a for m in r["items"]], [m for r in summaries_b for m in r["items"]])
    mel = load_mels(shards, rows)[:, 0].numpy()  # (N, F, T) normalized log-mel
    f = mel.shape[1]
    features = {
        "mean level (log-mel)": mel.mean((1, 2)),
        "top quarter of bands": mel[:, -f // 4:].mean((1, 2)),
        "bottom eighth of bands": mel[:, : f // 8].mean((1, 2)),
        "tilt (top quarter − bottom eighth)": mel[:, -f // 4:].mean((1, 2)) - mel[:, : f // 8].mean((1, 2)),
        "peakiness (std over bands per frame)": mel.std(1).mean(1),
        "frame-to-frame change": np.abs(np.diff(mel, axis=2)).mean((1, 2)),
        "level's std over time": mel.mean(1).std(1),
    }
    lines += ["", "correlation of the reference clips' projection with features of their mels:"]
    lines += [f"  {k:38s} r = {np.corrcoef(proj, v)[0, 1]:+.2f}" for k, v in features.items()]
    text = "\n".join(lines) + "\n"
    (HERE / "fad_direction.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
