"""`ControlReport`: at the end of an ITO run, decode, vocode, grade each item with the independent
reference extractor of its control, and write wav + target-vs-achieved PNG + JSON per item (and the
same to TensorBoard)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import soundfile as sf
import torch

from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.metrics import control as M
from ditto2.viz import plt, save_figure


def _metric(name, wave, sr, cfg, normalizer, target, pool, control=None):
    hop = cfg.hop_length
    if name == "text":  # the control's CLAP, but on the decoded audio rather than the mel it optimized
        with torch.no_grad():
            a = control.embedder.embed_audio(torch.from_numpy(wave)[None].float(), sr)
            t = control.embedder.embed_text([target])
        return "clap_cosine", float((a * t).sum())
    if name == "intensity":
        return "mse_db2", M.intensity_mse(wave, sr, target, hop)
    if name == "melody":
        return "accuracy_pct", M.melody_accuracy(wave, sr, target, hop)
    if name == "structure":
        return "mse", M.structure_mse(wave, sr, target, hop, pool=pool)
    values, mask = target
    return "masked_mel_mse", M.painting_mse(wave, sr, values, mask, cfg.n_fft, hop, cfg.n_mels, cfg.log_floor,
                                            normalizer.mean, normalizer.std, normalizer.target_std)


def _achieved(name, wave, sr, cfg, n, pool):
    hop = cfg.hop_length
    if name == "intensity":
        return M.intensity_db(wave, sr, hop, n)
    if name == "melody":
        return M.chroma_argmax(wave, sr, hop, n)
    if name == "structure":
        return M.mfcc_ssm(wave, sr, hop, cfg.frames, pool=pool)
    return None


def _plot(name, target, achieved, mel, ref, title):
    if name == "text":
        fig, ax = plt.subplots(figsize=(7, 2.6))
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-2, vmax=2)
        ax.axis("off")
    elif name in ("intensity", "melody"):
        fig, ax = plt.subplots(figsize=(7, 2.6))
        x = np.arange(len(target))
        if name == "intensity":
            ax.plot(x, target, label="target", lw=2)
            ax.plot(x, achieved, label="achieved (librosa RMS dB)")
            ax.set_ylabel("dB")
        else:
            t = np.where(np.asarray(target) >= 0, target, np.nan)
            ax.plot(x, t, "o", ms=3, label="target pitch class")
            ax.plot(x, achieved, ".", ms=2, label="achieved chroma argmax")
            ax.set_ylabel("pitch class")
        ax.set_xlabel("frame")
        ax.legend(fontsize=7)
    elif name == "structure":
        fig, axes = plt.subplots(1, 2, figsize=(6, 3))
        for ax, m, t in zip(axes, (target, achieved), ("target SSM", "achieved SSM (librosa MFCC)")):
            ax.imshow(m, cmap="viridis", vmin=-1, vmax=1, origin="lower")
            ax.set_title(t, fontsize=8)
            ax.axis("off")
    else:
        values, mask = target
        fig, axes = plt.subplots(1, 2, figsize=(8, 2.6))
        axes[0].imshow(ref, origin="lower", aspect="auto", cmap="magma", vmin=-2, vmax=2)
        axes[0].set_title("reference clip", fontsize=8)
        axes[1].imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-2, vmax=2)
        cols = np.flatnonzero(mask)
        for c in (cols.min(), cols.max()):
            axes[1].axvline(c, color="cyan", lw=0.8)
        axes[1].set_title("generated (cyan: matched region)", fontsize=8)
        for ax in axes:
            ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


class ControlReport(pl.Callback):
    def __init__(self, cfg, gen, ctx, target_sets, references, out: Path, captions=None):
        self.cfg, self.gen, self.ctx, self.target_sets, self.refs, self.out = cfg, gen, ctx, target_sets, references, out
        self.captions = captions
        self.summary: dict = {}

    def clap_scores(self, waves: np.ndarray) -> list:
        """Cosine between each item's audio and its caption in the configured CLAP (paper §4.3)."""
        if not self.cfg.clap:
            return [None] * len(waves)
        from ditto2.clap.indomain import load_clap

        clap = load_clap(self.cfg.clap)
        with torch.no_grad():
            a = clap.embed_audio(torch.from_numpy(waves), self.gen.mel.sample_rate)
            t = clap.embed_text(list(self.captions))
        return (a * t).sum(-1).tolist()

    def on_train_end(self, trainer, module) -> None:
        cfg, mel_cfg, norm = self.cfg, self.gen.mel, self.gen.normalizer
        mel = module.decode().cpu()
        t0 = time.perf_counter()
        with torch.no_grad():
            waves = GriffinLimVocoder(mel_cfg, norm)(mel).numpy()
        vocode_s = time.perf_counter() - t0
        sr, b = mel_cfg.sample_rate, mel.shape[0]
        history = np.asarray(module.history)  # (K, B)
        clap = self.clap_scores(waves)
        writer = getattr(trainer.logger, "experiment", None) if trainer.logger else None
        items = []
        for i in range(b):
            item_dir = self.out / f"item_{i:02d}"
            item_dir.mkdir(parents=True, exist_ok=True)
            wave = waves[i] / max(1e-6, float(np.abs(waves[i]).max())) * 0.9
            sf.write(item_dir / "ito.wav", wave, sr)
            record = {"loss_per_step": history[:, i].round(6).tolist(), "metrics": {}, "targets": {}}
            if clap[i] is not None:
                record["metrics"]["clap_score"] = round(clap[i], 5)
                record["caption"] = self.captions[i]
            for spec, ts, control in zip(cfg.controls, self.target_sets, module.control.controls):
                pool = getattr(control, "pool", 1)
                key, value = _metric(spec.name, waves[i], sr, mel_cfg, norm, ts.metric_target[i], pool, control)
                record["metrics"][f"{spec.name}_{key}"] = round(value, 5)
                record["targets"][spec.name] = ts.descriptions[i]
                ach = _achieved(spec.name, waves[i], sr, mel_cfg, mel_cfg.frames, pool)
                ref = ts.references[i, 0].numpy() if ts.references is not None else None
                fig = _plot(spec.name, ts.metric_target[i], ach, mel[i, 0].numpy(), ref,
                            f"{cfg.method} · {spec.name} · {ts.descriptions[i]} · {key}={value:.3f}")
                if writer is not None:
                    writer.add_figure(f"ito/{spec.name}/item{i}", fig, close=False)
                save_figure(fig, item_dir / f"{spec.name}.png")
                if ref is not None and spec.name in ("outpainting", "inpainting"):
                    ref_wave = GriffinLimVocoder(mel_cfg, norm)(ts.references[i : i + 1]).numpy()[0]
                    sf.write(item_dir / "reference.wav", ref_wave / max(1e-6, np.abs(ref_wave).max()) * 0.9, sr)
                if writer is not None:
                    writer.add_scalar(f"metric/{spec.name}_{key}", value, i)
            if writer is not None:
                writer.add_audio(f"ito/audio/item{i}", torch.from_numpy(wave)[None], 0, sample_rate=sr)
            (item_dir / "result.json").write_text(json.dumps(record, indent=1))
            items.append(record["metrics"])
        total = module.timing["optimize_s"] + module.timing["decode_s"] + vocode_s
        self.summary = {
            "method": cfg.method, "controls": [c.name for c in cfg.controls],
            "domains": [c.domain for c in cfg.controls], "batch": b, "K": cfg.steps,
            "M": cfg.m, "T": cfg.base_steps if cfg.method == "ditto" else cfg.decode_steps,
            "gamma": cfg.gamma, "w": cfg.w, "optimize_s": round(module.timing["optimize_s"], 3),
            "decode_s": round(module.timing["decode_s"], 3), "vocode_s": round(vocode_s, 3),
            "seconds_per_item": round(total / b, 3), "audio_seconds_per_item": mel_cfg.clip_seconds,
            "loss_start": float(history[0].mean()), "loss_end": float(history[-1].mean()),
            "metrics_mean": {k: round(float(np.mean([m[k] for m in items])), 5) for k in items[0]},
            "targets": [" + ".join(ts.descriptions[i] for ts in self.target_sets) for i in range(b)],
            "items": items,
        }
