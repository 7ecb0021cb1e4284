"""Where the tag prior's validation outputs sit on the test items' DITTO → DITTO-2 axis (the direction of intensity's
FAD gap: results/bench-win-cpu-160/fad_direction.py), by quartile of the target's mean level, against the default
cell (K = 95, results/bench-k: its runs must be on this machine). From the repository root, seconds:
    python results/bench-tagprior/axis.py > results/bench-tagprior/axis.txt"""
from pathlib import Path

import numpy as np

from ditto2.bench.ito import finished_runs, finished_targets

TEST = Path("results/bench-win-cpu-160")
CELL = "sweep-intensity-ditto2-ctm_M1_T1_γ0.0_ctm-decode_lr0.02"
CELLS = {"default (K = 95)": Path("results/bench-k/k95/runs") / CELL,
         "tag prior, weight 1": Path("results/bench-tagprior/w1/runs") / CELL,
         "tag prior, weight 3": Path("results/bench-tagprior/w3/runs") / CELL}


def main() -> None:
    ditto = np.asarray(finished_runs(TEST / "ditto/runs/controls-intensity-ditto")[1])
    fast = np.asarray(finished_runs(TEST / "ditto2/runs/controls-intensity-ditto2-ctm")[1])
    gap = fast.mean(0) - ditto.mean(0)
    unit = gap / np.linalg.norm(gap)
    print(f"axis: test items' mean DITTO-2 − DITTO embedding, |d| = {np.linalg.norm(gap):.3f}; "
          "validation outputs' mean projection by quartile of the target's mean level, then over all items")
    levels = edges = None
    for name, folder in CELLS.items():
        emb = np.asarray(finished_runs(folder)[1]) @ unit
        level = finished_targets(folder, "intensity").numpy().mean(1)
        if levels is None:
            levels, edges = level, np.quantile(level, [0.25, 0.5, 0.75])
        if not np.allclose(level, levels, atol=1e-3):
            raise SystemExit(f"{folder}: other targets than the first cell's")
        quartile = np.searchsorted(edges, level, side="right")
        print(f"{name:22s}", " ".join(f"{emb[quartile == i].mean():+.3f}" for i in range(4)), f"| all {emb.mean():+.3f}")


if __name__ == "__main__":
    main()
