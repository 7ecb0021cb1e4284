"""Adherence vs the number of ITO steps K, per control, for the interactive page's preset (issue 16).

For every control (its experiment YAML's defaults: DITTO-2 CTM, M = T = 1 for all but text), ``n`` held-out items
of ``--split`` (val chooses, test reports) are optimized from the same noise with K in ``--ks`` steps, each Adam step
size ``--lrs``, decay (constant, or cosine from lr to 0) and Adam (β1, β2) ``--betas``, and graded on the decoded
audio by the control's own instrument (``Control.grade``, never its loss; the judging CLAP for text). The reference
is the YAML's full run (K = 70, 150 for melody and structure, its step size, Adam's default betas). Warm starts:
items optimized for one target (the full run) and then given another target (another item's) start from their
optimized noise instead of the fresh noise.

``--pick SHARE`` chooses per control the fewest steps whose best setting keeps SHARE of the full run's improvement
over no control (``kept_share``; results.md adds its paired bootstrap interval over the items); ``--max-k K --fill``:
the best setting at the largest K within a latency budget instead. ``--write-preset`` writes the picks to
``experiments/serve/interactive.yaml``; ``--repick`` picks again from earlier sweeps' results.json without compute
(each control's rows from sweeps of the same items). ``--set KEY=VALUE`` overrides every control's YAML, e.g.
``method=ditto`` to sweep the baseline's step size. Latency: one batch-1 generation (K steps + the decode) timed
``--repeats`` times per control with the picked (or ``--preset``) settings. ``make bench-interactive`` is the preset's
recipe: the five controls on 32 validation items, text (noisier grade) on 96, one repick, then other items of the
test split report it:

    python -m ditto2.bench.interactive --split val --n 96 --ks 8 --lrs 0.02 0.03 0.04 0.06 --decays constant \
        --betas 0.9,0.999 0.5,0.9 --controls text --out results/interactive/val-text96 --repeats 0
    python -m ditto2.bench.interactive --repick results/interactive/val-adam/results.json \
        results/interactive/val-text96/results.json --out results/interactive/val-picks --pick 0.9 --max-k 8 --fill \
        --write-preset
    python -m ditto2.bench.interactive --split test --n 96 --seed 2000 --controls text \
        --out results/interactive/test-text96 --preset experiments/serve/interactive.yaml
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Optional

from ditto2.ito.optimize import ADAM_BETAS, check_betas, initial_noise, optimize_noise

CONTROL_NAMES = ("intensity", "melody", "structure", "outpainting", "inpainting", "text")
PRESET_KEYS = ("steps", "lr", "lr_decay", "adam_betas")  # a setting: one control's entry of the preset YAML


def prepare(control: str, n: int, split: str, seed: int, overrides: list[str] = ()):
    """The control's YAML with n items of ``split`` -> (cfg, its built run (``runs.ito.build_run``), a vocoder)."""
    from ditto2.audio.vocoder import GriffinLimVocoder
    from ditto2.runs.ito import build_run, load_config

    # the page decodes with its models folder's ctm (serve.studio), whatever student a control's YAML names for
    # the tables: its preset is chosen and checked with that one
    cfg = load_config(f"experiments/ito/{control}.yaml", [f"batch={n}", f"split={split}", f"seed={seed}",
                                                          "tensorboard=false", "ctm=checkpoints/tiny/ctm", *overrides])
    run = build_run(cfg)
    return cfg, run, GriffinLimVocoder(run.gen.mel, run.gen.normalizer)


def grade(composite, target_sets, vocoder, mel, sample_rate) -> list[float]:
    """Per item: the first control's instrument on the decoded, vocoded audio."""
    import torch

    with torch.no_grad():
        waves = vocoder(mel).cpu().numpy()
    control, ts = composite.controls[0], target_sets[0]
    return [control.grade(waves[i], sample_rate, ts.metric_target[i]) for i in range(len(waves))]


def full_setting(cfg) -> dict:
    """The control's full run as a setting: its YAML's K, step size, decay and Adam betas."""
    return {"steps": cfg.steps, "lr": cfg.lr, "lr_decay": cfg.lr_decay, "adam_betas": list(cfg.adam_betas)}


def run_setting(surrogate, composite, z0, setting: dict, m=1):
    """``setting`` ({steps, lr, lr_decay, adam_betas}: a preset entry) from z0 -> (run, decoded mel, seconds)."""
    from ditto2.ito.surrogates import m_schedule

    t0 = time.perf_counter()
    run = optimize_noise(surrogate, composite, z0, m_schedule(setting["steps"], m), lr=setting["lr"],
                         lr_decay=setting["lr_decay"], betas=setting["adam_betas"])
    mel = run.decode()
    return run, mel, time.perf_counter() - t0


