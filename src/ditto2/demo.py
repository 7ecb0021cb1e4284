"""`make demo`: the DITTO-2 story on real music, on this machine, in minutes.

Takes the committed tiny models (teacher, CTM student, in-domain CLAP), builds evaluation shards
from the Debian game-music tracks the teacher never trained on, and for each control runs DITTO-2
(CTM surrogate with the control's chosen (M, T, γ) from experiments/ito/<control>.yaml) on several
items and the DITTO baseline (backprop through the teacher's 20-step sampler) on the first of them,
against targets from held-out clips, each with the clip's own tags.
Writes results/demo/ (wavs, target-vs-achieved plots, README.md + index.html) and TensorBoard logs.
"""
from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
import time
from pathlib import Path

CONTROLS = ("intensity", "melody", "structure", "outpainting", "inpainting", "text")
METHODS = (("ditto2", "ditto2-ctm"), ("ditto", "ditto"))
NEEDED = {"teacher": "make pretrain && make export-teacher", "ctm": "make distill-ctm && make export-students",
          "clap": "ditto2 fit --config experiments/clap/tiny.yaml, then ditto2 export ... checkpoints/tiny/clap"}


def check_models(models: Path) -> list[str]:
    return [f"  {name}: {models / name}.safetensors is missing — produce it with: {how}"
            for name, how in NEEDED.items() if not (models / f"{name}.safetensors").exists()]


def ensure_shards(shards: Path, teacher: Path, cache_dir: str) -> None:
    """Evaluation shards = the teacher's held-out tracks, normalized with the teacher's statistics."""
    if (shards / "index.json").exists():
        return
    from ditto2.audio.mel import MelConfig
    from ditto2.data.shards import ShardOptions, build_shards
    from ditto2.data.sources.debian_music import debian_music_tracks

    meta = json.loads(teacher.with_suffix(".json").read_text())
    tracks, skipped = debian_music_tracks(cache_dir)
    build_shards(tracks, shards, MelConfig.from_dict(meta["data"]["mel"]), ShardOptions(), workers=2,
                 prior_skipped=skipped, source="debian-music", reuse=meta["data"])


# what each control asks for and what to listen for: one sentence per row of the page
ASKED = {
    "intensity": "Follow a loudness curve (rising or falling by 6-15 dB); listen for the swell or the fade.",
    "melody": "Play a given melody (pitch class per frame); listen for the tune in the upper register.",
    "structure": "Repeat sections in a given form (e.g. ABA); listen for the return of the opening material.",
    "outpainting": "Continue the first second of a real clip; listen for a seamless start and a plausible continuation.",
    "inpainting": "Fill a 4 s gap between the first and last second of a real clip; listen at both seams.",
    "text": ("Match a caption (mood, genre, tempo) in the in-domain CLAP, graded by another CLAP and a tagger; "
             "listen for the mood and the beat."),
}
METRIC_NAMES = {"intensity_mse_db2": "level MSE (dB²)", "melody_accuracy_pct": "melody accuracy (%)",
                "structure_mse": "SSM MSE", "outpainting_masked_mel_mse": "masked mel MSE",
                "inpainting_masked_mel_mse": "masked mel MSE",
                "text_clap_judge_cosine": "judge-CLAP cosine", "text_clap_cosine_self_graded": "CLAP cosine (self-graded)"}


