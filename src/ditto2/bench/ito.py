"""`make bench-ito`: DITTO vs DITTO-2 (CM) vs DITTO-2 (CTM) per control, plus the (M, T) sweep of paper
Table 2, side by side in one run. Each configuration runs in a fresh process so its peak memory is
its own. Results: results/bench-ito/{results.json, results.csv, results.md}."""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import platform
import resource
import time
import traceback
from pathlib import Path

from omegaconf import OmegaConf

DEFAULTS = {
    "controls": {"intensity": 70, "melody": 150, "structure": 150, "outpainting": 70, "inpainting": 70},
    "methods": ["ditto", "ditto2-cm", "ditto2-ctm"],
    "batch": 1, "seed": 0, "decode_steps": 2, "m": 1, "gamma": 0.2,
    "sweep": {"control": "intensity", "method": "ditto2-ctm", "mt": [[1, 1], [1, 2], [1, 4], [2, 2], [2, 4], ["adaptive", 4]]},
    # features computed on the mel (default) vs on the differentiable Griffin-Lim audio
    "domains": {"controls": ["intensity", "melody", "structure"], "method": "ditto2-ctm"},
    "threads": 2, "out": "results/bench-ito", "overrides": [],
}


def _child(overrides: list[str], threads: int, queue) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
        from ditto2.ito.run import load_config, run_ito

        summary = run_ito(load_config(None, overrides))
        summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if torch.cuda.is_available():
            summary["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        queue.put(("ok", summary))
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def run_one(overrides: list[str], threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(overrides, threads, queue))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"ITO run failed ({' '.join(overrides)}):\n{payload}")
    return payload


def _metric(summary: dict) -> tuple[str, float]:
    """The control's own metric (the first one; the CLAP score, when present, is reported apart)."""
    key = next(k for k in summary["metrics_mean"] if k != "clap_score")
    return key, summary["metrics_mean"][key]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", help="YAML overriding the defaults above")
    p.add_argument("--only", nargs="*", help="subset of controls")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--no-domains", action="store_true")
    args = p.parse_args(argv)
    user = OmegaConf.load(args.config) if args.config else OmegaConf.create({})
    base = OmegaConf.create({k: v for k, v in DEFAULTS.items() if k not in user or k != "controls"})
    cfg = OmegaConf.merge(base, user)  # a config's control list replaces the default one
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    common = [f"batch={cfg.batch}", f"seed={cfg.seed}", f"gamma={cfg.gamma}", "tensorboard=false", *cfg.overrides]
    rows: list[dict] = []
    t0 = time.time()
    meta = {"machine": platform.machine(), "threads": cfg.threads, "batch": cfg.batch,
            "config": OmegaConf.to_container(cfg)}

    def record(table: str, control: str, extra: list[str]) -> None:
        s = run_one(common + [f"controls=[{{name: {control}}}]", *extra], cfg.threads)
        rows.append({"table": table, "control": control, **_row(s)})
        print(json.dumps(rows[-1]), flush=True)
        meta["wall_minutes"] = round((time.time() - t0) / 60, 1)
        _write(out, rows, meta)  # after every run: a long benchmark that is stopped keeps its rows

    for control, k in cfg.controls.items():
        if args.only and control not in args.only:
            continue
        for method in cfg.methods:
            record("controls", control, [f"method={method}", f"steps={k}", f"m={cfg.m}",
                                         f"decode_steps={cfg.decode_steps}", f"out={out}/runs/{control}-{method}"])
    if not args.no_sweep:
        sw = cfg.sweep
        for m, t in sw.mt:
            record("sweep", sw.control, [f"method={sw.method}", f"steps={cfg.controls[sw.control]}", f"m={m}",
                                         f"decode_steps={t}", f"out={out}/runs/sweep-{m}-{t}"])
    if not args.no_domains:
        dm = cfg.domains
        for control in dm.controls:
            if args.only and control not in args.only:
                continue
            record("domain", control, [f"method={dm.method}", f"steps={cfg.controls[control]}", f"m={cfg.m}",
                                       f"decode_steps={cfg.decode_steps}", "controls.0.domain=audio",
                                       f"out={out}/runs/{control}-audio"])
    from ditto2.bench.plots import write_plots

    for png in write_plots(out / "results.json"):
        print(f"wrote {png}")
    print((out / "results.md").read_text())
    return 0


def _write(out: Path, rows: list[dict], meta: dict) -> None:
    _speedups(rows)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    (out / "results.md").write_text(_markdown(rows, meta))


def _row(s: dict) -> dict:
    key, value = _metric(s)
    return {"method": s["method"], "domain": s.get("domains", ["mel"])[0], "K": s["K"], "M": s["M"], "T": s["T"], "seconds_per_item": s["seconds_per_item"],
            "optimize_s": s["optimize_s"], "decode_s": round(s["decode_s"] + s["vocode_s"], 3),
            "peak_rss_mb": s["peak_rss_mb"], "metric": key, "value": round(value, 4),
            "clap_score": s["metrics_mean"].get("clap_score"),
            "loss_start": round(s["loss_start"], 4), "loss_end": round(s["loss_end"], 4)}


def _speedups(rows: list[dict]) -> None:
    base = {r["control"]: r["seconds_per_item"] for r in rows if r["method"] == "ditto" and r["table"] == "controls"}
    for r in rows:
        r["speedup_vs_ditto"] = round(base[r["control"]] / r["seconds_per_item"], 1) if r["control"] in base else None


def _markdown(rows: list[dict], meta: dict) -> str:
    cols = ["control", "method", "domain", "K", "M", "T", "seconds_per_item", "optimize_s", "decode_s", "speedup_vs_ditto",
            "peak_rss_mb", "metric", "value", "clap_score", "loss_start", "loss_end"]
    lines = [f"# ITO benchmark ({meta['machine']}, {meta['threads']} threads, batch {meta['batch']}, "
             f"{meta.get('wall_minutes', 0)} min)", ""]
    for table, title in (("controls", "Table 1: DITTO vs DITTO-2 per control"), ("sweep", "Table 2: (M, T) sweep"),
                         ("domain", "Control features on vocoded audio (compare the mel-domain CTM rows of Table 1)")):
        sel = [r for r in rows if r["table"] == table]
        if not sel:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in sel] + [""]
    lines.append("decode_s includes vocoding; times are per item; peak_rss_mb is the whole process.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