def result_row(control: str, composite, kind: str, setting: dict, values: list, seconds: float) -> dict:
    """One cell's row (the mean of its items' grades), printed as it lands."""
    c = composite.controls[0]
    row = {"control": control, "metric": c.metric, "higher_is_better": c.higher_is_better, "kind": kind,
           "K": setting["steps"], "lr": setting["lr"], "lr_decay": setting["lr_decay"],
           "adam_betas": [float(b) for b in setting["adam_betas"]], "n": len(values),
           "value": round(statistics.fmean(values), 5),
           "values": [round(v, 5) for v in values], "seconds_batch": round(seconds, 3)}
    print(json.dumps({key: v for key, v in row.items() if key != "values"}), flush=True)
    return row


def sweep_control(control: str, args) -> list[dict]:
    cfg, run, vocoder = prepare(control, args.n, args.split, args.seed, args.overrides)
    s, comp, ts, sr = run.surrogate, run.composite, run.target_sets, run.gen.mel.sample_rate
    z0 = initial_noise((args.n, 1, run.gen.mel.n_mels, run.gen.mel.frames), cfg.seed)

    def cell(kind, setting):
        _, mel, secs = run_setting(s, comp, z0, setting, cfg.m)
        row = result_row(control, comp, kind, setting, grade(comp, ts, vocoder, mel, sr), secs)
        return {**row, "split": args.split, "seed": args.seed, "overrides": list(args.overrides)}  # which items

    full = full_setting(cfg)
    rows = [cell("no control", {**full, "steps": 0}), cell("reference", full)]
    settings = [dict(zip(PRESET_KEYS, (k, lr, d, list(b))))
                for k, lr, d, b in itertools.product(args.ks, args.lrs, args.decays, args.betas)]
    if args.preset:
        settings = [{key: preset_for(args.preset, control)[key] for key in PRESET_KEYS}]
    for setting in settings:
        if setting == full:  # the reference's own setting: its row, not a rerun
            rows.append({**rows[1], "kind": "fresh"})
        else:
            rows.append(cell("fresh", setting))
    return rows


def warm_rows(control: str, setting: dict, args) -> list[dict]:
    """Warm starts: the n items, optimized for their targets (the YAML's full run), are asked for other targets (the
    next n items'); ``setting`` from their optimized noise vs from fresh noise, graded on the new targets."""
    from ditto2.runs.ito import build_run, make_config

    cfg, run, vocoder = prepare(control, args.n, args.split, args.seed, args.overrides)
    z0 = initial_noise((args.n, 1, run.gen.mel.n_mels, run.gen.mel.frames), cfg.seed)
    first, _, _ = run_setting(run.surrogate, run.composite, z0, full_setting(cfg), cfg.m)
    other = build_run(make_config(cfg, seed=cfg.seed + args.n), run.gen)
    rows = []
    for start, z in (("fresh", z0), ("warm", first.z.detach())):
        _, mel, secs = run_setting(run.surrogate, other.composite, z, setting, cfg.m)
        values = grade(other.composite, other.target_sets, vocoder, mel, run.gen.mel.sample_rate)
        rows.append(result_row(control, other.composite, f"new target, {start} start", setting, values, secs))
    return rows


def kept_share(value: float, none: float, reference: float) -> float:
    """How much of the full run's improvement over no control a setting keeps: (none − value) / (none − reference),
    1 = as good as the full K, 0 = no better than no control (the same formula for ↑ and ↓ metrics)."""
    return (none - value) / (none - reference) if none != reference else 1.0