def run_control(control: str, i: int, args, models: Path) -> dict:
    """DITTO-2 (the control's chosen defaults) on ``args.items`` items and DITTO on the first of them."""
    from ditto2.runs.ito import (
        STUDENT_FIELD,
        ControlSpec,
        baseline_step,
        control_defaults,
        make_config,
        run_ito,
        student_of,
        with_overrides,
    )

    # graders no control optimizes, when the models folder has them: the judging CLAP and the tagger
    judge, tagger = (str(models / n) if (models / f"{n}.json").is_file() else None for n in ("clap-judge", "tagger"))
    kwargs = {"embedder": str(models / "clap"), "judge": judge} if control == "text" else {}
    base = make_config(teacher=str(models / "teacher"), ctm=str(models / "ctm"), cm=str(models / "cm"),
                       clap=str(models / "clap"), clap_judge=judge, tagger=tagger, shards=str(args.shards),
                       tags="reference", steps=args.steps,
                       controls=[ControlSpec(name=control, kwargs=kwargs)], seed=args.seed + i)
    out, path = {}, str(Path(args.defaults) / f"{control}.yaml")
    for label, method in METHODS:
        chosen = control_defaults(path, method) if method != "ditto" else baseline_step(path)
        if method in STUDENT_FIELD:  # the control's chosen student, by its name in the models folder
            chosen[STUDENT_FIELD[method]] = str(models / Path(chosen[STUDENT_FIELD[method]]).name)
        cfg = make_config(base, method=method, batch=args.items if label == "ditto2" else 1,
                          out=f"{args.out}/{control}/{label}", **chosen)
        cfg = with_overrides(cfg, args.override)
        out[label] = run_ito(cfg)
        if student_of(cfg):
            out[label]["student"] = Path(student_of(cfg)).name
    return out


def _collect(control: str, out: Path) -> None:
    """Flat files a person opens: reference / DITTO / DITTO-2 audio and plots side by side (item 1)."""
    d = out / control
    for label in ("ditto2", "ditto"):
        item = d / label / "item_00"
        shutil.copy(item / "ito.wav", d / f"{label}.wav")
        shutil.copy(item / f"{control}.png", d / f"{label}.png")
        if (item / "reference.wav").exists():
            shutil.copy(item / "reference.wav", d / "reference.wav")


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"


