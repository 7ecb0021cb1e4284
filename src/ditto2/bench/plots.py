"""Paper Fig. 4 / Fig. 5 style plots from bench-ito rows (results.json)."""
from __future__ import annotations

import json
from pathlib import Path

from ditto2.viz import plt, save_figure

COLORS = {"ditto": "tab:orange", "ditto2-cm": "tab:blue", "ditto2-ctm": "tab:green"}


def fig4_runtime_vs_metric(rows: list[dict], control: str, audio_seconds: float | None = None):
    """Runtime per generation vs the control metric; point size grows with the CLAP score when present."""
    fig, ax = plt.subplots(figsize=(6, 4))
    sel = [r for r in rows if r["control"] == control and r.get("domain", "mel") == "mel"]
    for r in sel:
        clap = r.get("clap_score")
        size = 40 + 400 * max(0.0, clap) if clap is not None else 60
        ax.scatter(r["seconds_per_item"], r["value"], s=size, color=COLORS.get(r["method"], "gray"), alpha=0.7)
        ax.annotate(f"{r['method']} {r['M']}/{r['T']}", (r["seconds_per_item"], r["value"]), fontsize=7)
    if audio_seconds:
        ax.axvline(audio_seconds, ls="--", color="k", lw=0.8, label="real time")
        ax.legend(fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per generation (log)")
    ax.set_ylabel(sel[0]["metric"] if sel else "metric")
    ax.set_title(f"{control}: runtime vs control adherence (size: CLAP score)", fontsize=9)
    fig.tight_layout()
    return fig


def fig5_metric_vs_decoding_steps(rows: list[dict], control: str):
    """M=1 sweep rows: control metric (and CLAP score) vs T; the DITTO baseline as a horizontal line."""
    sweep = sorted((r for r in rows if r["table"] == "sweep" and str(r["M"]) == "1"), key=lambda r: r["T"])
    base = next((r for r in rows if r["method"] == "ditto" and r["control"] == control), None)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, key, label in ((axes[0], "value", sweep[0]["metric"] if sweep else "metric"), (axes[1], "clap_score", "CLAP score")):
        pts = [(r["T"], r[key]) for r in sweep if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", color=COLORS["ditto2-ctm"], label="DITTO-2 (M=1)")
        if base is not None and base.get(key) is not None:
            ax.axhline(base[key], color=COLORS["ditto"], label="DITTO (20/20)")
        ax.set_xlabel("decoding steps T")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{control}: quality and adherence vs decoding steps", fontsize=9)
    fig.tight_layout()
    return fig


def write_plots(results_json: str | Path) -> list[Path]:
    path = Path(results_json)
    rows = json.loads(path.read_text())["rows"]
    sweep_control = next((r["control"] for r in rows if r["table"] == "sweep"), None)
    out = []
    for control in sorted({r["control"] for r in rows}):
        p = path.parent / f"fig4_{control}.png"
        save_figure(fig4_runtime_vs_metric(rows, control, 5.944), p)
        out.append(p)
    if sweep_control:
        p = path.parent / f"fig5_{sweep_control}.png"
        save_figure(fig5_metric_vs_decoding_steps(rows, sweep_control), p)
        out.append(p)
    return out
