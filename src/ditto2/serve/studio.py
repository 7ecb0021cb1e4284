"""The page's engine, without any UI: models loaded once, one DITTO-2 generation per request (and the slow DITTO
baseline on demand), each written to its own run folder with a config that ``ditto2 ito --config`` reproduces.

A request is an ITO config: the control's ``experiments/ito/<control>.yaml`` (its M, T, γ and weights) with the
page's targets, tags and seed, batch 1, and under the ``interactive`` preset the step count and step size of
``experiments/serve/interactive.yaml``. The uncontrolled sample is the same noise decoded without optimization,
so the two players differ only by the control.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import soundfile as sf
import torch

from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.controls import ControlTargetError
from ditto2.ito.optimize import initial_noise, optimize_noise
from ditto2.ito.surrogates import m_schedule
from ditto2.models.generator import load_generator
from ditto2.runs.ito import ITOConfig, build_run, check_config, load_config, save_config, start_others, step_options
from ditto2.serve.inputs import PAGE_CONTROLS, page_targets

PRESETS = ("interactive", "full")


class Cancelled(Exception):
    """The person pressed Cancel."""


@dataclass
class Outcome:
    """One generation: its folder, the two wavs, the plot, each control's grade before / after, the times."""

    run_dir: Path
    wavs: dict  # "uncontrolled" / "ditto2" / "ditto" -> path
    plot: Optional[Path]
    grades: list  # [{"control", "metric", "higher_is_better", "uncontrolled", "controlled"}]
    timing: dict  # optimize_s, decode_s, generation_s (= both), total_s (with vocoding, grading, plots)
    config: Path
    method: str
    steps: int
    warm_start: bool = False
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        return {"method": self.method, "steps": self.steps, "warm_start": self.warm_start, "grades": self.grades,
                "timing": self.timing, "wavs": {k: str(v) for k, v in self.wavs.items()}, "notes": self.notes}


