"""Long-form continuation of a recording by chained outpainting:
`ditto2 ito --config experiments/ito/outpainting.yaml --continue song.wav --seconds 30`.

Window 1 continues the recording's last model window (its last ``overlap_s`` is the new window's first);
window k+1 continues window k's decoded mel. Every window is one ITO run of ``optimize_noise`` (batch 1,
the config's method, K, M, T). The audio of each window is crossfaded (equal power) with what came
before over the overlap, so one wav comes out: the recording followed by ``seconds`` of continuation.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ditto2.audio.io import peak_normalized
from ditto2.audio.vocoder import GriffinLimVocoder
from ditto2.controls import CompositeControl, ControlTargetError, MelContext, build_control
from ditto2.controls.sources import audio_window, read_audio
from ditto2.ito.optimize import initial_noise, optimize_noise
from ditto2.ito.surrogates import m_schedule
from ditto2.models.generator import load_generator
from ditto2.runs.ito import (
    ITOConfig,
    build_surrogate,
    make_config,
    run_device,
    save_config,
    start_others,
    step_options,
)


def crossfade_append(out: np.ndarray, piece: np.ndarray, overlap: int) -> np.ndarray:
    """``out`` followed by ``piece``, whose first ``overlap`` samples are faded in (equal power) over the last
    ``overlap`` samples of ``out``, which are faded out."""
    t = np.linspace(0.0, 1.0, overlap, endpoint=False) + 0.5 / overlap
    fade_in, fade_out = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)
    seam = out[-overlap:] * fade_out + piece[:overlap] * fade_in
    return np.concatenate([out[:-overlap], seam, piece[overlap:]])


def level_db(wave: np.ndarray, frame: int = 2048, hop: int = 512) -> np.ndarray:
    """20·log10 RMS of frames of ``frame`` samples every ``hop``."""
    n = 1 + max(0, len(wave) - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(wave, frame)[::hop][:n]
    return 20 * np.log10(np.sqrt((frames.astype(np.float64) ** 2).mean(1)) + 1e-6)


def seam_report(wave: np.ndarray, seams: list[int], sr: int, overlap: int, hop: int = 512) -> dict:
    """Level continuity at the seams: the largest frame-to-frame level change (dB, 2048-sample frames every
    ``hop``) inside each crossfade, next to the same statistic over the whole output (what the music itself does)."""
    db = level_db(wave, hop=hop)
    jumps = np.abs(np.diff(db))
    per_seam = []
    for s in seams:
        lo, hi = max(0, (s - overlap) // hop - 2), min(len(jumps), s // hop + 2)
        per_seam.append(round(float(jumps[lo:hi].max()), 3) if hi > lo else 0.0)
    return {"seam_max_level_step_db": per_seam, "overall_p99_level_step_db": round(float(np.percentile(jumps, 99)), 3),
            "overall_max_level_step_db": round(float(jumps.max()), 3)}


def continue_recording(cfg: ITOConfig, path: str, seconds: float, out: str | Path | None = None) -> dict:
    """``seconds`` of continuation after the recording at ``path`` -> ``out``/continued.wav (+ normalized copy,
    summary.json, config.yaml). ``cfg`` gives the models, method, K, M, T and the outpainting control's
    arguments (its first control must be outpainting, or there is none)."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"--seconds must be > 0, got {seconds}")
    specs = [c for c in cfg.controls if c.name == "outpainting"]
    if len(cfg.controls) != 1 or not specs:
        raise ValueError("continuation is chained outpainting: use --config experiments/ito/outpainting.yaml")
    if cfg.tags == "reference":
        raise ValueError("a recording of your own has no tags: use tags={} or e.g. tags={genre: rock}")
    cfg = make_config(cfg, batch=1, out=str(out or cfg.out))
    t0 = time.perf_counter()
    gen = load_generator(cfg.teacher)
    mel_cfg = gen.mel
    ctx = MelContext(mel_cfg, gen.normalizer, nnls_iters=cfg.control_nnls_iters)
    control = build_control("outpainting", ctx, **specs[0].kwargs)
    recording = read_audio(path, mel_cfg.sample_rate)
    if len(recording) < mel_cfg.clip_samples:
        raise ControlTargetError(f"{path} is {len(recording) / mel_cfg.sample_rate:.2f} s; continuing it needs at least "
                                 f"one model window ({mel_cfg.clip_seconds:.2f} s)")
    _, ref = audio_window(recording, ctx, (len(recording) - mel_cfg.clip_samples) / mel_cfg.sample_rate, path)
    surrogate, _ = build_surrogate(cfg, cfg.tags, None, gen)
    device = run_device(cfg)
    surrogate, vocoder = surrogate.to(device), GriffinLimVocoder(mel_cfg, gen.normalizer).to(device)
    overlap = control.overlap_frames * mel_cfg.hop_length
    new_per_window = mel_cfg.clip_samples - overlap
    wanted = int(round(seconds * mel_cfg.sample_rate))
    n_windows = math.ceil(wanted / new_per_window)
    wave, seams, losses = recording.astype(np.float32), [], []
    shape = (1, 1, mel_cfg.n_mels, mel_cfg.frames)
    for k in range(n_windows):
        composite = CompositeControl([(control, control.build_target(ref), 1.0)], batch_size=1).to(device)
        seed = cfg.seed + k  # each window its own noise; every step setting is the config's, as in `ditto2 ito`
        run = optimize_noise(surrogate, composite, initial_noise(shape, seed).to(device), m_schedule(cfg.steps, cfg.m),
                             gradient_clip=cfg.gradient_clip, seed=seed, start_others=start_others(cfg, shape, seed),
                             **step_options(cfg))
        ref = run.decode()
        with torch.no_grad():
            piece = vocoder(ref)[0].cpu().numpy()
        seams.append(len(wave))
        wave = crossfade_append(wave, piece, overlap)
        losses.append([run.history[0][0], run.history[-1][0]] if run.history else [])
        print(f"[continue] window {k + 1}/{n_windows}: {len(wave) / mel_cfg.sample_rate:.1f} s", flush=True)
    wave = wave[: len(recording) + wanted]
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    sf.write(out_dir / "continued.wav", wave, mel_cfg.sample_rate, subtype="FLOAT")
    sf.write(out_dir / "continued_normalized.wav", peak_normalized(wave), mel_cfg.sample_rate)
    summary = {"recording": str(path), "recording_seconds": round(len(recording) / mel_cfg.sample_rate, 3),
               "continued_seconds": round(wanted / mel_cfg.sample_rate, 3), "total_samples": len(wave),
               "sample_rate": mel_cfg.sample_rate, "windows": n_windows, "overlap_seconds": overlap / mel_cfg.sample_rate,
               "seams_s": [round(s / mel_cfg.sample_rate, 3) for s in seams], "loss_start_end": losses,
               "method": cfg.method, "K": cfg.steps, "M": cfg.m, "T": cfg.decode_steps,
               "seconds_wall": round(time.perf_counter() - t0, 2),
               **seam_report(wave, seams, mel_cfg.sample_rate, overlap)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
