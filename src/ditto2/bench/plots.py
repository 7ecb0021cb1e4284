"""Paper Fig. 4 / Fig. 5 style plots from `ditto2 bench` rows (results.json)."""
from __future__ import annotations

import json
from pathlib import Path

from ditto2.viz import plt, save_figure

COLORS = {"ditto": "tab:orange", "ditto2-cm": "tab:blue", "ditto2-ctm": "tab:green", "base": "tab:gray"}


def _size(r: dict, fads: list[float]) -> float:
    """Point area: larger FAD = larger point (paper Fig. 4); the CLAP score when no FAD was computed."""
    if r.get("fad") is not None and fads:
        lo, hi = min(fads), max(fads)
        return 40 + 400 * ((r["fad"] - lo) / (hi - lo) if hi > lo else 0.5)
    clap = r.get("clap_score")
    return 40 + 400 * max(0.0, clap) if clap is not None else 60


def fig4_runtime_vs_metric(rows: list[dict], control: str, audio_seconds: float | None = None):
    """Runtime per generation vs the control metric; point size = FAD (or the CLAP score without FAD)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    sel = [r for r in rows if r["control"] == control and r.get("domain", "mel") == "mel" and r.get("seconds_per_item")]
    fads = [r["fad"] for r in sel if r.get("fad") is not None]
    real = next((r for r in rows if r["control"] == control and r["method"] == "real" and r.get("value") is not None), None)
    if real is not None:  # what real held-out clips score (Table 3's graders): a level, not a runtime
        ax.axhline(real["value"], ls=":", color="k", lw=0.8, label=f"real clips ({real['value']:.3g})")
    for r in sel:
        ax.scatter(r["seconds_per_item"], r["value"], s=_size(r, fads), color=COLORS.get(r["method"], "gray"), alpha=0.7)
        fad = f" FAD {r['fad']:.3g}" if r.get("fad") is not None else ""
        ax.annotate(f"{r.get('label', r['method'])} {r['M']}/{r['T']}{fad}", (r["seconds_per_item"], r["value"]), fontsize=7)
    if audio_seconds:
        ax.axvline(audio_seconds, ls="--", color="k", lw=0.8, label="real time")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per generation (log)")
    ax.set_ylabel(sel[0]["metric"] if sel else "metric")
    ax.set_title(f"{control}: runtime vs control adherence (size: {'FAD' if fads else 'CLAP score'})", fontsize=9)
    fig.tight_layout()
    return fig


def fig5_metric_vs_decoding_steps(rows: list[dict], control: str):
    """M=1 sweep rows: control metric, FAD and CLAP score vs T; the DITTO baseline as a horizontal line."""
    sweep = sorted((r for r in rows if r["table"] == "sweep" and str(r["M"]) == "1"), key=lambda r: r["T"])
    base = next((r for r in rows if r["method"] == "ditto" and r["control"] == control and r["table"] == "controls"), None)
    panels = [("value", sweep[0]["metric"] if sweep else "metric"), ("fad", "FAD"), ("clap_score", "CLAP score")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    for ax, (key, label) in zip(axes, panels):
        pts = [(r["T"], r[key]) for r in sweep if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", color=COLORS["ditto2-ctm"], label="DITTO-2 (M=1)")
        if base is not None and base.get(key) is not None:
            ax.axhline(base[key], color=COLORS["ditto"], label="DITTO (20/20)")
        if not pts and (base is None or base.get(key) is None):
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_xlabel("decoding steps T")
        ax.set_ylabel(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"{control}: adherence and quality vs decoding steps", fontsize=9)
    fig.tight_layout()
    return fig


def write_plots(results_json: str | Path, writer=None) -> list[Path]:
    path = Path(results_json)
    rows = json.loads(path.read_text())["rows"]
    sweep_control = next((r["control"] for r in rows if r["table"] == "sweep"), None)
    audio_seconds = next((r.get("audio_seconds") for r in rows if r.get("audio_seconds")), 5.944)
    figs = [(f"fig4_{c}", fig4_runtime_vs_metric(rows, c, audio_seconds)) for c in sorted({r["control"] for r in rows})]
    if sweep_control:
        figs.append((f"fig5_{sweep_control}", fig5_metric_vs_decoding_steps(rows, sweep_control)))
    out = []
    for name, fig in figs:
        if writer is not None:
            writer.add_figure(f"figures/{name}", fig, close=False)
        save_figure(fig, path.parent / f"{name}.png")
        out.append(path.parent / f"{name}.png")
    return out