def kept_share_ci(values, none, reference, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Paired percentile bootstrap of ``kept_share`` over items: one resample of the item indices draws the same items
    for the setting's, no control's and the full run's per-item grades."""
    import numpy as np

    v, u, r = (np.asarray(x, dtype=np.float64) for x in (values, none, reference))
    if not v.size == u.size == r.size >= 2:
        raise ValueError(f"a paired interval needs >= 2 items graded in all three cells, got {v.size}, {u.size}, {r.size}")
    idx = np.random.default_rng(seed).integers(0, v.size, size=(n_boot, v.size))
    gain = u[idx].mean(1) - r[idx].mean(1)
    shares = (u[idx].mean(1) - v[idx].mean(1)) / np.where(gain == 0, np.nan, gain)
    lo, hi = np.nanquantile(shares, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def within(value: float, reference: float, bound: float, higher_is_better: bool) -> bool:
    """Whether ``value`` is no more than ``bound`` (relative) worse than ``reference`` (better is always fine)."""
    slack = bound * abs(reference)
    return value >= reference - slack if higher_is_better else value <= reference + slack


def pick(rows: list[dict], share: float, max_k: Optional[int] = None, fill: bool = False) -> dict:
    """Per control: the fewest steps (at most ``max_k``: a latency budget) whose best (lr, decay) keeps at least
    ``share`` of the full K's improvement over no control (``kept_share``); when none does, the best setting at the
    largest K allowed (``within_bound`` false). ``fill``: always the largest K within the budget (the most adherence
    the budget buys), ``within_bound`` saying whether it keeps ``share``."""
    picks = {}
    for control in dict.fromkeys(r["control"] for r in rows):
        ref = next(r for r in rows if r["control"] == control and r["kind"] == "reference")
        none = next(r for r in rows if r["control"] == control and r["kind"] == "no control")
        fresh = [r for r in rows if r["control"] == control and r["kind"] == "fresh" and (max_k is None or r["K"] <= max_k)]
        if fill:
            fresh = [r for r in fresh if r["K"] == max(x["K"] for x in fresh)]
        better = (lambda r: r["value"]) if ref["higher_is_better"] else (lambda r: -r["value"])
        chosen, ok = None, False
        for k in sorted({r["K"] for r in fresh}):
            chosen = max((r for r in fresh if r["K"] == k), key=better)
            if kept_share(chosen["value"], none["value"], ref["value"]) >= share:
                ok = True
                break
        picks[control] = {"steps": chosen["K"], "lr": chosen["lr"], "lr_decay": chosen["lr_decay"],
                          "adam_betas": list(chosen.get("adam_betas", ADAM_BETAS)), "value": chosen["value"],
                          "reference": ref["value"], "reference_K": ref["K"],
                          "no_control": none["value"],
                          "kept_share": round(kept_share(chosen["value"], none["value"], ref["value"]), 3),
                          "within_15pct": within(chosen["value"], ref["value"], 0.15, ref["higher_is_better"]),
                          "within_bound": ok}
    return picks


def preset_for(path: str, control: str) -> dict:
    """The interactive settings of ``control`` in a preset YAML (``experiments/serve/interactive.yaml``)."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path))
    if control not in data.get("controls", {}):
        raise ValueError(f"{path} has no interactive settings for {control!r}")
    return {"adam_betas": list(ADAM_BETAS), **data["controls"][control]}


def write_preset(picks: dict, share: float, source: str, path: Path, max_k: Optional[int] = None) -> None:
    """The picks as the page's preset YAML (with ``max_k``: picked with --fill, the largest K within the budget)."""
    budget = f" --max-k {max_k} --fill" if max_k else ""
    lines = ["# The interactive page's ITO settings per control (ditto2 serve), picked on validation items by",
             f"#   python -m ditto2.bench.interactive ... --pick {share:g}{budget} --write-preset   (results: {source})",
             (f"# rule: K = {max_k} (what fits 1 s here), its best step size and Adam betas; kept = the share of the "
              "full-K improvement "
              f"over no control (target >= {share:.0%})" if max_k else
              f"# rule: the fewest steps K whose best step size and betas keep >= {share:.0%} of the control's full-K "
              "improvement"),
             "# over no control, graded on decoded audio (M, T, gamma: the control's experiments/ito/<control>.yaml).",
             f"kept_share: {share}", "controls:"]
    for control, p in picks.items():
        lines.append(f"  {control}: {{steps: {p['steps']}, lr: {p['lr']}, lr_decay: {p['lr_decay']}, adam_betas: [{_betas(p)}]}}"
                     f"  # {p['value']} "
                     f"vs {p['reference']} at K={p['reference_K']} and {p['no_control']} without control: keeps "
                     f"{p['kept_share']:.1%}{'' if p['within_bound'] else ' (BELOW the target)'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def latency(control: str, settings: dict, repeats: int, seed: int, overrides=()) -> dict:
    """Median wall time of one batch-1 generation (K Adam steps + the T-step decode) with ``settings``."""
    cfg, run, _ = prepare(control, 1, "val", seed, overrides)
    times = []
    for r in range(repeats + 1):  # the first is a warm-up
        z0 = initial_noise((1, 1, run.gen.mel.n_mels, run.gen.mel.frames), seed + r)
        _, _, secs = run_setting(run.surrogate, run.composite, z0, settings, cfg.m)
        times.append(secs)
    return {"control": control, "K": settings["steps"], "generation_s": round(statistics.median(times[1:]), 3),
            "max_s": round(max(times[1:]), 3), "repeats": repeats}


def write_results(out: Path, rows: list[dict], picks: dict, lat: list[dict], args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows, "picks": picks, "latency": lat},
                                                 indent=1))
    overrides = f"; {' '.join(args.overrides)}" if args.overrides else ""
    md = [f"# ITO steps vs adherence ({args.split} split, n = {args.n} items per cell, seed {args.seed}{overrides})", "",
          "Graded on decoded audio by each control's instrument (not its loss); ↓/↑: which way is better.", "",
          "kept: the share of the full-K run's improvement over no control (1 = as good as the full K).", "",
          "kept [95 %]: its paired bootstrap interval over the items (2000 resamples).", "",
          "| control | metric | setting | K | lr | decay | Adam β | value | kept [95 %] | batch s |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    ends = {(r["control"], r["kind"]): r for r in rows if r["kind"] in ("no control", "reference")}
    for r in rows:
        arrow = "↑" if r["higher_is_better"] else "↓"
        none, full = ends.get((r["control"], "no control")), ends.get((r["control"], "reference"))
        kept = ""
        if r["kind"] == "fresh" and None not in (none, full):
            kept = f"{kept_share(r['value'], none['value'], full['value']):.0%}"
            if len(r.get("values", [])) >= 2 and len(r["values"]) == len(none.get("values", [])) == len(full.get("values", [])):
                lo, hi = kept_share_ci(r["values"], none["values"], full["values"])
                kept += f" [{lo:.0%}, {hi:.0%}]"
        md.append(f"| {r['control']} | {r['metric']} {arrow} | {r['kind']} | {r['K']} | {r['lr']:g} | {r['lr_decay']} | "
                  f"{_betas(r)} | {r['value']:.4g} | {kept} | {r['seconds_batch']:.2f} |")
    if picks:
        rule = (f"K = {args.max_k}, the latency budget, its best step" if getattr(args, "fill", False) else
                f"the fewest steps keeping >= {args.pick:.0%} of the full-K improvement")
        md += ["", f"## Picks ({rule}; 'below': under {args.pick:.0%})", "",
               "| control | K | lr | decay | Adam β | value | full K | value at full K | no control | kept | "
               "within 15 % of full K |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
        md += [f"| {c} | {p['steps']} | {p['lr']:g} | {p['lr_decay']} | {_betas(p)} | {p['value']:.4g} | {p['reference_K']} | "
               f"{p['reference']:.4g} | {p['no_control']:.4g} | {p['kept_share']:.0%}{'' if p['within_bound'] else ' (below)'} | "
               f"{'yes' if p['within_15pct'] else 'no'} |" for c, p in picks.items()]
    if lat:
        md += ["", "## One generation at batch 1 (K steps + decode), median of repeats", "",
               "| control | K | seconds | max |", "|---|---|---|---|"]
        md += [f"| {x['control']} | {x['K']} | {x['generation_s']:.3f} | {x['max_s']:.3f} |" for x in lat]
    (out / "results.md").write_text("\n".join(md) + "\n")
    try:
        plot(out, rows)
    except Exception as e:  # a figure is a nicety; the table is the result
        print(f"no figure: {e}")


def _betas(row: dict) -> str:
    return ", ".join(f"{b:g}" for b in row.get("adam_betas", ADAM_BETAS))


def plot(out: Path, rows: list[dict]) -> None:
    """Adherence vs K, one line per (step, decay, betas); a sweep of one K: adherence vs the step size instead, one line
    per (decay, betas). The full run is the black line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    controls = list(dict.fromkeys(r["control"] for r in rows))
    fresh = [r for r in rows if r["kind"] == "fresh"]
    x = "K" if len({r["K"] for r in fresh}) > 1 else "lr"
    curve = (lambda r: (r["lr"], r["lr_decay"], _betas(r))) if x == "K" else (lambda r: (r["lr_decay"], _betas(r)))
    fig, axes = plt.subplots(1, len(controls), figsize=(3.2 * len(controls), 3), squeeze=False)
    for ax, control in zip(axes[0], controls):
        ref = next(r for r in rows if r["control"] == control and r["kind"] == "reference")
        mine = sorted((r for r in fresh if r["control"] == control), key=lambda r: (*curve(r), r[x]))
        for key, group in itertools.groupby(mine, key=curve):
            g = list(group)
            ax.plot([r[x] for r in g], [r["value"] for r in g], "o-" if key[-2] == "cosine" else "s--", ms=3,
                    label=" ".join(f"{v:g}" if isinstance(v, float) else v for v in key[:-1]) + f" β {key[-1]}")
        ax.axhline(ref["value"], color="k", lw=1, label=f"K={ref['K']} (full)")
        ax.set_title(control if x == "K" else f"{control}, K = {mine[0]['K'] if mine else '?'}", fontsize=9)
        ax.set_xlabel("K" if x == "K" else "Adam step size")
        ax.set_ylabel(ref["metric"] + (" ↑" if ref["higher_is_better"] else " ↓"), fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "adherence_vs_k.png", dpi=110)
    plt.close(fig)


def sweep_rows(files: list[str], controls=None) -> list[dict]:
    """The sweep rows of earlier runs' results.json. Each control's rows must come from sweeps of the same items (split,
    n, seed) with the same ``--set`` overrides; different controls may have been swept on different numbers of items
    (text, whose grade is noisier, on more). A cell (control, kind, K, step, decay, betas) in several files counts once
    (the first). ``controls``: only these controls' rows."""
    rows, items = {}, {}
    for f in files:
        data = json.loads(Path(f).read_text())
        for r in data["rows"]:
            if r["kind"] in ("no control", "reference", "fresh") and (controls is None or r["control"] in controls):
                # the row's own items; rows written before they carried them: the file's arguments
                own = {**data["args"], "overrides": data["args"].get("overrides", []), **r}
                graded = (own["split"], own["n"], own["seed"], tuple(own["overrides"]))
                items.setdefault(r["control"], set()).add(graded)
                key = (r["control"], r["kind"], r["K"], r["lr"], r["lr_decay"], _betas(r))
                rows.setdefault(key, r)
    mixed = {c: sorted(v) for c, v in items.items() if len(v) > 1}
    if mixed:
        raise ValueError(f"--repick files graded different items (split, n, seed, overrides) for {mixed}")
    return list(rows.values())


def _pair(text: str) -> list[float]:
    """``b1,b2`` -> [b1, b2], checked like the configs' ``adam_betas``."""
    try:
        return list(check_betas(float(x) for x in text.split(",")))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/interactive/val")
    p.add_argument("--controls", nargs="*", default=list(CONTROL_NAMES))
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ks", type=int, nargs="*", default=[5, 8, 12, 20])
    p.add_argument("--lrs", type=float, nargs="*", default=[0.02, 0.04, 0.08])
    p.add_argument("--decays", nargs="*", default=["constant", "cosine"])
    p.add_argument("--betas", type=_pair, nargs="*", default=[[0.9, 0.999], [0.5, 0.9]],
                   help="Adam (β1, β2) pairs to sweep, each as b1,b2")
    p.add_argument("--set", nargs="*", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="overrides of every control's YAML, e.g. method=ditto: the baseline's step sizes")
    p.add_argument("--preset", help="a preset YAML: run only its setting per control (the test-split check)")
    p.add_argument("--warm", action="store_true", help="also measure warm starts for a new target")
    p.add_argument("--pick", type=float, help="choose the fewest steps keeping this share of the full-K improvement")
    p.add_argument("--max-k", type=int, help="pick among K <= this (the steps that fit the latency budget)")
    p.add_argument("--fill", action="store_true", help="with --max-k: the largest K within it, its best step size")
    p.add_argument("--repick", nargs="+", help="results.json of earlier sweeps (e.g. one more K for one control): pick "
                   "(and --write-preset) from their rows without compute")
    p.add_argument("--write-preset", action="store_true", help="write the picks to experiments/serve/interactive.yaml")
    p.add_argument("--repeats", type=int, default=5, help="batch-1 generations timed per control (0: none)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.write_preset and args.overrides:
        p.error("--write-preset takes the control YAMLs as they are: drop --set")
    import torch

    from ditto2.quiet import quiet

    quiet()
    torch.set_num_threads(args.threads)
    out, rows = Path(args.out), []
    if args.repick:
        rows = sweep_rows(args.repick, args.controls)
        args.repeats, args.warm = 0, False
    for control in [] if args.repick else args.controls:
        rows += sweep_control(control, args)
        write_results(out, rows, {}, [], args)
    picks = pick(rows, args.pick, args.max_k, args.fill) if args.pick is not None else {}
    if args.write_preset and picks:
        write_preset(picks, args.pick, str(out), Path("experiments/serve/interactive.yaml"),
                     args.max_k if args.fill else None)
    settings = picks or ({c: preset_for(args.preset, c) for c in args.controls} if args.preset else {})
    if args.warm:
        for control, setting in settings.items():
            rows += warm_rows(control, setting, args)
            write_results(out, rows, picks, [], args)
    lat = [latency(c, s, args.repeats, args.seed, args.overrides) for c, s in settings.items()] if args.repeats else []
    write_results(out, rows, picks, lat, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