class Studio:
    """``models``: a folder with teacher, ctm, cm, clap (and clap-judge) bundles; ``out``: where run folders go."""

    def __init__(self, models: str = "checkpoints/tiny", out: str = "results/serve",
                 experiments: str = "experiments/ito", preset_file: str = "experiments/serve/interactive.yaml",
                 threads: Optional[int] = None):
        if threads:
            torch.set_num_threads(threads)
        self.models, self.out, self.experiments = Path(models), Path(out), Path(experiments)
        self.preset_file = Path(preset_file)
        for name in ("teacher", "ctm", "cm"):
            if not (self.models / f"{name}.safetensors").is_file():
                raise FileNotFoundError(f"{self.models / name}.safetensors is missing: the page needs the committed "
                                        "tiny models (checkpoints/tiny) or a folder with the same bundles")
        self.gen = load_generator(self.models / "teacher")
        self.vocoder = GriffinLimVocoder(self.gen.mel, self.gen.normalizer)
        self.seconds, self.n_frames = self.gen.mel.clip_seconds, self.gen.mel.frames
        self._students: dict = {}  # student bundles by path, loaded once (build_surrogate's cache)
        self._last: Optional[tuple] = None  # (request key, optimized z) for warm starts
        self._count = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ requests
    @property
    def vocabulary(self) -> dict:
        """Tag values per field (null first), for the page's dropdowns."""
        return {f: list(v[1:]) for f, v in self.gen.vocab.values.items()}

    def preset(self, control: str) -> dict:
        """The interactive preset's setting (``bench.interactive.preset_for``: steps, lr, lr_decay, adam_betas) for
        ``control`` (a pair: the slower of its parts)."""
        from ditto2.bench.interactive import preset_for

        if not self.preset_file.is_file():
            raise FileNotFoundError(f"{self.preset_file} is missing (python -m ditto2.bench.interactive --write-preset)")
        parts = [preset_for(str(self.preset_file), c) for c in control.split("+")]
        return max(parts, key=lambda p: p["steps"])

    def new_run_dir(self) -> Path:
        self._count += 1
        d = self.out / f"{time.strftime('%Y%m%d-%H%M%S')}-{self._count:03d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def config(self, control: str, page: dict, tags: dict, seed: int, preset: str, run_dir: Path,
               method: str = "ditto2-ctm") -> ITOConfig:
        """The request as an ITO config (checked), its targets built from the page (errors before any compute)."""
        if control not in PAGE_CONTROLS:
            raise ControlTargetError(f"unknown control {control!r}")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
        targets = page_targets(control, page, self.seconds, self.n_frames, run_dir)
        m = self.models
        changes = [f"method={method}", f"teacher={m / 'teacher'}", f"ctm={m / 'ctm'}", f"cm={m / 'cm'}", "batch=1",
                   f"seed={int(seed)}", f"out={run_dir}", "tensorboard=false", "report_items=1", "shards=null",
                   "clap=null", "laion_clap=null", "tagger=null", "fad_reference=0", "device=cpu", "engine=loop"]
        judge = m / "clap-judge.safetensors"
        changes.append(f"clap_judge={m / 'clap-judge'}" if judge.is_file() else "clap_judge=null")
        cfg = load_config(str(self.experiments / f"{control}.yaml"), changes)
        cfg.tags = {k: v for k, v in (tags or {}).items() if v not in (None, "", 0)}
        for spec in cfg.controls:
            spec.target = targets[spec.name]
            if spec.name == "text":
                spec.kwargs = {**spec.kwargs, "embedder": str(m / "clap")}
        if preset == "interactive" and method != "ditto":
            p = self.preset(control)
            cfg.steps, cfg.lr, cfg.lr_decay = int(p["steps"]), float(p["lr"]), str(p["lr_decay"])
            cfg.adam_betas = [float(b) for b in p["adam_betas"]]
        return check_config(cfg)

    # ------------------------------------------------------------------ compute
    def generate(self, cfg: ITOConfig, warm: bool = False,
                 on_step: Optional[Callable[[int, int], None]] = None,
                 cancel: Optional[threading.Event] = None) -> Outcome:
        """Optimize the noise of ``cfg`` (one item), decode, vocode, grade and plot; the same noise decoded without
        optimization is the uncontrolled sample. ``warm``: start from the last request's optimized noise when only
        the target changed (same controls, tags, seed, method). ``on_step(k, K)`` after each step; ``cancel`` set
        -> ``Cancelled`` at the next step."""
        t_total = time.perf_counter()
        run_dir = Path(cfg.out)
        save_config(cfg, run_dir / "config.yaml")
        parts = build_run(cfg, self.gen, self._students)
        surrogate, gen, composite, target_sets = parts.surrogate, parts.gen, parts.composite, parts.target_sets
        z0 = initial_noise((1, 1, gen.mel.n_mels, gen.mel.frames), cfg.seed)
        key = json.dumps([[s.name for s in cfg.controls], cfg.tags, cfg.seed, cfg.method, cfg.steps], sort_keys=True)
        start, warmed = z0, False
        if warm and self._last is not None and self._last[0] == key:
            start, warmed = self._last[1], True

        def step(k, loss):
            if on_step is not None:
                on_step(k + 1, cfg.steps)
            if cancel is not None and cancel.is_set():
                raise Cancelled()

        with self._lock if cfg.method != "ditto" else contextlib.nullcontext():
            run = optimize_noise(surrogate, composite, start, m_schedule(cfg.steps, cfg.m),
                                 gradient_clip=cfg.gradient_clip, on_step=step,
                                 start_others=None if warmed else start_others(cfg, tuple(z0.shape)),
                                 **step_options(cfg))
            mel = run.decode()
            generation_s = run.timing["optimize_s"] + run.timing["decode_s"]
            with torch.no_grad():
                plain = surrogate.decode(z0) if cfg.method != "ditto" else None
        if cfg.method != "ditto":
            self._last = (key, run.z.detach().clone())
        name = "ditto" if cfg.method == "ditto" else "ditto2"
        mels = {name: mel} if plain is None else {"uncontrolled": plain, name: mel}
        with torch.no_grad():  # one vocoder pass for both
            waves = dict(zip(mels, self.vocoder(torch.cat(list(mels.values()))).numpy()))
        wavs = {}
        for k, w in waves.items():
            wavs[k] = run_dir / f"{k}.wav"
            peak = float(np.abs(w).max())  # the level the model made (what intensity steers), unless it would clip
            sf.write(wavs[k], w / peak * 0.99 if peak > 0.99 else w, gen.mel.sample_rate)
        grades, figures = [], []
        for c, ts in zip(composite.controls, target_sets):
            graded = {k: round(float(c.grade(w, gen.mel.sample_rate, ts.metric_target[0])), 4) for k, w in waves.items()}
            grades.append({"control": c.name, "metric": c.metric, "higher_is_better": c.higher_is_better,
                           "uncontrolled": graded.get("uncontrolled"), "controlled": graded[name],
                           "target": ts.descriptions[0]})
            ref = ts.references[0, 0].numpy() if ts.references is not None else None
            figures.append(c.plot(ts.metric_target[0], c.achieved(waves[name], gen.mel.sample_rate),
                                  mel[0, 0].cpu().numpy(), ref,
                                  f"{name} · {c.name} · {c.metric} = {graded[name]:.3g}"))
        plot = _stack_figures(figures, run_dir / f"{name}-target.png")
        timing = {"optimize_s": round(run.timing["optimize_s"], 3), "decode_s": round(run.timing["decode_s"], 3),
                  "generation_s": round(generation_s, 3), "total_s": round(time.perf_counter() - t_total, 3)}
        outcome = Outcome(run_dir, wavs, plot, grades, timing, run_dir / "config.yaml", cfg.method, cfg.steps, warmed)
        if warmed:
            outcome.notes.append("warm start: began from the previous result's noise; config.yaml reproduces the "
                                 "same request from fresh noise")
        (run_dir / f"{name}-result.json").write_text(json.dumps(outcome.summary(), indent=1))
        return outcome

    def ditto_config(self, cfg: ITOConfig) -> ITOConfig:
        """The DITTO baseline of a request: the base model, the control's full K, the same targets, tags and seed,
        written beside the DITTO-2 run (ditto/ in its folder)."""
        from ditto2.runs.ito import make_config

        full = load_config(str(self.experiments / f"{'+'.join(s.name for s in cfg.controls)}.yaml"), ["method=ditto"])
        return check_config(make_config(cfg, method="ditto", steps=full.steps, lr=full.lr, lr_decay="constant",
                                        adam_betas=list(full.adam_betas),
                                        out=str(Path(cfg.out) / "ditto")))


def _stack_figures(figures: list, path: Path) -> Optional[Path]:
    """The controls' target-vs-achieved figures, one above the other, as one PNG."""
    from PIL import Image

    from ditto2.viz import figure_to_array

    if not figures:
        return None
    arrays = [figure_to_array(f) for f in figures]  # (it closes each figure)
    width = max(a.shape[1] for a in arrays)
    padded = [np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255) for a in arrays]
    Image.fromarray(np.concatenate(padded, axis=0)).save(path)
    return path
