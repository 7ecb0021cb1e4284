"""Melody control: high-passed chromagram -> log-softmax over 12 pitch classes; NLL per frame."""
from __future__ import annotations

import itertools
from typing import Optional

import librosa
import numpy as np
import torch

from ditto2.controls.base import Control, ControlTargetError, MelContext, TargetSet, batch_target
from ditto2.metrics import control as grader

NO_MELODY = -1
HIGHPASS_HZ = 261.0  # ≈ C4: bass and pads live below, the melody above (DITTO / Music ControlNet)
POWER_FLOOR = 1e-10


class MelodyControl(Control):
    """features (B, 12, T) = log_softmax(log(C·|X|²) / temperature) over pitch classes (0 = C).

    C is librosa's chroma filterbank with every linear-frequency bin below ``highpass_hz`` zeroed.
    With temperature 1 the distribution is each pitch class's share of the frame's high-passed
    chroma energy, i.e. DITTO's log(chroma) made a proper log-probability; lower temperatures
    sharpen it (a stronger push toward one class), higher ones soften it.
    |X| is the NNLS magnitude (mel domain) or the STFT of the Griffin-Lim waveform (audio domain).
    """

    name = "melody"
    metric = "accuracy_pct"
    higher_is_better = True

    def __init__(self, ctx: MelContext, domain: str = "mel", temperature: float = 1.0,
                 highpass_hz: float = HIGHPASS_HZ):
        super().__init__(ctx, domain)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        cfg = ctx.cfg
        fb = librosa.filters.chroma(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_chroma=12)
        fb[:, librosa.fft_frequencies(sr=cfg.sample_rate, n_fft=cfg.n_fft) < highpass_hz] = 0.0
        self.register_buffer("chroma_fb", torch.from_numpy(fb).float(), persistent=False)
        self.temperature = temperature

    def chroma(self, mel: torch.Tensor) -> torch.Tensor:
        """High-passed chroma energy (B, 12, T), unnormalized."""
        if self.domain == "mel":
            mag = self.ctx.linear_magnitude(mel)
        else:
            mag = self.ctx.stft_magnitude(self.ctx.waveform(mel))
        return torch.matmul(self.chroma_fb.to(mag), mag.pow(2))

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(torch.log(self.chroma(mel) + POWER_FLOOR) / self.temperature, dim=1)

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(features.device).expand(features.shape[0], -1)
        voiced = target >= 0
        nll = -features.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
        return (nll * voiced).sum(-1) / voiced.sum(-1).clamp(min=1)

    def check_target(self, target, batch_size: Optional[int] = None) -> torch.Tensor:
        t = torch.as_tensor(target)
        if t.is_floating_point():
            if not torch.isfinite(t).all():
                raise ControlTargetError("melody target has NaN/inf values; use -1 for frames without melody")
            if (t != t.round()).any():
                raise ControlTargetError("melody target must hold integer pitch classes -1..11")
        elif t.dtype == torch.bool or t.is_complex():
            raise ControlTargetError(f"melody target must be integer pitch classes, got dtype {t.dtype}")
        t = batch_target(t.long(), (self.n_frames,), batch_size, self.name)
        if t.min() < NO_MELODY or t.max() > 11:
            raise ControlTargetError(
                f"melody pitch classes must lie in -1..11 (-1 = no melody), got [{int(t.min())}, {int(t.max())}]")
        if ((t >= 0).sum(-1) == 0).any():
            raise ControlTargetError("melody target has an item with no voiced frame (all -1)")
        return t

    def target_from_reference(self, mel: torch.Tensor, silence_db: float = 40.0) -> torch.Tensor:
        """Chroma argmax per frame; frames whose high-passed energy is more than ``silence_db``
        below the clip's loudest frame get -1, so rests are not forced to a pitch."""
        with torch.no_grad():
            chroma = self.chroma(mel)
            energy_db = 10 * torch.log10(chroma.sum(1) + POWER_FLOOR)
            quiet = energy_db < energy_db.amax(-1, keepdim=True) - silence_db
            return torch.where(quiet, torch.full_like(energy_db, NO_MELODY, dtype=torch.long),
                               chroma.argmax(1))

    def targets(self, n, seed, references=None, source="synth", clips=None, path=None, values=None,
                offset: float = 0.0, resample: bool = False, track=None) -> TargetSet:
        """Exact melodies of procedural synth tracks (default; seeds seed·1000 + i, mostly-rest ones
        skipped), or a held-out clip's chroma argmax (``source="reference"``). Your own: ``path`` (a MIDI
        file: the top voice, or ``track``; an audio file: its pitch track; .npy/.csv/.txt: pitch classes)
        or inline ``values`` (pitch class per frame, 0 = C, -1 = no melody)."""
        if path is not None or values is not None:
            return self.user_targets(n, path, values, offset, resample, **({"track": track} if track is not None else {}))
        if source == "reference":
            return self.reference_targets(n, references, " chroma")
        if source != "synth":
            raise ValueError(f"melody target source must be 'synth' or 'reference', got {source!r}")
        from ditto2.data.sources.synth import render_synth_track

        cfg = self.ctx.cfg
        rows, desc = [], []
        for i in itertools.count():
            if len(rows) == n:
                break
            track = render_synth_track(seed * 1000 + i, sr=cfg.sample_rate, duration_s=cfg.clip_seconds + 1.0)
            labels = track.frame_labels(cfg.hop_length, cfg.frames)["melody"]
            if (labels >= 0).mean() < 0.3:
                continue  # mostly rests: a weak target
            rows.append(torch.as_tensor(labels.astype(np.int64)))
            desc.append(f"synth melody seed {seed * 1000 + i} ({track.spec.key_name})")
        t = torch.stack(rows)
        return TargetSet(t, list(t.numpy()), desc, references)

    def target_from_values(self, values, resample=False) -> torch.Tensor:
        from ditto2.controls.sources import read_values

        return read_values(values, self.n_frames, "pitch classes", -1, 11, resample=resample, integer=True)

    def target_from_midi(self, path, offset=0.0, track=None) -> torch.Tensor:
        from ditto2.controls.sources import midi_melody

        cfg = self.ctx.cfg
        return midi_melody(path, self.n_frames, cfg.sample_rate, cfg.hop_length, offset, track)

    def target_from_audio(self, wave, mel) -> torch.Tensor:
        """Pitch class per frame of a (mostly monophonic) recording by pYIN pitch tracking; -1 where unvoiced."""
        cfg = self.ctx.cfg
        f0, voiced, _ = librosa.pyin(np.asarray(wave, np.float32), fmin=librosa.note_to_hz("C2"),
                                     fmax=librosa.note_to_hz("C7"), sr=cfg.sample_rate, frame_length=2048,
                                     hop_length=cfg.hop_length, center=True)
        f0, voiced = f0[: self.n_frames], voiced[: self.n_frames]
        ok = voiced & np.isfinite(f0)
        if ok.mean() < 0.1:
            raise ControlTargetError(f"no melody found: {100 * ok.mean():.0f} % of frames are pitched (pYIN); use a "
                                     "clearer monophonic recording, a MIDI file or pitch-class values")
        pc = np.where(ok, np.round(librosa.hz_to_midi(np.where(ok, f0, 440.0))) % 12, -1)
        return torch.as_tensor(pc.astype(np.int64))

    def grade(self, wave, sample_rate, metric_target) -> float:
        return grader.melody_accuracy(wave, sample_rate, metric_target, self.ctx.cfg.hop_length)

    def achieved(self, wave, sample_rate):
        return grader.chroma_argmax(wave, sample_rate, self.ctx.cfg.hop_length, self.n_frames)

    def plot(self, target, achieved, mel, reference, title):
        from ditto2.viz import series_figure

        t = np.where(np.asarray(target) >= 0, target, np.nan)
        return series_figure(t, achieved, "target pitch class", "achieved chroma argmax", "pitch class", title,
                             style=("o", "."))
