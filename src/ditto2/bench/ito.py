"""`ditto2 bench --config experiments/bench/<table>.yaml` (= `make bench`): the paper's tables, side by side
in one run.

- ``controls`` (Table 1): DITTO vs DITTO-2 (CM) vs DITTO-2 (CTM) per control;
- ``sweep`` (Table 2): (M, T[, γ]) of one control, incl. the adaptive M schedule; a list of such
  sweeps over several controls and methods chooses the per-control defaults (``ditto2.bench.defaults``);
- ``text`` (Table 3): base model with tags (no optimization) vs DITTO-2 text control with tags / null tags;
- ``domains``: control features on vocoded audio instead of the mel (an ablation of ours).

A cell is ``n`` generations, made by ceil(n / batch) ITO runs with seeds seed, seed+1, ...; each cell
runs in a fresh process (``isolate``), so its peak memory is its own. Per cell: time per generation,
the control's reference metric and the CLAP score (means over items), and FAD of the pooled
generations' CLAP embeddings against held-out test clips (``fad_reference``) — only when n exceeds the
embedding dimension, because fewer samples give a singular covariance. Results are written after every
cell (a stopped benchmark keeps its rows) to ``out``/results.{json,csv,md}, Fig. 4/5 PNGs and TensorBoard.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import multiprocessing as mp
import platform
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from ditto2.ito.options import options_on


@dataclass
class BenchConfig:
    """A benchmark YAML's keys. A section the YAML gives replaces the default's whole (null switches it off)."""

    n: int = 1
    batch: int = 1
    seed: int = 0
    threads: int = 2
    # processes a cell's runs are spread over (each takes every devices-th run, on its own GPU when there are
    # enough, else on threads // devices CPU threads); the merged cell equals the one-process cell
    devices: int = 1
    isolate: bool = True  # each cell in a fresh process: its peak memory is its own
    max_minutes: Optional[float] = None
    tf32: bool = True
    out: str = "results/bench-ito"
    overrides: list = field(default_factory=list)  # key=value over the ITO defaults, for every cell
    fad_reference: Any = "all"
    report_items: int = 2
    # Table 1: control -> K
    controls: Optional[dict] = field(default_factory=lambda: {
        "intensity": 70, "melody": 150, "structure": 150, "outpainting": 70, "inpainting": 70})
    methods: list = field(default_factory=lambda: ["ditto", "ditto2-cm", "ditto2-ctm"])
    decode_steps: int = 2
    m: Any = 1
    gamma: float = 0.2
    # a folder of per-control ITO YAMLs (experiments/ito): Table 1's DITTO-2 cells take each control's
    # chosen (M, T, γ) from <folder>/<control>.yaml instead of the table-wide m / decode_steps / gamma
    control_defaults: Optional[str] = None
    # Table 2: {control | controls, method | methods, mt: [[M, T] or [M, T, γ], ...]}, or a list of such
    sweep: Any = field(default_factory=lambda: {
        "control": "intensity", "method": "ditto2-ctm", "mt": [[1, 1], [1, 2], [1, 4], [2, 2], [2, 4], ["adaptive", 4]]})
    # Table 3: rows are (label, method, K, tags); K = 0 is plain sampling from the initial noise
    text: Optional[dict] = field(default_factory=lambda: {
        "steps": 70, "rows": [["base", "ditto", 0, "reference"], ["ditto2-tags", "ditto2-ctm", None, "reference"],
                              ["ditto2-null", "ditto2-ctm", None, "null"]]})
    # features computed on the mel (default) vs on the differentiable Griffin-Lim audio
    domains: Optional[dict] = field(default_factory=lambda: {
        "controls": ["intensity", "melody", "structure"], "method": "ditto2-ctm"})


def load_bench_config(path: Optional[str]) -> BenchConfig:
    user = OmegaConf.to_container(OmegaConf.load(path)) if path else {}
    known = {f.name for f in dataclasses.fields(BenchConfig)}
    unknown = set(user) - known
    if unknown:
        raise ValueError(f"{path}: unknown benchmark keys {sorted(unknown)}; known: {sorted(known)}")
    cfg = BenchConfig(**user)
    OmegaConf.structured(cfg)  # type-checks every field
    if cfg.n < 1 or cfg.batch < 1:
        raise ValueError("n and batch must be >= 1")
    return cfg


TABLES = (("controls", "Table 1: DITTO vs DITTO-2 per control"), ("sweep", "Table 2: (M, T) sweep"),
          ("text", "Table 3: text control (CLAP)"),
          ("domain", "Control features on vocoded audio (compare the mel-domain CTM rows of Table 1)"))
# graders no control optimizes, shown when a cell has them: the tagger (vs the caption's tags) and librosa's tempo
GRADE_COLUMNS = ["genre_acc", "mood_acc", "tempo_bucket_acc", "text_tempo_error_pct", "text_tempo_within_8pct",
                 "text_tempo_octave_within_8pct"]
# the CLAPs a table can grade with: key -> (the ITOConfig field, the pooled embeddings' file)
CLAPS = {"clap": ("clap", "embeddings.pt"), "laion": ("laion_clap", "embeddings_laion.pt"),
         "judge": ("clap_judge", "embeddings_judge.pt")}
COLUMNS = ["control", "label", "method", "student", "condition", "domain", "K", "M", "T", "gamma", "lr", "n", "batch",
           "seconds_per_item", "optimize_s", "decode_s", "speedup_vs_ditto", "metric", "value", "value_ci95", "clap_score",
           "clap_score_self_graded", "fad", "fad_ci95",
           "fad_floor", "clap_judge_score", "fad_judge", "fad_judge_floor", *GRADE_COLUMNS, "clap_score_laion",
           "fad_laion", "loss_start",
           "loss_end", "peak_rss_mb", "peak_cuda_mb"]


# ------------------------------------------------------------------ one cell (in a child process)


def _run_part(configs: list, device: str, threads: int) -> list[dict]:
    """One process's share of a cell: its runs, in order, on ``device``."""
    import torch

    from ditto2.runs.ito import make_config, run_ito

    torch.set_num_threads(threads)
    return [run_ito(make_config(cfg, device=device)) for cfg in configs]


