"""Per-control defaults from a measured sweep (paper §4: "the best performing configuration for each task").

`python -m ditto2.bench.defaults results/bench-defaults` reads the sweep rows that
`ditto2 bench --config experiments/bench/defaults-tiny.yaml` wrote (validation clips and seeds the test
tables never use), picks for every (control, method) the (M, T, γ) with the best graded metric, and
writes winners.{json,md} beside them. Ties within ``--tolerance`` (relative) go to the faster cell.
``--max-m 1`` keeps only cells with one student call per Adam step: the project's speed target (DITTO-2
at least 30× faster than DITTO) does not survive M = 2 (twice the cost per step); a schedule counts with its
mean M (``ito.surrogates.m_mean``: "1:0.8,2" is 1.2, the paper's adaptive 1.75).
``--by-fad`` (a sweep with FAD per cell, n > the CLAP's dimensions, e.g. students compared through a sweep's
``students:``): among the cells whose control metric is not measurably worse than the best cell's (their 95 %
bootstrap intervals overlap), the lowest FAD wins: control first, then what the generations sound like.
`pick_against_baseline` is the issue's own bar for one swept setting (e.g. the step size), for a sweep whose FADs were
paired item by item: control at least the baseline's (DITTO on the same validation items), then control is given up
only for a measurably lower FAD.
``--check experiments/ito`` fails when a control's YAML does not hold its winner (the test suite
runs this against the committed sweeps); a control whose choice a later sweep made again is left to that sweep: the
folder's winners.json lists it under ``superseded_by`` (kept when winners.json is rewritten).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from ditto2.ito.options import options_on
from ditto2.ito.surrogates import m_mean


def higher_is_better(metric: str) -> bool:
    """A report column's direction: ``<control>_<metric>`` from the control's registry entry; CLAP scores up."""
    from ditto2.controls import CONTROLS

    if metric.startswith("clap_score"):
        return True
    for name, cls in CONTROLS.items():
        if metric.startswith(f"{name}_"):  # the control's grade (its key depends on the instrument, e.g. text)
            return cls.higher_is_better
    raise ValueError(f"no registered control reports the metric {metric!r}")


def _spec(m):
    """A row's M as an ITO config takes it: an int where it is one, else the schedule string."""
    return int(m) if str(m).strip().isdigit() else str(m)


def better(metric: str) -> str:
    return "higher" if higher_is_better(metric) else "lower"


def not_worse(row: dict, best: dict) -> bool:
    """The row's control metric is not measurably worse than the best row's: their 95 % intervals overlap."""
    (lo, hi), (blo, bhi) = row["value_ci95"], best["value_ci95"]
    return lo <= bhi and blo <= hi


def pick(rows: list[dict], tolerance: float = 0.02, max_m: int | None = None, by_fad: bool = False) -> dict:
    """{control: {method: winning row}} over the sweep rows; a cell within ``tolerance`` of the best
    value (relative) and faster wins the tie. ``max_m``: only cells whose surrogate takes at most that
    many steps per Adam step on average (``m_mean``; the adaptive schedule counts 1.75). ``by_fad``: among
    the cells not measurably worse than the best (``not_worse``), the lowest FAD (cells without one are out)."""
    groups: dict = {}
    for r in rows:
        if r["table"] == "sweep" and (max_m is None or m_mean(r["M"]) <= max_m):
            groups.setdefault(r["control"], {}).setdefault(r["method"], []).append(r)
    out: dict = {}
    for control, by_method in groups.items():
        for method, cands in by_method.items():
            sign = -1.0 if higher_is_better(cands[0]["metric"]) else 1.0
            if by_fad:
                cands = [r for r in cands if r.get("fad") is not None and r.get("value_ci95")]
                if not cands:
                    continue
                top = min(cands, key=lambda r: sign * r["value"])
                out.setdefault(control, {})[method] = min((r for r in cands if not_worse(r, top)),
                                                          key=lambda r: (r["fad"], r["seconds_per_item"]))
                continue
            best = min(sign * r["value"] for r in cands)
            close = [r for r in cands if sign * r["value"] <= best + tolerance * abs(best)]
            out.setdefault(control, {})[method] = min(close, key=lambda r: (r["seconds_per_item"], sign * r["value"]))
    return out


def pick_against_baseline(cells: list[dict], bar: float, higher: bool, fad_lower) -> Optional[dict]:
    """One setting among ``cells`` (each with ``value``, the control metric over the sweep's items, and ``value_bar``,
    over the baseline's items), by the target "control at least the baseline's, FAD as low as it gets": only cells
    whose ``value_bar`` is at least ``bar`` (the baseline's value on those items) count; the walk starts at the
    best-controlling one and moves to a worse-controlling one only where ``fad_lower(cell, current)`` (its FAD is
    measurably lower: a paired 95 % interval of the difference below zero). None when no cell reaches the bar."""
    sign = 1.0 if higher else -1.0
    ok = sorted((c for c in cells if sign * (c["value_bar"] - bar) >= 0), key=lambda c: -sign * c["value"])
    if not ok:
        return None
    current = ok[0]
    for cell in ok[1:]:
        if fad_lower(cell, current):
            current = cell
    return current


def cell_key(cell: dict) -> str:
    """A ``pick_against_baseline`` cell's name in a pair table: its step, after its student bundle's name where the
    sweep compared students (the cell has ``student``)."""
    return f"{Path(cell['student']).name} {cell['lr']:g}" if "student" in cell else f"{cell['lr']:g}"


def cell_settings(cell: dict) -> dict:
    """The ``experiments/ito/<control>.yaml`` fields a ``pick_against_baseline`` cell sets for DITTO-2 CTM: its step
    ``lr``, and its student bundle as ``ctm`` where the sweep compared students."""
    return {"lr": cell["lr"], **({"ctm": cell["student"]} if "student" in cell else {})}


