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
        device = next(control.embedder.parameters()).device
        with torch.no_grad():
            a = control.embedder.embed_audio(torch.from_numpy(wave)[None].float().to(device), sr)
            t = control.embedder.embed_text([target]).to(a)
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
    """End-of-run report of one ITO run: every item is decoded, vocoded and graded (control metric,
    CLAP score, and FAD of the batch against held-out clips when the batch is larger than the CLAP
    embedding); the first ``cfg.report_items`` items also get wav + plot files and TensorBoard
    entries. ``finalize`` does the work, so a run with K = 0 (plain sampling) reports the same way."""

    def __init__(self, cfg, gen, ctx, target_sets, references, out: Path, captions=None):
        self.cfg, self.gen, self.ctx, self.target_sets, self.refs, self.out = cfg, gen, ctx, target_sets, references, out
        self.captions = captions
        self.summary: dict = {}

    def on_train_end(self, trainer, module) -> None:
        self.finalize(module, getattr(trainer.logger, "experiment", None) if trainer.logger else None)

    def clap_embeddings(self, waves: torch.Tensor, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio (B, D), caption text (B, D)) embeddings in the CLAP at ``path``."""
        from ditto2.clap.load import load_embedder

        clap = load_embedder(path).to(waves.device)
        with torch.no_grad():
            a = torch.cat([clap.embed_audio(waves[i : i + 64], self.gen.mel.sample_rate)
                           for i in range(0, waves.shape[0], 64)])
            t = clap.embed_text(list(self.captions)).to(a)
        return a.float().cpu(), t.float().cpu()

    def fad(self, audio_emb: torch.Tensor, device, clap_path: str) -> tuple[float | None, str]:
        """FAD of this batch against ``cfg.fad_reference`` held-out clips (paper §4.3)."""
        cfg = self.cfg
        if not (cfg.fad_reference and cfg.shards):
            return None, "off (set fad_reference and shards)"
        from ditto2.metrics.fad import fad_against
        from ditto2.metrics.reference import reference_embeddings

        n_ref = None if cfg.fad_reference == "all" else int(cfg.fad_reference)
        ref = reference_embeddings(cfg.shards, clap_path, n_ref, device=device, progress=False)
        value = fad_against(ref, audio_emb)
        if value is None:
            return None, (f"needs more than {audio_emb.shape[1]} generations and reference clips (CLAP dim); have "
                          f"{audio_emb.shape[0]} and {ref.shape[0]}: pool runs (ditto2 bench) for FAD")
        return value, f"{audio_emb.shape[0]} generations vs {ref.shape[0]} held-out clips"

    def finalize(self, module, writer=None, mel: torch.Tensor | None = None) -> None:
        """``mel``: the run's decoded output when the caller has it already (module.decode() otherwise)."""
        from safetensors.torch import save_file

        cfg, mel_cfg, norm = self.cfg, self.gen.mel, self.gen.normalizer
        device = module.z.device
        mel = module.decode() if mel is None else mel
        t0 = time.perf_counter()
        with torch.no_grad():
            wave_t = GriffinLimVocoder(mel_cfg, norm).to(device)(mel)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        vocode_s = time.perf_counter() - t0
        mel, waves = mel.cpu(), wave_t.cpu().numpy()
        sr, b = mel_cfg.sample_rate, mel.shape[0]
        history = np.asarray(module.history)  # (K, B), or (1, B): the loss at the initial noise when K = 0
        text_sets = [ts for spec, ts in zip(cfg.controls, self.target_sets) if spec.name == "text"]
        if text_sets:  # the CLAP score of a text-controlled item is against the caption it was steered to
            self.captions = list(text_sets[0].metric_target)
        # in-domain CLAP ("clap") and, when configured, LAION CLAP ("laion"): CLAP score and FAD in each
        paths = {k: p for k, p in (("clap", cfg.clap), ("laion", cfg.laion_clap)) if p}
        embs = {k: self.clap_embeddings(wave_t, p) for k, p in paths.items()}
        scores = {k: (a * t).sum(-1).tolist() for k, (a, t) in embs.items()}
        fads = {k: self.fad(embs[k][0], device, p) for k, p in paths.items()}
        fad, fad_note = fads.get("clap", (None, "off (no clap)"))
        self.out.mkdir(parents=True, exist_ok=True)
        if embs:
            save_file({f"{'' if k == 'clap' else k + '_'}{part}": x.contiguous() for k, (a, t) in embs.items()
                       for part, x in (("audio", a), ("text", t))}, str(self.out / "embeddings.safetensors"))
        items = []
        for i in range(b):
            keep = i < cfg.report_items
            item_dir = self.out / f"item_{i:02d}"
            wave = waves[i] / max(1e-6, float(np.abs(waves[i]).max())) * 0.9
            record = {"loss_per_step": history[:, i].round(6).tolist(), "metrics": {}, "targets": {}}
            for k, score in scores.items():
                record["metrics"]["clap_score" if k == "clap" else f"clap_score_{k}"] = round(score[i], 5)
                record["caption"] = self.captions[i]
            if keep:
                item_dir.mkdir(parents=True, exist_ok=True)
                sf.write(item_dir / "ito.wav", wave, sr)
            for spec, ts, control in zip(cfg.controls, self.target_sets, module.control.controls):
                pool = getattr(control, "pool", 1)
                key, value = _metric(spec.name, waves[i], sr, mel_cfg, norm, ts.metric_target[i], pool, control)
                record["metrics"][f"{spec.name}_{key}"] = round(value, 5)
                record["targets"][spec.name] = ts.descriptions[i]
                if not keep:
                    continue
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
            if keep:
                if writer is not None:
                    writer.add_audio(f"ito/audio/item{i}", torch.from_numpy(wave)[None], 0, sample_rate=sr)
                (item_dir / "result.json").write_text(json.dumps(record, indent=1))
            items.append(record["metrics"])
        means = {k: round(float(np.mean([m[k] for m in items])), 5) for k in items[0]}
        if writer is not None:
            for k, v in means.items():
                writer.add_scalar(f"metric/{k}", v, 0)
            for k, (value, _) in fads.items():
                if value is not None:
                    writer.add_scalar("metric/fad" if k == "clap" else f"metric/fad_{k}", value, 0)
        total = module.timing["optimize_s"] + module.timing["decode_s"] + vocode_s
        self.summary = {
            "method": cfg.method, "controls": [c.name for c in cfg.controls],
            "domains": [c.domain for c in cfg.controls], "batch": b, "K": cfg.steps,
            "M": cfg.m, "T": cfg.base_steps if cfg.method == "ditto" else cfg.decode_steps,
            "gamma": cfg.gamma, "w": cfg.w, "tags": cfg.tags if isinstance(cfg.tags, str) else dict(cfg.tags),
            "device": str(device), "optimize_s": round(module.timing["optimize_s"], 3),
            "decode_s": round(module.timing["decode_s"], 3), "vocode_s": round(vocode_s, 3),
            "step_s": [round(x, 5) for x in module.timing["step_s"]],
            "seconds_per_item": round(total / b, 4), "audio_seconds_per_item": mel_cfg.clip_seconds,
            "loss_start": float(history[0].mean()), "loss_end": float(history[-1].mean()),
            "metrics_mean": means, "fad": None if fad is None else round(fad, 5), "fad_note": fad_note,
            **{f"fad_{k}": None if v is None else round(v, 5) for k, (v, _) in fads.items() if k != "clap"},
            "targets": [" + ".join(ts.descriptions[i] for ts in self.target_sets) for i in range(b)],
            "items": items,
        }
        (self.out / "items.json").write_text(json.dumps(
            [{"target": t, **m} for t, m in zip(self.summary["targets"], items)], indent=1))
