"""The report of an ITO run, as callbacks that run in list order at the end of the run:

1. ``DecodeReport`` (shared, first): decode the optimized noise once, vocode, write each kept item's wav;
2. ``AudioReport`` (shared, when a CLAP is configured): CLAP score of each item vs its caption and FAD
   of the batch against held-out clips, in the in-domain CLAP and optionally the judging CLAP and LAION CLAP;
3. ``ControlReport`` (one per control in the run, from the registry): grade every item with the
   control's independent grader, plot target vs achieved, log the metric;
4. ``TagReport`` (shared, when a tagger is configured): genre / mood / tempo-bucket grades vs each caption;
5. ``SummaryReport`` (shared, last): per-item JSON, items.json and the run summary.

They share one ``RunOutputs``. Each has ``finalize(run, writer)``, which the Trainer reaches through
``on_train_end``; a run without the Trainer (K = 0, or ``optimize_noise``) calls it directly. ``run`` is an
``ITOModule`` or a ``NoiseRun``: anything with ``z``, ``history``, ``timing`` and ``decode()``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import soundfile as sf
import torch

from ditto2.audio.io import peak_normalized
from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.ito.options import options_on
from ditto2.metrics.clap_score import clap_cosines
from ditto2.viz import save_figure


@dataclass
class RunOutputs:
    """What the report callbacks of one run hand each other."""

    out: Path
    report_items: int
    mel: Optional[torch.Tensor] = None  # (B, 1, n_mels, frames), CPU
    waves: Optional[np.ndarray] = None  # (B, samples)
    sample_rate: int = 0
    clip_seconds: float = 0.0
    vocode_s: float = 0.0
    vocoder: Optional[GriffinLimVocoder] = None  # the run's Griffin-Lim, on the run's device
    items: list = field(default_factory=list)  # per item: {"metrics": {}, "targets": {}, ...}
    fad: dict = field(default_factory=dict)  # {"clap": (value, note), "laion": (value, note)}
    self_graded: set = field(default_factory=set)  # the CLAPs ("clap", "laion") the run also optimized

    def kept(self, i: int) -> bool:
        return i < self.report_items

    def item_dir(self, i: int) -> Path:
        d = self.out / f"item_{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        return d


class ReportCallback(pl.Callback):
    def __init__(self, outputs: RunOutputs):
        self.outputs = outputs

    def on_train_end(self, trainer, module) -> None:
        self.finalize(module, getattr(trainer.logger, "experiment", None) if trainer.logger else None)

    def finalize(self, run, writer=None) -> None:
        raise NotImplementedError


class DecodeReport(ReportCallback):
    """Decode (T steps) and vocode every item once; the wavs of each kept item (``ito.wav`` at the decoded level,
    ``ito_normalized.wav`` peak-normalized). ``mel``: the run's decoded
    output when the caller has it already (a K = 0 run graded its initial loss on it)."""

    def __init__(self, outputs: RunOutputs, gen, mel: Optional[torch.Tensor] = None):
        super().__init__(outputs)
        self.gen, self.mel = gen, mel

    def finalize(self, run, writer=None) -> None:
        o, device = self.outputs, run.z.device
        mel = run.decode() if self.mel is None else self.mel
        t0 = time.perf_counter()
        o.vocoder = GriffinLimVocoder(self.gen.mel, self.gen.normalizer).to(device)
        with torch.no_grad():
            waves = o.vocoder(mel)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        o.vocode_s = time.perf_counter() - t0
        o.mel, o.waves = mel.cpu(), waves.cpu().numpy()
        o.sample_rate, o.clip_seconds = self.gen.mel.sample_rate, self.gen.mel.clip_seconds
        history = np.asarray(run.history)  # (K, B), or (1, B): the loss at the initial noise when K = 0
        o.items = [{"loss_per_step": history[:, i].round(6).tolist(), "metrics": {}, "targets": {}}
                   for i in range(mel.shape[0])]
        o.out.mkdir(parents=True, exist_ok=True)
        for i in range(min(o.report_items, mel.shape[0])):
            # the level the model produced (float WAV: nothing clips), e.g. the loudness intensity control steered
            # to; a peak-normalized copy to listen to
            sf.write(o.item_dir(i) / "ito.wav", o.waves[i], o.sample_rate, subtype="FLOAT")
            wave = peak_normalized(o.waves[i])
            sf.write(o.item_dir(i) / "ito_normalized.wav", wave, o.sample_rate)
            if writer is not None:
                writer.add_audio(f"ito/audio/item{i}", torch.from_numpy(wave)[None], 0, sample_rate=o.sample_rate)


class ControlReport(ReportCallback):
    """One control of the run: its grade of every item (``control.grade``: an instrument in
    ``ditto2.metrics``, never the control's loss), and for kept items the target-vs-achieved plot."""

    def __init__(self, outputs: RunOutputs, control, target_set, method: str = ""):
        super().__init__(outputs)
        self.control, self.ts, self.method = control, target_set, method

    def finalize(self, run, writer=None) -> None:
        o, c, ts = self.outputs, self.control, self.ts
        key = f"{c.name}_{c.metric}"
        values = []
        for i, item in enumerate(o.items):
            value = c.grade(o.waves[i], o.sample_rate, ts.metric_target[i])
            item["metrics"][key] = round(value, 5)
            item["metrics"].update({f"{c.name}_{k}": v for k, v in c.extra_grades(o.waves[i], o.sample_rate,
                                                                                  ts.metric_target[i]).items()})
            item["targets"][c.name] = ts.descriptions[i]
            values.append(item["metrics"][key])
            if not o.kept(i):
                continue
            ref = ts.references[i, 0].numpy() if ts.references is not None else None
            fig = c.plot(ts.metric_target[i], c.achieved(o.waves[i], o.sample_rate), o.mel[i, 0].numpy(), ref,
                         f"{self.method} · {c.name} · {ts.descriptions[i]} · {c.metric}={value:.3f}")
            if writer is not None:
                writer.add_figure(f"ito/{c.name}/item{i}", fig, close=False)
            save_figure(fig, o.item_dir(i) / f"{c.name}.png")
            if ref is not None and c.writes_reference_audio:
                with torch.no_grad():
                    ref_wave = o.vocoder(ts.references[i : i + 1].to(run.z.device)).cpu().numpy()[0]
                sf.write(o.item_dir(i) / "reference.wav", peak_normalized(ref_wave), o.sample_rate)
        if writer is not None:
            writer.add_scalar(f"metric/{key}", float(np.mean(values)), 0)


# the per-item / summary keys of each CLAP a run can be graded with ("judge": the CLAP no control optimizes)
SCORE_KEYS = {"clap": "clap_score", "laion": "clap_score_laion", "judge": "clap_judge_score"}
FAD_KEYS = {"clap": "fad", "laion": "fad_laion", "judge": "fad_judge"}


class AudioReport(ReportCallback):
    """CLAP score of each item against its caption, and FAD of the batch against ``fad_reference``
    held-out clips (paper §4.3), in each configured CLAP: ``{"clap": in-domain path, "laion": path}``."""

    def __init__(self, outputs: RunOutputs, claps: dict, captions: list, shards: Optional[str] = None,
                 fad_reference=0, exclude=(), self_graded=()):
        super().__init__(outputs)
        self.claps, self.captions, self.shards, self.fad_reference = claps, list(captions), shards, fad_reference
        # CLAPs the run also optimized (a text control's own embedder): their score is reported, but under a key
        # that says so (clap_score_self_graded), never as the plain clap_score
        self.self_graded = set(self_graded)
        self.exclude = set(exclude)  # clip ids this run drew as targets / references: never in the FAD reference

    def embeddings(self, path: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio (B, D), caption text (B, D)) embeddings in the CLAP at ``path``."""
        from ditto2.clap.load import load_embedder
        from ditto2.metrics.captions import audio_text_embeddings

        return audio_text_embeddings(load_embedder(path).to(device), self.outputs.waves, self.outputs.sample_rate,
                                     self.captions)

    def fad(self, audio_emb: torch.Tensor, device, clap_path: str) -> tuple[Optional[float], str]:
        if not (self.fad_reference and self.shards):
            return None, "off (set fad_reference and shards)"
        from ditto2.metrics.fad import fad_against
        from ditto2.metrics.reference import reference_embeddings

        n_ref = None if self.fad_reference == "all" else int(self.fad_reference)
        ref = reference_embeddings(self.shards, clap_path, n_ref, device=device, progress=False, exclude=self.exclude)
        value = fad_against(ref, audio_emb)
        if value is None:
            return None, (f"needs more than {audio_emb.shape[1]} generations and reference clips (CLAP dim); have "
                          f"{audio_emb.shape[0]} and {ref.shape[0]}: pool runs (ditto2 bench) for FAD")
        return value, (f"{audio_emb.shape[0]} generations vs {ref.shape[0]} held-out clips (none of the "
                       f"{len(self.exclude)} this run drew)")

    def finalize(self, run, writer=None) -> None:
        from safetensors.torch import save_file

        o, device = self.outputs, run.z.device
        embs = {k: self.embeddings(p, device) for k, p in self.claps.items()}
        o.fad = {k: self.fad(embs[k][0], device, p) for k, p in self.claps.items()}
        o.self_graded = self.self_graded
        save_file({f"{'' if k == 'clap' else k + '_'}{part}": x.contiguous() for k, (a, t) in embs.items()
                   for part, x in (("audio", a), ("text", t))}, str(o.out / "embeddings.safetensors"))
        for k, (a, t) in embs.items():
            cosines = clap_cosines(a, t)
            name = SCORE_KEYS[k] + ("_self_graded" if k in self.self_graded else "")
            for i, item in enumerate(o.items):
                item["metrics"][name] = round(float(cosines[i]), 5)
                item["caption"] = self.captions[i]
            if writer is not None:
                writer.add_scalar(f"metric/{name}", float(cosines.mean()), 0)  # = CLAPScore over the batch
                if o.fad[k][0] is not None:
                    writer.add_scalar(f"metric/{FAD_KEYS[k]}", o.fad[k][0], 0)


class TagReport(ReportCallback):
    """Genre / mood / tempo-bucket grades of every item against its caption by the tagger at ``path``
    (``ditto2.metrics.tags``): ``genre_acc``, ``genre_prob``, ... for the fields a caption names."""

    def __init__(self, outputs: RunOutputs, path: str, captions: list):
        super().__init__(outputs)
        self.path, self.captions = path, list(captions)

    def finalize(self, run, writer=None) -> None:
        from ditto2.metrics.tags import load_tagger

        o = self.outputs
        grades = load_tagger(self.path).to(run.z.device).grade(o.waves, o.sample_rate, self.captions)
        for item, g in zip(o.items, grades):
            item["metrics"].update(g)
        if writer is not None:
            for key in dict.fromkeys(k for g in grades for k in g):
                writer.add_scalar(f"metric/{key}", float(np.mean([g[key] for g in grades if key in g])), 0)


class SummaryReport(ReportCallback):
    """Per-item result.json (kept items), items.json and the run's summary (also ``self.summary``)."""

    def __init__(self, outputs: RunOutputs, cfg, target_sets: list):
        super().__init__(outputs)
        self.cfg, self.target_sets = cfg, target_sets
        self.summary: dict = {}

    def finalize(self, run, writer=None) -> None:
        o, cfg = self.outputs, self.cfg
        metrics = [item["metrics"] for item in o.items]
        for i, item in enumerate(o.items):
            if o.kept(i):
                (o.item_dir(i) / "result.json").write_text(json.dumps(item, indent=1))
        keys = list(dict.fromkeys(k for m in metrics for k in m))  # a grade some items lack is averaged over the rest
        means = {k: round(float(np.mean([m[k] for m in metrics if k in m])), 5) for k in keys}
        history = np.asarray(run.history)
        total = run.timing["optimize_s"] + run.timing["decode_s"] + o.vocode_s
        fad, fad_note = o.fad.get("clap", (None, "off (no clap)"))
        b = len(o.items)
        self.summary = {
            "method": cfg.method, "controls": [c.name for c in cfg.controls],
            "domains": [c.domain for c in cfg.controls], "batch": b, "K": cfg.steps,
            "M": cfg.m, "T": cfg.base_steps if cfg.method == "ditto" else cfg.decode_steps,
            "gamma": cfg.gamma, "w": cfg.w, "tags": cfg.tags if isinstance(cfg.tags, str) else dict(cfg.tags),
            **({"refine_sigma": cfg.refine_sigma} if cfg.method != "ditto" and cfg.refine_sigma else {}),
            **options_on(vars(cfg)),
            "device": str(run.z.device), "optimize_s": round(run.timing["optimize_s"], 3),
            "decode_s": round(run.timing["decode_s"], 3), "vocode_s": round(o.vocode_s, 3),
            "step_s": [round(x, 5) for x in run.timing["step_s"]],
            "seconds_per_item": round(total / b, 4), "audio_seconds_per_item": o.clip_seconds,
            "loss_start": float(history[0].mean()), "loss_end": float(history[-1].mean()),
            "metrics_mean": means, "fad": None if fad is None else round(fad, 5), "fad_note": fad_note,
            **{FAD_KEYS[k]: None if v is None else round(v, 5) for k, (v, _) in o.fad.items() if k != "clap"},
            "self_graded_claps": sorted(o.self_graded),
            "targets": [" + ".join(ts.descriptions[i] for ts in self.target_sets) for i in range(b)],
            "items": metrics,
        }
        (o.out / "items.json").write_text(json.dumps(
            [{"target": t, **m} for t, m in zip(self.summary["targets"], metrics)], indent=1))