def spread_runs(configs: list, devices: int, threads: int) -> list[dict]:
    """Run ITO configs in ``devices`` spawned processes (process k: configs k, k + devices, ...; on cuda:k when there
    are that many GPUs, else on the CPU) -> their summaries in the configs' order."""
    import torch

    gpus = torch.cuda.device_count()
    parts = [(configs[k::devices], f"cuda:{k}" if gpus >= devices else "cpu", max(1, threads // devices))
             for k in range(devices)]
    with mp.get_context("spawn").Pool(devices) as pool:
        done = pool.starmap(_run_part, parts)
    out = [None] * len(configs)
    for k, summaries in enumerate(done):
        out[k::devices] = summaries
    return out


def run_cell(ito, n: int, batch: int, seed: int, out: str, devices: int = 1, threads: int = 2) -> dict:
    """ceil(n / batch) ITO runs of the ``ITOConfig`` ``ito`` (spread over ``devices`` processes) -> pooled
    per-item metrics, embeddings and timings of n generations."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from ditto2.runs.ito import make_config, run_ito

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()  # per cell, also when cells share a process
    t0 = time.perf_counter()
    configs = [make_config(ito, batch=min(batch, n - j * batch), seed=seed + j, out=f"{out}/run{j:02d}")
               for j in range(math.ceil(n / batch))]
    done = {j: finished_run(cfg) for j, cfg in enumerate(configs)}  # a stopped cell resumes at its first unfinished run
    todo = [cfg for j, cfg in enumerate(configs) if done[j] is None]
    if len(configs) > len(todo) > 0:
        print(f"{out}: {len(configs) - len(todo)} of {len(configs)} runs kept from before, {len(todo)} to go", flush=True)

    def timed(cfg, k):  # a long cell (DITTO on CPU: ~35 min per run of 32) shows where it is
        t_run = time.perf_counter()
        summary = run_ito(cfg)
        if len(configs) > 1:
            print(f"{cfg.out}: {cfg.batch} items in {(time.perf_counter() - t_run) / 60:.1f} min "
                  f"({k + 1} of {len(todo)} runs to go done)", flush=True)
        return summary

    if devices > 1 and len(todo) > 1:
        fresh = iter(spread_runs(todo, devices, threads))
    else:
        fresh = (timed(cfg, k) for k, cfg in enumerate(todo))
    summaries = [done[j] if done[j] is not None else next(fresh) for j in range(len(configs))]
    items, emb = [], []
    for cfg, s in zip(configs, summaries):
        items += s["items"]
        if cfg.clap or cfg.laion_clap or cfg.clap_judge:
            emb.append(load_file(f"{cfg.out}/embeddings.safetensors"))
    first = summaries[0]
    total = {k: sum(s[k] for s in summaries) for k in ("optimize_s", "decode_s", "vocode_s")}
    cell = {k: first[k] for k in ("method", "controls", "domains", "K", "M", "T", "gamma", "tags", "device")}
    cell.update({"refine_sigma": first["refine_sigma"]} if "refine_sigma" in first else {})
    cell.update(options_on(first))
    cell.update({
        "audio_seconds": first["audio_seconds_per_item"], "n": n, "batch": batch, "runs": len(summaries),
        "seconds_per_item": round(sum(total.values()) / n, 4),
        "optimize_s": round(total["optimize_s"] / n, 4), "decode_s": round((total["decode_s"] + total["vocode_s"]) / n, 4),
        "metrics_mean": {k: float(np.mean(v)) for k, v in _by_metric(items).items()},
        "metrics_ci95": _intervals(items),
        "loss_start": float(np.mean([s["loss_start"] for s in summaries])),
        "loss_end": float(np.mean([s["loss_end"] for s in summaries])),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "devices": devices, "wall_s": round(time.perf_counter() - t0, 2),
    })
    if torch.cuda.is_available():
        cell["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    for clap, (_, name) in CLAPS.items():
        key = "audio" if clap == "clap" else f"{clap}_audio"
        if emb and key in emb[0]:
            torch.save(torch.cat([e[key] for e in emb]), f"{out}/{name}")
    return cell


def finished_run(cfg) -> Optional[dict]:
    """The summary of a run that already finished in ``cfg.out`` with this exact config (its saved config.yaml, up
    to ``out`` itself: a run folder moved under another cell name is still that run; and its embeddings where it
    grades with a CLAP), else None: a benchmark stopped mid-cell (or a cell spread over sessions) keeps the runs it
    has and redoes none of them."""
    from omegaconf import OmegaConf

    from ditto2.runs.ito import resolved_config

    out = Path(cfg.out)
    if not (out / "summary.json").is_file() or not (out / "config.yaml").is_file():
        return None
    # over today's defaults (a setting added since the run was made, at its default, is the same run), both sides in
    # the form a run folder saves
    saved = resolved_config(OmegaConf.merge(OmegaConf.structured(type(cfg)), OmegaConf.load(out / "config.yaml")))
    if {**saved, "out": None} != {**resolved_config(cfg), "out": None}:
        return None
    if (cfg.clap or cfg.laion_clap or cfg.clap_judge) and not (out / "embeddings.safetensors").is_file():
        return None
    return json.loads((out / "summary.json").read_text())


def _finished_run_dirs(folder) -> list[Path]:
    """A cell folder's finished runs (runNN with summary.json), which must be its first ones, in order; exits with a
    one-line message when none has finished or a gap precedes a finished one."""
    folder = Path(folder)
    done = sorted(r for r in folder.glob("run[0-9][0-9]") if (r / "summary.json").is_file())
    if not done or [r.name for r in done] != [f"run{i:02d}" for i in range(len(done))]:
        sys.exit(f"{folder}: needs its first runs finished (runNN/summary.json), has {[r.name for r in done]}")
    return done


def finished_runs(folder) -> tuple[list[dict], Any]:
    """A cell folder's finished runs -> their summaries and pooled CLAP embeddings, in item order: what item-by-item
    comparisons of committed cells read."""
    import torch
    from safetensors.torch import load_file

    done = _finished_run_dirs(folder)
    return ([json.loads((r / "summary.json").read_text()) for r in done],
            torch.cat([load_file(r / "embeddings.safetensors")["audio"] for r in done]))


def finished_targets(folder, control: str):
    """The same finished runs' target tensors for one control (runNN/targets.safetensors), pooled in item order."""
    import torch
    from safetensors.torch import load_file

    return torch.cat([load_file(r / "targets.safetensors")[control] for r in _finished_run_dirs(folder)])


def _by_metric(items: list[dict]) -> dict:
    """{metric: its values over the items that have it} (a grade some items lack, e.g. a tempo)."""
    return {k: [m[k] for m in items if k in m] for k in dict.fromkeys(k for m in items for k in m)}


def _intervals(items: list[dict]) -> dict:
    """95 % bootstrap interval of each metric's mean over the cell's items (metrics with >= 2 items)."""
    from ditto2.metrics.bootstrap import bootstrap_ci

    return {k: [round(x, 5) for x in bootstrap_ci(v)] for k, v in _by_metric(items).items() if len(v) >= 2}


def set_tf32(on: bool = True) -> None:
    """TF32 matmuls and convolutions on CUDA (every method of a table alike); no-op on CPU."""
    import torch

    if on and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _child(args: tuple, threads: int, queue, tf32: bool = True) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
        set_tf32(tf32)
        queue.put(("ok", run_cell(*args)))
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def run_isolated(args: tuple, threads: int, tf32: bool = True) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(args, threads, queue, tf32))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark cell failed ({args[-1]}):\n{payload}")
    return payload


# ------------------------------------------------------------------ the runner


class Bench:
    def __init__(self, cfg: BenchConfig, out: Path):
        from ditto2.runs.ito import make_config, with_overrides

        self.cfg, self.out, self.rows, self.t0 = cfg, out, [], time.time()
        self.kept: list[dict] = []  # rows of an earlier run into this folder that this one does not redo (main: --only)
        base = make_config(gamma=cfg.gamma, tensorboard=False, report_items=cfg.report_items, fad_reference=0)
        self.ito = with_overrides(base, cfg.overrides)  # the YAML's key=value list, checked before any compute
        self.meta = {"machine": platform.machine(), "threads": cfg.threads, "n": cfg.n, "batch": cfg.batch,
                     "config": dataclasses.asdict(cfg), "skipped": []}
        self.reference = {}  # FAD reference embeddings per CLAP ("clap": in-domain, "judge", "laion")
        self.reference_rows: list = []  # the reference clips' index rows, in the embeddings' order
        self.floor = {}  # FAD of n real held-out clips (disjoint from the reference) against it, per CLAP
        self.floor_set = None  # those n real clips (rows, embeddings, audio): Table 3 grades them, what real music gets
        if self.ito.shards and cfg.fad_reference:
            self.fad_sets()
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"))
        except ImportError:
            pass

    def fad_sets(self) -> None:
        """The FAD reference: held-out clips of the items' own split (test, or val when validation items choose a
        default) that no cell's ITO run draws as a target or reference (all cells use the seeds seed, seed + 1, ...
        with the same batches), and beside it the floor: the FAD of ``n`` further real clips (the same vocoder road)
        against that reference."""
        import torch

        from ditto2.data.heldout import clip_order
        from ditto2.metrics.fad import fad_against
        from ditto2.metrics.reference import reference_set, target_clip_ids

        cfg, shards, split = self.cfg, self.ito.shards, self.ito.split
        runs = math.ceil(cfg.n / cfg.batch)
        exclude = target_clip_ids(shards, split, [cfg.seed + j for j in range(runs)],
                                  [min(cfg.batch, cfg.n - j * cfg.batch) for j in range(runs)])
        available = len(clip_order(shards, split, exclude=exclude))
        if cfg.fad_reference == "all":  # every clip left, less n for the floor when there are enough
            floor = available >= cfg.n + 2
            n_ref = available - cfg.n if floor else None
        else:
            n_ref = int(cfg.fad_reference)
            floor = available >= n_ref + cfg.n
        device = "cuda" if torch.cuda.is_available() and self.ito.device != "cpu" else "cpu"
        self.meta.update({"fad_reference_excluded_clips": len(exclude), "fad_floor_n": cfg.n if floor else None,
                          "fad_reference_split": split})
        claps = {key: getattr(self.ito, attr) for key, (attr, _) in CLAPS.items() if getattr(self.ito, attr)}
        if not claps:
            return
        ref = reference_set(shards, claps, n_ref, split=split, device=device, exclude=exclude)
        self.reference, self.reference_rows = ref.embeddings, ref.rows
        self.meta["fad_reference_clips"] = len(ref.rows)
        if floor:  # the floor's clips are vocoded once for every CLAP, and kept for Table 3's real-clips row
            self.floor_set = reference_set(shards, claps, cfg.n, split=split, device=device, exclude=exclude,
                                           skip=len(ref.rows),
                                           keep_waves=bool(self.ito.clap_judge or self.ito.tagger))
            for key, real in self.floor_set.embeddings.items():
                value = fad_against(ref.embeddings[key], real)
                self.floor[key] = None if value is None else round(value, 5)
        self.meta["fad_floor"] = self.floor.get("clap")

    def real_clips_row(self) -> Optional[dict]:
        """Table 3's "real clips" row: the graders of text control (judging CLAP, tagger, tempo) on the floor's n real
        held-out clips against their own captions, through the same Griffin-Lim road as generations: what a
        generator that matched every caption like real music would score."""
        import numpy as np

        from ditto2.metrics.captions import caption_grades

        if self.floor_set is None or self.floor_set.waves is None:
            return None
        judge = tagger = None
        if self.ito.clap_judge:
            from ditto2.clap.load import load_embedder

            judge = load_embedder(self.ito.clap_judge)
        if self.ito.tagger:
            from ditto2.metrics.tags import load_tagger

            tagger = load_tagger(self.ito.tagger)
        hop = json.loads((Path(self.ito.shards) / "index.json").read_text())["mel"]["hop_length"]
        fs = self.floor_set
        captions = [c["caption"] for c in fs.rows]
        items = []
        for grades in caption_grades(fs.waves, fs.sample_rate, captions, hop, judge, tagger):
            # the text control's keys (text_clap_judge_cosine, text_tempo_*), as in a generation's items
            item = {k: v for k, v in grades.items() if not k.startswith("tempo_")}
            item.update({f"text_{k}": v for k, v in grades.items() if k.startswith("tempo_")})
            if "clap_judge_score" in grades:
                item["text_clap_judge_cosine"] = grades["clap_judge_score"]
            items.append(item)
        means = {k: float(np.mean(v)) for k, v in _by_metric(items).items()}
        key = "text_clap_judge_cosine" if "text_clap_judge_cosine" in means else None
        return {"table": "text", "control": "text", "label": "real clips", "method": "real", "condition": "tags",
                "n": len(items), "metric": key, "value": None if key is None else round(means[key], 4),
                "value_ci95": _intervals(items).get(key) if key else None,
                **{k: round(means[k], 4) for k in ("clap_judge_score", *GRADE_COLUMNS) if k in means}}

    def out_of_time(self) -> bool:
        return self.cfg.max_minutes is not None and (time.time() - self.t0) / 60 > self.cfg.max_minutes

    def record(self, table: str, control: str, changes: dict, label: str, domain: str = "mel") -> None:
        """One cell: the benchmark's ITO config with ``changes`` (method, K, M, T, ...) for one control."""
        name = cell_name(table, control, label)
        if self.out_of_time():
            self.meta["skipped"].append(name)
            print(f"skipped {name}: past max_minutes={self.cfg.max_minutes}", flush=True)
            _write(self.out, kept_rows(self.kept, self.rows), self.meta)
            return
        from ditto2.runs.ito import ControlSpec, make_config, student_of

        ito = make_config(self.ito, controls=[ControlSpec(name=control, domain=domain)], **changes)
        args = (ito, int(self.cfg.n), int(self.cfg.batch), int(self.cfg.seed), str(self.out / "runs" / name),
                int(self.cfg.devices), int(self.cfg.threads))
        cell = run_isolated(args, self.cfg.threads, self.cfg.tf32) if self.cfg.isolate else run_cell(*args)
        row = {"table": table, "control": control, "label": label, **_row(cell)}
        row["student"], row["lr"] = student_of(ito), float(ito.lr)
        row["fad"], row["fad_ci95"] = self.fad(self.out / "runs" / name / "embeddings.pt", "clap", spread=True)
        row["fad_floor"] = self.floor.get("clap") if row["n"] == self.cfg.n else None
        for key in ("judge", "laion"):
            if key in self.reference:
                row[f"fad_{key}"] = self.fad(self.out / "runs" / name / CLAPS[key][1], key)
                row[f"fad_{key}_floor"] = self.floor.get(key) if row["n"] == self.cfg.n else None
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        self.meta["wall_minutes"] = round((time.time() - self.t0) / 60, 1)
        _write(self.out, kept_rows(self.kept, self.rows), self.meta)
        if self.writer is not None:
            for key in ("value", "clap_score", "fad", "clap_judge_score", "fad_judge", *GRADE_COLUMNS,
                        "clap_score_laion", "fad_laion", "seconds_per_item"):
                if row.get(key) is not None:
                    self.writer.add_scalar(f"{table}/{control}/{row['label']}/{key}", row[key], 0)

    def fad(self, path: Path, which: str, spread: bool = False):
        """FAD of a cell's pooled generations (None when n <= dim: see metrics/fad.py); with ``spread``, also its
        95 % bootstrap interval over the generations."""
        import torch

        from ditto2.metrics.bootstrap import fad_ci
        from ditto2.metrics.fad import fad_against

        reference = self.reference.get(which)
        if reference is None or not path.exists():
            return (None, None) if spread else None
        generated = torch.load(path)
        value = fad_against(reference, generated)
        value = None if value is None else round(value, 5)
        if not spread:
            return value
        ci = fad_ci(reference, generated) if value is not None else None
        return value, None if ci is None else [round(x, 5) for x in ci]


def cell_name(table: str, control: str, label: str) -> str:
    """The folder under ``<out>/runs`` that holds a planned cell's runs (``plan``'s table, control and label)."""
    return f"{table}-{control}-{label}".replace(" ", "_").replace("=", "")


def _off_or_more(entry: dict, key: str, what: str) -> list:
    """A sweep entry's list of values >= 0 under ``key`` (0 = the option off), as floats; [None] when it has none."""
    values = [float(v) for v in entry.get(key) or []] or [None]
    if any(v is not None and v < 0 for v in values):
        raise ValueError(f"sweep entry: {what} must be >= 0 (0 = off), got {entry[key]}")
    return values


def plan(cfg: BenchConfig, only=None, skip=()) -> list[dict]:
    """The cells of a benchmark, in table order: each ``{table, control, changes, label, domain}``, where
    ``changes`` are the ITO config fields of that cell. ``only``: a subset of controls (Table 1, the sweeps
    and the domain rows); ``skip``: tables left out ("sweep", "text", "domain")."""
    from ditto2.ito.optimize import check_start_candidates
    from ditto2.ito.optimizers import check_optimizer
    from ditto2.runs.ito import STUDENT_FIELD

    wanted = lambda control: not only or control in only
    table_wide = {"m": cfg.m, "decode_steps": cfg.decode_steps}
    cells = []

    def add(table, control, changes, label, domain="mel"):
        cells.append({"table": table, "control": control, "changes": changes, "label": label, "domain": domain})

    for control, k in (cfg.controls or {}).items():
        for method in cfg.methods if wanted(control) else []:
            settings = table_wide
            if cfg.control_defaults:
                from ditto2.runs.ito import baseline_step, control_defaults

                path = str(Path(cfg.control_defaults) / f"{control}.yaml")
                # students: their chosen (M, T, γ) and step; DITTO: its own tuned step where the YAML has one
                settings = {**table_wide, **baseline_step(path)} if method == "ditto" else control_defaults(path, method)
            add("controls", control, {"method": method, "steps": k, **settings}, method)
    sweeps = [] if not cfg.sweep or "sweep" in skip else (cfg.sweep if isinstance(cfg.sweep, list) else [cfg.sweep])
    for sw in sweeps:  # each: control or controls, method or methods, mt: [[M, T] or [M, T, γ], ...]
        # students: student bundles to compare (each cell once per bundle, for the entry's student methods);
        # lrs: Adam step sizes to compare (each cell once per step; else the table's step size)
        # refine: σ's of the teacher's finish of a student's decode (ITOConfig.refine_sigma; 0 = none), each cell once per σ
        # envelope: weights of the envelope prior (ITOConfig.envelope_weight; 0 = off), each cell once per weight
        # anchor: weights of the anchor prior (ITOConfig.anchor_weight; 0 = off), each cell once per weight
        # starts: best-of-n starts (ITOConfig.start_candidates; 1 = off), each cell once per n
        # optimizers: the noise's optimizers (ITOConfig.optimizer: adam, adam-item), each cell once per optimizer
        # smooth: σ's of the randomized smoothing (ITOConfig.smooth_sigma; 0 = off), each cell once per σ
        keys = ("control", "controls", "method", "methods", "mt", "students", "lrs", "refine", "envelope", "anchor",
                "starts", "optimizers", "smooth")
        unknown = set(sw) - set(keys)
        if unknown:
            raise ValueError(f"sweep entry: unknown keys {sorted(unknown)}; known: {', '.join(keys)}")
        students = list(sw.get("students") or [None])
        lrs = [float(lr) for lr in sw.get("lrs") or []] or [None]
        if any(lr is not None and not lr > 0 for lr in lrs):
            raise ValueError(f"sweep entry: lrs must be positive step sizes, got {sw['lrs']}")
        refines, envelopes = _off_or_more(sw, "refine", "refine σ's"), _off_or_more(sw, "envelope", "envelope weights")
        anchors = _off_or_more(sw, "anchor", "anchor weights")
        smooths = _off_or_more(sw, "smooth", "smoothing σ's")
        try:
            starts = [check_start_candidates(n) for n in sw.get("starts") or []] or [None]
        except ValueError as e:
            raise ValueError(f"sweep entry: starts must be candidate counts: {e}") from None
        try:
            optimizers = [check_optimizer(o) for o in sw.get("optimizers") or []] or [None]
        except ValueError as e:
            raise ValueError(f"sweep entry: optimizers: {e}") from None
        for control in [c for c in sw.get("controls") or [sw["control"]] if wanted(c)]:
            for method in sw.get("methods") or [sw["method"]]:
                for student, lr, refine, env, anchor, n_start, optimizer, smooth in itertools.product(
                        students, lrs, refines, envelopes, anchors, starts, optimizers, smooths):
                    bundle = {STUDENT_FIELD[method]: str(student)} if student and method in STUDENT_FIELD else {}
                    step = {} if lr is None else {"lr": lr}
                    step.update({} if refine is None or method == "ditto" else {"refine_sigma": refine})
                    step.update({} if env is None else {"envelope_weight": env})
                    step.update({} if anchor is None else {"anchor_weight": anchor})
                    step.update({} if n_start is None else {"start_candidates": n_start})
                    step.update({} if optimizer is None else {"optimizer": optimizer})
                    step.update({} if smooth is None else {"smooth_sigma": smooth})
                    for cell in sw["mt"]:  # [M, T] at the table's γ, or [M, T, γ]
                        m, t, gamma = cell[0], cell[1], (cell[2] if len(cell) > 2 else cfg.gamma)
                        label = (f"{method} M={m} T={t}" + (f" γ={gamma}" if len(cell) > 2 else "")
                                 + (f" {Path(student).name}" if bundle else "")
                                 + (f" lr={lr:g}" if lr is not None else "")
                                 + (f" refine={refine:g}" if "refine_sigma" in step else "")
                                 + (f" envelope={env:g}" if env is not None else "")
                                 + (f" anchor={anchor:g}" if anchor is not None else "")
                                 + (f" starts={n_start}" if n_start is not None else "")
                                 + (f" {optimizer}" if optimizer is not None else "")
                                 + (f" smooth={smooth:g}" if smooth is not None else ""))
                        add("sweep", control, {"method": method, "steps": cfg.controls[control], "m": m,
                                               "decode_steps": t, "gamma": gamma, **bundle, **step}, label)
    if cfg.text and "text" not in skip:
        for label, method, k, tags in cfg.text["rows"]:
            k = cfg.text["steps"] if k is None else k
            add("text", "text", {"method": method, "steps": k, **table_wide, "tags": {} if tags == "null" else tags}, label)
    if cfg.domains and "domain" not in skip:
        dm = cfg.domains
        for control in [c for c in dm["controls"] if wanted(c)]:
            add("domain", control, {"method": dm["method"], "steps": cfg.controls[control], **table_wide},
                f"{dm['method']} audio", "audio")
    return cells


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML overriding the defaults above")
    p.add_argument("--only", nargs="*", help="subset of controls (Table 1 and the domain rows)")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--no-text", action="store_true")
    p.add_argument("--no-domains", action="store_true")
    p.add_argument("--merge", nargs="+", metavar="DIR", help="no runs: merge the results of earlier benchmark "
                   "outputs (e.g. a table finished in several sessions) into --out")
    p.add_argument("--out", help="output folder (overrides the config's out)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="ITO settings for every cell, after the config's overrides (e.g. ctm=PATH: another student)")
    p.add_argument("--k", type=int, help="K, the optimization steps, for every control of the table (over the "
                   "config's controls: mapping; a cell's own steps win over --set)")
    args = p.parse_args(argv)
    if args.merge:
        if not args.out:
            raise SystemExit("--merge needs --out")
        for png in merge(args.merge, Path(args.out)):
            print(f"wrote {png}")
        print((Path(args.out) / "results.md").read_text())
        return 0
    cfg = load_bench_config(args.config)
    if args.out:
        cfg.out = args.out
    cfg.overrides = [*cfg.overrides, *args.set]
    if args.k is not None:
        if args.k < 0:
            raise SystemExit(f"--k must be >= 0, got {args.k}")
        cfg.controls = {control: args.k for control in cfg.controls or {}}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    threads = torch.get_num_threads()  # restored after: a caller in this process (a test) keeps its own
    torch.set_num_threads(cfg.threads)  # this process's cells (isolate: false) and the FAD reference
    try:
        set_tf32(cfg.tf32)
        bench = Bench(cfg, out)
        skip = {t for t, off in (("sweep", args.no_sweep), ("text", args.no_text), ("domain", args.no_domains)) if off}
        cells = plan(cfg, args.only, skip)
        if (args.only or skip) and (out / "results.json").is_file():  # a subset run into a folder keeps the rest's rows
            bench.kept = json.loads((out / "results.json").read_text())["rows"]
        for cell in cells:
            bench.record(**cell)
        real = bench.real_clips_row() if any(c["table"] == "text" for c in cells) else None
        if real is not None:
            bench.rows.append(real)
            _write(out, kept_rows(bench.kept, bench.rows), bench.meta)
        from ditto2.bench.plots import write_plots

        for png in write_plots(out / "results.json", bench.writer):
            print(f"wrote {png}")
        if bench.writer is not None:
            bench.writer.add_text("results", (out / "results.md").read_text())
            bench.writer.close()
        print((out / "results.md").read_text())
        return 0
    finally:
        torch.set_num_threads(threads)


def kept_rows(previous: list[dict], rows: list[dict]) -> list[dict]:
    """The rows a results table holds after a run: ``previous`` ones (an earlier run into the same folder) whose cell
    (table, control, label) this run did not redo, in their order, then this run's; so `--only melody` into a folder
    that holds intensity's row adds melody's instead of dropping intensity's."""
    key = lambda r: (r["table"], r["control"], r["label"])  # noqa: E731
    redone = {key(r) for r in rows}
    return [r for r in previous if key(r) not in redone] + list(rows)


def merge(dirs: list[str], out: Path) -> list[Path]:
    """Rows of several benchmark outputs -> one table set in ``out`` (paper order; the first of two rows
    for the same cell wins). Each row keeps its ``source``; TensorBoard logs are copied under out/tb/."""
    import shutil

    from ditto2.bench.plots import write_plots

    rows, seen, parts = [], set(), []
    for d in map(Path, dirs):
        data = json.loads((d / "results.json").read_text())
        parts.append({"dir": d.name, "wall_minutes": data["meta"].get("wall_minutes"), "rows": len(data["rows"])})
        for r in data["rows"]:
            key = (r["table"], r["control"], r["label"])
            if key not in seen:
                seen.add(key)
                rows.append({**r, "source": r.get("source", d.name)})
        if (d / "tb").is_dir():
            shutil.copytree(d / "tb", out / "tb" / d.name, dirs_exist_ok=True)
    defaults = BenchConfig()
    controls = [*defaults.controls, "text"]
    order = {t: i for i, (t, _) in enumerate(TABLES)}
    methods = list(defaults.methods)
    rows.sort(key=lambda r: (order.get(r["table"], 99), controls.index(r["control"]) if r["control"] in controls else 99,
                             methods.index(r["method"]) if r["table"] == "controls" and r["method"] in methods else 0))
    meta = dict(json.loads((Path(dirs[0]) / "results.json").read_text())["meta"])
    meta.update({"merged_from": parts, "skipped": [], "wall_minutes": round(sum(p["wall_minutes"] or 0 for p in parts), 1)})
    out.mkdir(parents=True, exist_ok=True)
    _write(out, rows, meta)
    return write_plots(out / "results.json")


# ------------------------------------------------------------------ tables


def _write(out: Path, rows: list[dict], meta: dict) -> None:
    _speedups(rows)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    fields = list(dict.fromkeys(["table", *COLUMNS, *(k for r in rows for k in r)]))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    (out / "results.md").write_text(_markdown(rows, meta))


def _row(c: dict) -> dict:
    means = c["metrics_mean"]
    # the control's own grade (the first metric named after it); a cell without one shows its CLAP score
    key = next((k for k in means if k.startswith(f"{c['controls'][0]}_")), "clap_score") if c.get("controls") \
        else "clap_score"
    tags = c.get("tags")
    return {"method": c["method"], "condition": "null" if tags in ({}, None) else "tags",
            "domain": c.get("domains", ["mel"])[0], "K": c["K"], "M": c["M"], "T": c["T"],
            "gamma": None if c["method"] == "ditto" else c.get("gamma"), "n": c["n"],
            "batch": c["batch"], "seconds_per_item": c["seconds_per_item"], "optimize_s": c["optimize_s"],
            "decode_s": c["decode_s"], "metric": key, "value": round(means[key], 4),
            "value_ci95": c.get("metrics_ci95", {}).get(key),
            "clap_score": None if means.get("clap_score") is None else round(means["clap_score"], 4),
            **({"clap_score_self_graded": round(means["clap_score_self_graded"], 4)}
               if "clap_score_self_graded" in means else {}),
            **{k: round(means[k], 4) for k in ("clap_judge_score", *GRADE_COLUMNS, "clap_score_laion") if k in means},
            "loss_start": round(c["loss_start"], 4), "loss_end": round(c["loss_end"], 4),
            "peak_rss_mb": c["peak_rss_mb"], "peak_cuda_mb": c.get("peak_cuda_mb"), "device": c.get("device"),
            "audio_seconds": c.get("audio_seconds")}


def _speedups(rows: list[dict]) -> None:
    base = {r["control"]: r["seconds_per_item"] for r in rows if r["method"] == "ditto" and r["table"] == "controls"}
    for r in rows:
        r["speedup_vs_ditto"] = round(base[r["control"]] / r["seconds_per_item"], 1) if r["control"] in base else None


def _markdown(rows: list[dict], meta: dict) -> str:
    device = next((r.get("device") for r in rows if r.get("device")), "cpu")
    lines = [f"# ITO benchmark ({meta['machine']}, {device}, {meta['threads']} threads, {meta['n']} generations per "
             f"cell in batches of {meta['batch']}, {meta.get('wall_minutes', 0)} min)", ""]
    for table, title in TABLES:
        sel = [r for r in rows if r["table"] == table]
        if not sel:
            continue
        cols = [c for c in COLUMNS if any(r.get(c) is not None for r in sel)]
        lines += [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in cols) + " |" for r in sel] + [""]
    if meta.get("skipped"):
        lines += [f"Not run (past max_minutes): {', '.join(meta['skipped'])}", ""]
    if meta.get("merged_from"):
        lines += ["Merged from " + ", ".join(f"{p['dir']} ({p['rows']} cells, {p['wall_minutes']} min)"
                                            for p in meta["merged_from"]) + "; each row's `source` in results.csv.", ""]
    ref = meta.get("fad_reference_clips")
    rss = "the cell's whole process" if meta["config"].get("isolate", True) else "a running maximum (cells share a process)"
    lines.append("Times are per generation (a cell's total / n; decode_s includes vocoding); peak_rss_mb is "
                 f"{rss}. value = the control's reference metric on the decoded audio, mean over "
                 "items; clap_score = cosine of audio and caption in the in-domain CLAP; fad = FAD of the cell's "
                 + (f"generations vs {ref} held-out {meta.get('fad_reference_split', 'test')} clips that no ITO run "
                    "of the table drew as a target or "
                    f"reference ({meta.get('fad_reference_excluded_clips', 0)} clips left out), both through "
                    "Griffin-Lim, blank when n <= the embedding dimension"
                    + (f"; fad_floor = FAD of {meta['fad_floor_n']} further real held-out clips against the same "
                       "reference, the value a generator indistinguishable from real clips would get."
                       if meta.get("fad_floor_n") else " (no floor: too few clips left for a second set).") if ref
                    else "generations (no reference set configured).")
                 + (" clap_judge_score / fad_judge (+ fad_judge_floor): the same in the judging CLAP (another audio "
                    "tower and seed; no control optimizes it)." if any("clap_judge_score" in r for r in rows) else "")
                 + (" genre_acc / mood_acc / tempo_bucket_acc: the tagger's top value (its own architecture and seed, "
                    "never a loss) equals the caption's; text_tempo_*: librosa's beat tracker vs the caption's BPM "
                    "(error %, within 8 %, and at half / double time only)."
                    if any("genre_acc" in r or "text_tempo_error_pct" in r for r in rows) else "")
                 + (" clap_score_laion / fad_laion: the same in the configured LAION CLAP."
                    if any("clap_score_laion" in r for r in rows) else "")
                 + " value_ci95 / fad_ci95: 95 % percentile-bootstrap intervals over the cell's items / generations."
                 + (" clap_score_self_graded: the cell's text control optimized that same CLAP, so this is not a grade."
                    if any(r.get("clap_score_self_graded") is not None for r in rows) else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