def write_pages(rows: list[dict], out: Path, meta: dict) -> None:
    head = ["control", "metric", "DITTO (item 1)", "DITTO-2 (item 1)", "DITTO-2 (all items)", "winner on item 1",
            "speed-up per item (DITTO-2 batched)", "committed table: DITTO / DITTO-2",
            "committed FAD ↓: DITTO / DITTO-2 (one machine)"]
    md = ["# ditto2 demo", "", meta["text"], "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cells = []
    for r in rows:
        arrow = "↑" if r["higher_is_better"] else "↓"
        table = (f"{_fmt(r['table_ditto'])} / {_fmt(r['table_ditto2'])} (n={r['table_n']})"
                 if r.get("table_ditto2") is not None else "–")
        fad = (f"{r['table_fad_ditto']:.3f} / {r['table_fad_ditto2']:.3f}" if r.get("table_fad_ditto") is not None
               else "– (DITTO's cell is from another machine or reference)" if r.get("table_ditto2") is not None
               else "–")
        vals = [r["control"], f"{METRIC_NAMES.get(r['metric'], r['metric'])} {arrow}", _fmt(r["ditto_metric"]),
                _fmt(r["ditto2_metric"]), f"{_fmt(r['ditto2_mean'])} (n={r['ditto2_n']})", r["winner"],
                f"{r['speedup']:.0f}× ({r['ditto_s']:.0f} s vs {r['ditto2_s']:.1f} s)", table, fad]
        md.append("| " + " | ".join(str(v) for v in vals) + " |")
        cells.append(vals)
    md += ["", *(f"- **{r['control']}** ({r['settings']}): {ASKED[r['control']]}" for r in rows), "",
           "Audio and plots: `<control>/{reference,ditto,ditto2}.wav` and `<control>/{ditto,ditto2}.png`.",
           f"TensorBoard: `tensorboard --logdir {out}`", ""]
    (out / "README.md").write_text("\n".join(md))
    body = ["<html><head><meta charset='utf-8'><title>ditto2 demo</title></head><body>",
            f"<h1>ditto2 demo</h1><p>{html.escape(meta['text'])}</p><table border=1 cellpadding=4>",
            "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "<th>listen</th></tr>"]
    for r, vals in zip(rows, cells):
        c = r["control"]
        audio = "".join(f"<div>{n}<br><audio controls src='{c}/{n}.wav'></audio></div>"
                        for n in ("reference", "ditto", "ditto2") if (out / c / f"{n}.wav").exists())
        tds = "".join(f"<td><b>{html.escape(str(v))}</b></td>" if h.startswith("winner") else f"<td>{html.escape(str(v))}</td>"
                      for h, v in zip(head, vals))
        body.append(f"<tr>{tds}<td>{audio}</td></tr>")
        body.append(f"<tr><td colspan={len(head) + 1}><i>{html.escape(ASKED[c])}</i> DITTO-2 settings: "
                    f"{html.escape(r['settings'])}.<br><img src='{c}/ditto.png' width=45%> "
                    f"<img src='{c}/ditto2.png' width=45%></td></tr>")
    (out / "index.html").write_text("\n".join(body) + "</table></body></html>")


# the committed large-n tables the page shows beside its own numbers, first file with a value wins: DITTO-2 with today's
# defaults (ditto2/: the cells paired with DITTO's on this machine), then with each control's chosen step, student, then
# the first defaults; DITTO from this machine where its cell is done, else the GPU's
COMMITTED_TABLES = ("results/bench-win-cpu-160/ditto2/results.json",
                    "results/bench-win-cpu-160/steps/results.json", "results/bench-win-cpu-160/students/results.json",
                    "results/bench-win-cpu-160/results.json", "results/bench-win-cpu-160/ditto/results.json",
                    "results/bench-gpu/results.json")


def _where(row: dict, meta: dict) -> tuple:
    """What a cell's FAD depends on besides its generations: the machine that vocoded and embedded them, the reference
    clips it was scored against, and n. Two FADs compare only when these agree (the same DITTO-2 cell scored 0.41 on
    2 CPU cores and 0.49 on the GPU against one reference: results/bench-win-cpu-160/README.md)."""
    device = str(row.get("device", "")).split(":")[0]
    return device, meta.get("machine"), meta.get("fad_reference_split"), meta.get("fad_reference_clips"), row["n"]


def _table_values(paths: list[Path]) -> dict:
    """{control: {ditto, ditto2, n, fad_ditto, fad_ditto2}} from committed `ditto2 bench` results.json files (Table 1
    rows): each value from the first file that has it (e.g. DITTO-2 with the defaults from the CPU table, DITTO from
    the GPU one). The FADs are given as a pair, and only when both cells were scored alike (``_where``); else None."""
    found: dict = {}
    for path in paths:
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for r in data["rows"]:
            if r["table"] != "controls" or r["method"] not in ("ditto", "ditto2-ctm"):
                continue
            found.setdefault(r["control"], {}).setdefault(r["method"], (r, _where(r, data.get("meta", {}))))
    out = {}
    for control, cells in found.items():
        if "ditto2-ctm" not in cells:
            continue
        fast, fast_where = cells["ditto2-ctm"]
        slow, slow_where = cells.get("ditto", (None, None))
        paired = slow is not None and slow_where == fast_where and None not in (slow.get("fad"), fast.get("fad"))
        out[control] = {"ditto": slow["value"] if slow else None, "ditto2": fast["value"], "n": fast["n"],
                        "fad_ditto": slow["fad"] if paired else None, "fad_ditto2": fast["fad"] if paired else None}
    return out


def _row(control: str, res: dict, table: dict) -> dict:
    from ditto2.bench.defaults import higher_is_better

    d2, d = res["ditto2"], res["ditto"]
    key = next(k for k in d2["metrics_mean"] if k.startswith(f"{control}_"))  # the control's grade
    higher = higher_is_better(key)
    first2, first = d2["items"][0][key], d["items"][0][key]
    tie = abs(first2 - first) <= 0.02 * max(abs(first), 1e-9)
    winner = "tie" if tie else ("DITTO-2" if (first2 > first) == higher else "DITTO")
    t = table.get(control, {})
    settings = (f"M={d2['M']}, T={d2['T']}" + (f", γ={d2['gamma']}" if d2["T"] > 1 else "")
                + (f", student {d2['student']}" if d2.get("student") else ""))
    return {"control": control, "target": d2["targets"][0] if d2.get("targets") else "", "metric": key,
            "higher_is_better": higher, "ditto_s": d["seconds_per_item"], "ditto2_s": d2["seconds_per_item"],
            "speedup": round(d["seconds_per_item"] / d2["seconds_per_item"], 1),
            "ditto_metric": first, "ditto2_metric": first2, "ditto2_mean": d2["metrics_mean"][key],
            "ditto2_n": len(d2["items"]), "winner": winner, "settings": settings,
            "table_ditto": t.get("ditto"), "table_ditto2": t.get("ditto2"), "table_n": t.get("n"),
            "table_fad_ditto": t.get("fad_ditto"), "table_fad_ditto2": t.get("fad_ditto2"),
            "ditto_clap": d["metrics_mean"].get("clap_score"), "ditto2_clap": d2["metrics_mean"].get("clap_score"),
            # a text control optimizes the same CLAP: its score is kept apart and said to be self-graded
            "ditto_clap_self_graded": d["metrics_mean"].get("clap_score_self_graded"),
            "ditto2_clap_self_graded": d2["metrics_mean"].get("clap_score_self_graded")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="checkpoints/tiny")
    p.add_argument("--shards", default="data/shards/demo-tiny")
    p.add_argument("--cache-dir", default="data/cache/debian-music")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--steps", type=int, default=40, help="K for both methods (the paper: 70, 150 for melody/structure)")
    p.add_argument("--controls", nargs="*", default=list(CONTROLS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--items", type=int, default=4, help="DITTO-2 generations per control (DITTO: the first one)")
    p.add_argument("--defaults", default="experiments/ito", help="per-control YAMLs holding DITTO-2's (M, T, γ, step)")
    p.add_argument("--table", nargs="*", default=list(COMMITTED_TABLES),
                   help="committed `ditto2 bench` tables shown beside the demo's own numbers (first file with a value wins)")
    p.add_argument("--override", nargs="*", default=[], help="extra ITO config overrides, key=value")
    p.add_argument("--shards-only", action="store_true", help="only build the held-out evaluation shards")
    args = p.parse_args(argv)
    models = Path(args.models)
    missing = check_models(models)
    if missing:
        print("The demo needs trained tiny models:\n" + "\n".join(missing), file=sys.stderr)
        return 2
    t0 = time.time()
    ensure_shards(Path(args.shards), models / "teacher", args.cache_dir)
    if args.shards_only:
        print(f"evaluation shards (the teacher's held-out tracks) in {args.shards}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, table = [], _table_values([Path(t) for t in args.table if t])
    from ditto2.quiet import quiet

    quiet()
    for i, control in enumerate(args.controls):
        print(f"[demo] {control}: DITTO-2 (CTM, its chosen defaults) on {args.items} items, DITTO (20-step teacher) "
              f"on the first, K={args.steps}", flush=True)
        res = run_control(control, i, args, models)
        _collect(control, out)
        rows.append(_row(control, res, table))
        r = rows[-1]
        print(f"[demo]   {METRIC_NAMES.get(r['metric'], r['metric'])}: DITTO {_fmt(r['ditto_metric'])}, DITTO-2 "
              f"{_fmt(r['ditto2_metric'])} (mean of {r['ditto2_n']}: {_fmt(r['ditto2_mean'])}) -> {r['winner']}; "
              f"{r['speedup']:.0f}x faster per item (DITTO-2 in a batch of {r['ditto2_n']})", flush=True)
    minutes = (time.time() - t0) / 60
    meta = {"text": f"Held-out clips the models never trained on, each conditioned on its own tags; K={args.steps} Adam "
                    f"steps for both methods; DITTO-2 on {args.items} items per control, DITTO on the "
                    f"first; the winner is decided on that shared item (ties within 2 %). Times are wall seconds per "
                    f"generation on this machine; {minutes:.1f} min in all. The last two columns are the committed "
                    f"tables ({', '.join(args.table) or 'none given'}), the numbers to trust; a FAD pair only where "
                    f"DITTO and DITTO-2 were scored on one machine against one reference (FAD moves with the machine "
                    f"by as much as the differences in question)."}
    write_pages(rows, out, meta)
    (out / "results.json").write_text(json.dumps({"rows": rows, "minutes": round(minutes, 2)}, indent=1))
    print(f"\nOpen {out / 'index.html'} (or {out / 'README.md'}); tensorboard --logdir {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
