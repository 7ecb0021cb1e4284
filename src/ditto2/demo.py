"""`make demo`: the DITTO-2 story on real music, on this machine, in minutes.

Takes the committed tiny models (teacher, CTM student, in-domain CLAP), builds evaluation shards
from the Debian game-music tracks the teacher never trained on, and for each control runs one
DITTO-2 generation (CTM surrogate, M=1, T=2) and one DITTO-baseline generation (backprop through
the teacher's 20-step sampler) against a target from a held-out clip, with the clip's own tags.
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


def run_control(control: str, i: int, args, models: Path) -> dict:
    from ditto2.ito.run import load_config, run_ito

    spec = f"{{name: {control}, kwargs: {{embedder: {models / 'clap'}}}}}" if control == "text" else f"{{name: {control}}}"
    out = {}
    for label, method in METHODS:
        over = [f"method={method}", f"teacher={models / 'teacher'}", f"ctm={models / 'ctm'}", f"cm={models / 'cm'}",
                f"clap={models / 'clap'}", f"shards={args.shards}", f"controls=[{spec}]", "tags=reference",
                "batch=1", f"seed={args.seed + i}", f"steps={args.steps}", f"out={args.out}/{control}/{label}",
                *args.override]
        out[label] = run_ito(load_config(None, over))
    return out


def _collect(control: str, out: Path) -> None:
    """Flat files a person opens: reference / DITTO / DITTO-2 audio and plots side by side."""
    d = out / control
    for label in ("ditto2", "ditto"):
        item = d / label / "item_00"
        shutil.copy(item / "ito.wav", d / f"{label}.wav")
        shutil.copy(item / f"{control}.png", d / f"{label}.png")
        if (item / "reference.wav").exists():
            shutil.copy(item / "reference.wav", d / "reference.wav")


def write_pages(rows: list[dict], out: Path, meta: dict) -> None:
    head = ["control", "target", "DITTO s", "DITTO-2 s", "speed-up", "metric", "DITTO", "DITTO-2",
            "CLAP DITTO", "CLAP DITTO-2"]
    md = ["# ditto2 demo", "", meta["text"], "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cells = []
    for r in rows:
        vals = [r["control"], r["target"], r["ditto_s"], r["ditto2_s"], f"{r['speedup']}x", r["metric"],
                r["ditto_metric"], r["ditto2_metric"], r["ditto_clap"], r["ditto2_clap"]]
        md.append("| " + " | ".join(str(v) for v in vals) + " |")
        cells.append(vals)
    md += ["", "Audio and plots: `<control>/{reference,ditto,ditto2}.wav` and `<control>/{ditto,ditto2}.png`.",
           f"TensorBoard: `tensorboard --logdir {out}`", ""]
    (out / "README.md").write_text("\n".join(md))
    body = [f"<h1>ditto2 demo</h1><p>{html.escape(meta['text'])}</p><table border=1 cellpadding=4>",
            "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "<th>listen</th></tr>"]
    for r, vals in zip(rows, cells):
        c = r["control"]
        audio = "".join(f"<div>{n}<br><audio controls src='{c}/{n}.wav'></audio></div>"
                        for n in ("reference", "ditto", "ditto2") if (out / c / f"{n}.wav").exists())
        body.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in vals) + f"<td>{audio}</td></tr>")
        body.append(f"<tr><td colspan={len(head) + 1}><img src='{c}/ditto.png' width=45%> <img src='{c}/ditto2.png' width=45%></td></tr>")
    (out / "index.html").write_text("<html><body>" + "\n".join(body) + "</table></body></html>")


def _row(control: str, res: dict) -> dict:
    d2, d = res["ditto2"], res["ditto"]
    key = next(k for k in d2["metrics_mean"] if k != "clap_score")
    return {"control": control, "target": d2["targets"][0] if d2.get("targets") else "",
            "ditto_s": d["seconds_per_item"], "ditto2_s": d2["seconds_per_item"],
            "speedup": round(d["seconds_per_item"] / d2["seconds_per_item"], 1), "metric": key,
            "ditto_metric": d["metrics_mean"][key], "ditto2_metric": d2["metrics_mean"][key],
            "ditto_clap": d["metrics_mean"].get("clap_score"), "ditto2_clap": d2["metrics_mean"].get("clap_score")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="checkpoints/tiny")
    p.add_argument("--shards", default="data/shards/demo-tiny")
    p.add_argument("--cache-dir", default="data/cache/debian-music")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--steps", type=int, default=40, help="K for both methods (the paper: 70, 150 for melody/structure)")
    p.add_argument("--controls", nargs="*", default=list(CONTROLS))
    p.add_argument("--seed", type=int, default=0)
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
    rows = []
    for i, control in enumerate(args.controls):
        print(f"[demo] {control}: DITTO-2 (CTM, M=1, T=2) and DITTO (20-step teacher), K={args.steps}", flush=True)
        res = run_control(control, i, args, models)
        _collect(control, out)
        rows.append(_row(control, res))
        print(json.dumps(rows[-1]), flush=True)
    minutes = (time.time() - t0) / 60
    meta = {"text": f"One held-out clip per control, conditioned on its own tags; K={args.steps} Adam steps for both "
                    f"methods; times are wall seconds per generation on this machine; {minutes:.1f} min in all."}
    write_pages(rows, out, meta)
    (out / "results.json").write_text(json.dumps({"rows": rows, "minutes": round(minutes, 2)}, indent=1))
    print(f"\nOpen {out / 'index.html'} (or {out / 'README.md'}); tensorboard --logdir {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
