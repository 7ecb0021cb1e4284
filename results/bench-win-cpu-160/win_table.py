"""Issue 11's table on this machine: DITTO vs DITTO-2 CM vs DITTO-2 CTM per control, each with its defaults, and the
target's three checks (control at least as good as DITTO's, FAD no worse than DITTO's + 0.02, >= 30x faster).

`python results/bench-win-cpu-160/win_table.py` -> win_table.md. Reads only committed files: the cells' results.json
(`ditto2/` = CTM, `cm/` = CM, `ditto/` = DITTO, each 160 test items against the same 259-clip reference) and, for
the paired FAD difference and for DITTO's cells still partial, `ditto_vs_ditto2-<control>.json` (written by
ditto_vs_ditto2.py). A check that cannot be made yet says what it waits for; nothing is filled in from another
machine."""
import json
from pathlib import Path

HERE = Path(__file__).parent
CONTROLS = {"intensity": ("level MSE, dB²", -1), "melody": ("accuracy %", +1), "structure": ("SSM MSE", -1),
            "outpainting": ("masked mel MSE", -1), "inpainting": ("masked mel MSE", -1)}
FAD_MARGIN, SPEEDUP = 0.02, 30.0


def rows(folder: str) -> dict:
    path = HERE / folder / "results.json"
    return {r["control"]: r for r in json.loads(path.read_text())["rows"]} if path.is_file() else {}


def paired(control: str):
    path = HERE / f"ditto_vs_ditto2-{control}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def fad(row: dict) -> str:
    lo, hi = row["fad_ci95"]
    return f"{row['fad']:.3f} [{lo:.3f}, {hi:.3f}]"


def control_row(control: str, ctm: dict, cm: dict, ditto, pair) -> str:
    name, better = CONTROLS[control]
    cells = [f"{control} ({name}, {'↓' if better < 0 else '↑'})"]
    cells += [f"{num(r['value'])} / FAD {fad(r)}" if r else "not run" for r in (cm, ctm)]
    if ditto:  # the whole cell of 160 items
        cells.append(f"{num(ditto['value'])} / FAD {fad(ditto)}")
        won_control = (ctm["value"] - ditto["value"]) * better >= 0
        verdict_control = f"{'✓' if won_control else '✗'} {num(ctm['value'])} vs {num(ditto['value'])}"
        gap = ctm["fad"] - ditto["fad"]
        ci = (f" [{pair['fad']['difference_ci'][0]:+.3f}, {pair['fad']['difference_ci'][1]:+.3f}] paired"
              if pair and pair["fad"] and pair["n"] == 160 else "")
        verdict_fad = f"{'✓' if gap <= FAD_MARGIN else '✗'} {gap:+.3f}{ci}"
        ratio = ditto["seconds_per_item"] / ctm["seconds_per_item"]
    elif pair:  # DITTO's finished runs so far, paired with CTM's first items
        cells.append(f"partial: {num(pair['ditto'])} over the first {pair['n']} of 160 items; FAD waits for > 128")
        won_control = (pair["ditto2"] - pair["ditto"]) * pair["better"] >= 0
        verdict_control = (f"{'✓' if won_control else '✗'} {num(pair['ditto2'])} vs {num(pair['ditto'])} on "
                           f"{pair['n']} items ({pair['ditto2_wins']} won)")
        mt = pair["mean_term"]
        verdict_fad = (f"pending (mean term {mt['ditto2']:.3f} vs {mt['ditto']:.3f} on {pair['n']} items)")
        ratio = pair["s_per_item"]["ditto"] / ctm["seconds_per_item"]
    else:
        cells.append("not run on this machine")
        return " | ".join(cells + ["pending", "pending", "pending"])
    verdict_speed = f"{'✓' if ratio >= SPEEDUP else '✗'} {ratio:.0f}×"
    return " | ".join(cells + [verdict_control, verdict_fad, verdict_speed])


def main() -> None:
    ctm, cm, ditto = rows("ditto2"), rows("cm"), rows("ditto")
    lines = ["# DITTO vs DITTO-2 on one machine (2 CPU cores), 160 held-out test items per cell, K = 70", "",
             "`python results/bench-win-cpu-160/win_table.py` (reads the committed cells; see README.md for how each "
             "ran). Value / FAD [95 % bootstrap] against the 259 held-out clips no cell drew (floor 0.717). Target "
             f"(issue 11): CTM's control at least DITTO's, FAD at most DITTO's + {FAD_MARGIN}, ≥ {SPEEDUP:.0f}× "
             "faster (seconds per item of each cell's own runs on this kind of machine, not one side-by-side run).",
             "", "| control | DITTO-2 CM (defaults) | DITTO-2 CTM (defaults) | DITTO (step 5e-3) | CTM's control ≥ "
             "DITTO's | CTM's FAD − DITTO's ≤ +0.02 | CTM ≥ 30× faster |", "|---|---|---|---|---|---|---|"]
    for control in CONTROLS:
        lines.append("| " + control_row(control, ctm.get(control), cm.get(control), ditto.get(control),
                                        paired(control)) + " |")
    lines.append("")
    (HERE / "win_table.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