def superseded(folder: Path) -> dict:
    """{control: the later winners.json that re-chose it} from ``folder``/winners.json (none when it has no such list)."""
    path = Path(folder) / "winners.json"
    return json.loads(path.read_text()).get("superseded_by", {}) if path.exists() else {}


def as_settings(row: dict, with_lr: bool = False) -> dict:
    """The ITO config values a winning row stands for: (M, T, γ), its student bundle where the row names one, the
    options it ran with on (``ito.options``: priors, best-of-n start, optimizer, smoothing, ...), and with ``with_lr``
    its Adam step size (a sweep that compared steps: ``lrs:``)."""
    from ditto2.runs.ito import STUDENT_FIELD

    m = _spec(row["M"])
    out = {"m": m, "decode_steps": int(row["T"]), "gamma": float(row["gamma"] if row.get("gamma") is not None else 0.0)}
    if row.get("student") and row.get("method") in STUDENT_FIELD:
        out[STUDENT_FIELD[row["method"]]] = row["student"]
    if with_lr and row.get("lr") is not None:
        out["lr"] = float(row["lr"])
    out.update(options_on(row))  # its options that were on (a row without one ran with it off)
    return out


def swept_lr(rows: list[dict], control: str, method: str) -> bool:
    """Whether the sweep compared step sizes for (control, method): its cells ran at more than one."""
    return len({r.get("lr") for r in rows if r["table"] == "sweep" and r["control"] == control
                and r["method"] == method and r.get("lr") is not None}) > 1


def markdown(winners: dict, rows: list[dict], meta: dict, rule: str = "") -> str:
    lines = [f"# Per-control defaults chosen on validation material ({meta.get('n')} generations per cell)", "", rule, "",
             "| control | method | student | metric | better | M | T | γ | step | value [95 % CI] | FAD | s/item | cells |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for control, by_method in winners.items():
        for method, r in by_method.items():
            n_cells = sum(1 for x in rows if x["table"] == "sweep" and x["control"] == control and x["method"] == method)
            s = as_settings(r)
            ci = f" {r['value_ci95']}" if r.get("value_ci95") else ""
            lines.append(f"| {control} | {method} | {r.get('student') or ''} | {r['metric']} | {better(r['metric'])} | "
                         f"{s['m']} | {s['decode_steps']} | {s['gamma']} | {r.get('lr') or ''} | {r['value']}{ci} | "
                         f"{r.get('fad') or ''} | "
                         f"{r['seconds_per_item']} | {n_cells} |")
    return "\n".join(lines) + "\n"


def check(winners: dict, folder: Path, rows: list[dict] = ()) -> list[str]:
    """Mismatches between the winners and what ``folder/<control>.yaml`` resolves to per method (its step size too
    where the sweep ``rows`` compared step sizes)."""
    from ditto2.runs.ito import control_defaults

    problems = []
    for control, by_method in winners.items():
        path = folder / f"{control}.yaml"
        for method, row in by_method.items():
            want = as_settings(row, with_lr=swept_lr(rows, control, method))
            have = {k: v for k, v in control_defaults(str(path), method).items() if k in want}
            if method == "ditto2-cm":  # γ means nothing to CM's ping-pong decode
                want.pop("gamma"), have.pop("gamma")
            if want != have:
                problems.append(f"{path} gives {method} {have}, the sweep chose {want}")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="a `ditto2 bench` output folder with sweep rows")
    p.add_argument("--tolerance", type=float, default=0.02)
    p.add_argument("--max-m", type=float,
                   help="only cells with at most this many surrogate steps per Adam step on average (the speed target)")
    p.add_argument("--by-fad", action="store_true",
                   help="among cells whose control metric is not measurably worse than the best, the lowest FAD")
    p.add_argument("--check", metavar="FOLDER", help="per-control YAMLs that must hold the winners")
    args = p.parse_args(argv)
    folder = Path(args.sweep)
    data = json.loads((folder / "results.json").read_text())
    if args.check and (folder / "winners.json").exists():  # check with the rule the winners were picked by
        rule = json.loads((folder / "winners.json").read_text())["rule"]
        args.tolerance, args.max_m, args.by_fad = rule["tolerance"], rule["max_m"], rule.get("by_fad", False)
    later = superseded(folder)
    winners = pick(data["rows"], args.tolerance, args.max_m, args.by_fad)
    if not winners:
        print(f"{folder} has no sweep rows", file=sys.stderr)
        return 2
    if args.check:
        problems = check({c: w for c, w in winners.items() if c not in later}, Path(args.check), data["rows"])
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    (folder / "winners.json").write_text(json.dumps({
        "rule": {"tolerance": args.tolerance, "max_m": args.max_m, "by_fad": args.by_fad},
        **({"superseded_by": later} if later else {}),
        "winners": {c: {m: {**as_settings(r, with_lr=swept_lr(data["rows"], c, m)), "metric": r["metric"],
                            "value": r["value"], "fad": r.get("fad"), "seconds_per_item": r["seconds_per_item"]}
                        for m, r in bm.items()}
                    for c, bm in winners.items()}}, indent=1))
    rule = ("Rule: among the cells whose graded metric is not measurably worse than the best cell's (95 % "
            "bootstrap intervals overlap), the lowest FAD" if args.by_fad else
            f"Rule: the best graded metric (ties within {args.tolerance:.0%} go to the faster cell)") \
        + (f", among cells with M <= {args.max_m}." if args.max_m else ".")
    (folder / "winners.md").write_text(markdown(winners, data["rows"], data["meta"], rule))

    print((folder / "winners.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
