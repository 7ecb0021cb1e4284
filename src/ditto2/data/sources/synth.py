"""Procedural multi-track music (melody, chords, bass, drums) with exact labels.

One integer seed decides everything. ``_compose`` draws the score in seconds (key, tempo, notes,
drum hits, gain curve), independent of the sample rate, so labels come from the score rather than
from analysing audio, and the same seed gives the same music at any sr. ``render_synth_track``
turns a score into audio with cheap numpy voices (additive, FM, decaying-harmonic "pluck").
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np

from ditto2.data.sources.base import Track

PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Melody stays above ~261 Hz (C4) so the high-passed chroma of the melody control sees it; the pad
# stays in C3..B3 so it mostly falls below that cut.
MELODY_RANGE, PAD_RANGE, BASS_RANGE = (62, 86), (48, 59), (36, 47)
PEAK = 10 ** (-1 / 20)  # -1 dBFS
LEVEL_WINDOW_S = 1.0  # the leveller flattens loudness on this scale; the envelope moves slower
MIN_SWING_DB, MAX_SWING_DB = 8.0, 16.0  # range of the intensity envelope
GATE = 0.92  # notes end a bit before the next slot, so articulation is audible and labels exact


class Note(NamedTuple):
    onset: float  # s
    offset: float  # s; every voice is silent from here on, so labels are exact
    pitch: int  # midi
    velocity: float = 1.0


# ---------------------------------------------------------------- voices: (hz, n, sr) -> signal
def _env(n: int, sr: int, attack: float, release: float, decay: float = 0.0) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-decay * t)
    r = min(int(release * sr), n // 2)
    if r > 0:
        env[n - r:] *= np.linspace(1.0, 0.0, r)
    return env


def _harmonics(phase, amps, f, sr, damp=None):
    """sum_k amps[k] sin(k*phase) [* damp**k], by the Chebyshev recurrence: one sin/cos per note
    instead of one per harmonic, which is what keeps rendering well under real time."""
    out, s_prev, s, c2 = np.zeros_like(phase), np.zeros_like(phase), np.sin(phase), 2 * np.cos(phase)
    w = 1.0
    for k, a in enumerate(amps, 1):
        if k * f >= sr / 2:  # no aliasing at low sr
            break
        if damp is not None:
            w = w * damp
        out += a * s * w
        s_prev, s = s, c2 * s - s_prev
    return out


def _additive(f, n, sr, amps=(1.0,), attack=0.01, release=0.05, decay=0.0, detune=0.0):
    phase = 2 * np.pi * f * np.arange(n) / sr
    detunes = (0.0,) if detune == 0 else (-detune, detune)  # two detuned copies = "supersaw"
    out = sum(_harmonics(phase * (1 + d), amps, f * (1 + d), sr) for d in detunes)
    return out * _env(n, sr, attack, release, decay) / (sum(amps) * len(detunes))


def _pluck(f, n, sr, n_harm=8, bright=0.6, decay=2.5, release=0.02):
    # Decaying harmonics, upper ones dying faster: a Karplus-Strong look-alike without a sample loop.
    t = np.arange(n) / sr
    amps = bright ** np.arange(n_harm)
    out = _harmonics(2 * np.pi * f * t, amps, f, sr, damp=np.exp(-0.5 * decay * t))
    return out * np.exp(-decay * t) * _env(n, sr, 0.002, release) * (1 - bright)


def _fm(f, n, sr, ratio=1.0, index=1.2, index_decay=3.0, attack=0.01, release=0.05):
    t = np.arange(n) / sr
    mod = index * np.exp(-index_decay * t) * np.sin(2 * np.pi * ratio * f * t)
    return np.sin(2 * np.pi * f * t + mod) * _env(n, sr, attack, release)


def _driven(f, n, sr, voice: Callable, drive=2.0):
    return np.tanh(drive * voice(f, n, sr)) / np.tanh(drive)


P = functools.partial
SAW = tuple(1 / k for k in range(1, 9))


@dataclass(frozen=True)
class Style:
    tempo: tuple[int, int]
    major_prob: float
    progressions: tuple[tuple[int, ...], ...]  # scale degrees (0 = tonic), one chord per span
    chord_beats: int  # beats per chord (4/4 bars)
    rhythms: tuple[float, ...]  # melody note lengths in beats, drawn uniformly
    rest_prob: float
    lead: Callable
    pad: Callable
    bass: Callable
    pad_rhythm: tuple[tuple[float, float], ...]  # (beat, length) within a chord span
    bass_rhythm: tuple[tuple[float, float, int], ...]  # (beat, length, scale steps above root)
    drums: Optional[dict] = None  # drum -> 16th-note steps in a bar
    # Melody loudest, so both the chroma of the mix and the listener follow it.
    gains: dict = field(default_factory=lambda: {"melody": 0.5, "chords": 0.16, "bass": 0.35, "drums": 0.5})


STYLES: dict[str, Style] = {
    "ambient": Style(
        (60, 88), 0.5, ((0, 3), (5, 3, 0, 4), (0, 5, 3, 3)), 8, (1.0, 2.0, 2.0, 4.0), 0.25,
        lead=P(_additive, amps=(1.0, 0.25, 0.08), attack=0.12, release=0.25),
        pad=P(_additive, amps=(1.0, 0.3, 0.1), attack=1.5, release=1.5),
        bass=P(_additive, amps=(1.0, 0.2), attack=0.5, release=0.8),
        pad_rhythm=((0, 8),), bass_rhythm=((0, 8, 0),)),
    "rock": Style(
        (100, 150), 0.5, ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 6, 3, 0)), 4,
        (0.5, 0.5, 1.0, 1.0, 2.0), 0.15,
        lead=P(_driven, voice=P(_additive, amps=(1.0, 0.4, 0.15, 0.1), release=0.03), drive=1.5),
        pad=P(_driven, voice=P(_additive, amps=SAW[:4], attack=0.005, release=0.04), drive=3.0),
        bass=P(_additive, amps=(1.0, 0.5, 0.25), attack=0.005, release=0.03),
        pad_rhythm=((0, 1.5), (1.5, 2.5)), bass_rhythm=tuple((b / 2, 0.5, 0) for b in range(8)),
        drums={"kick": (0, 8, 10), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14)}),
    "electronic": Style(
        (118, 135), 0.35, ((5, 3, 0, 4), (0, 5, 3, 4), (0, 0, 5, 4)), 4, (0.25, 0.5, 0.5, 1.0), 0.2,
        lead=P(_fm, ratio=1.0, index=1.2, index_decay=4.0, release=0.03),
        pad=P(_additive, amps=SAW[:6], attack=0.05, release=0.2, detune=0.006),
        bass=P(_additive, amps=(1.0, 0.0, 0.33, 0.0, 0.2), attack=0.005, release=0.03),
        pad_rhythm=((0, 4),), bass_rhythm=tuple((b + 0.5, 0.5, 0) for b in range(4)),
        drums={"kick": (0, 4, 8, 12), "snare": (4, 12), "hat": (2, 6, 10, 14)}),
    "folk": Style(
        (80, 125), 0.7, ((0, 3, 0, 4), (0, 4, 5, 3), (0, 3, 4, 0)), 4, (0.5, 1.0, 1.0, 1.5, 2.0), 0.12,
        lead=P(_additive, amps=(1.0, 0.4, 0.15, 0.05), attack=0.04, release=0.06),
        pad=P(_pluck, n_harm=8, bright=0.55, decay=2.0),
        bass=P(_pluck, n_harm=4, bright=0.4, decay=1.5),
        pad_rhythm=((0, 1), (1, 1), (2, 1), (3, 1)), bass_rhythm=((0, 2, 0), (2, 2, 4)),
        drums={"kick": (0, 8), "hat": (4, 12)}),
    "march": Style(
        (100, 124), 0.85, ((0, 4, 0, 3), (0, 3, 4, 0), (0, 0, 4, 4)), 4, (0.5, 1.0, 1.0, 0.75, 0.25), 0.1,
        lead=P(_additive, amps=(1.0, 0.6, 0.4, 0.25, 0.15, 0.1), attack=0.03, release=0.05),
        pad=P(_additive, amps=(1.0, 0.5, 0.3, 0.15), attack=0.03, release=0.05),
        bass=P(_additive, amps=(1.0, 0.6, 0.3), attack=0.02, release=0.05),
        pad_rhythm=((1, 0.5), (3, 0.5)), bass_rhythm=((0, 0.75, 0), (2, 0.75, 4)),
        drums={"kick": (0, 8), "snare": (0, 3, 4, 8, 11, 12, 14, 15)}),
}


def mood_for(mode: str, tempo_bpm: float) -> str:
    """Valence from the mode, arousal from the tempo (the usual two-axis mood model)."""
    fast = tempo_bpm >= 100
    return ("happy" if fast else "calm") if mode == "major" else ("tense" if fast else "sad")


@dataclass
class SynthTrackSpec:
    seed: int
    style: str
    mood: str
    key: int  # tonic pitch class 0..11
    mode: str  # "major" | "minor"
    tempo_bpm: int
    duration_s: float
    progression: tuple[int, ...]  # scale degrees, one chord per chord span

    @property
    def key_name(self) -> str:
        return f"{PITCH_NAMES[self.key]} {self.mode}"

    @property
    def tags(self) -> dict:
        return {"genre": self.style, "mood": self.mood, "tempo": int(self.tempo_bpm), "key": self.key_name}


@dataclass
class SynthTrack:
    spec: SynthTrackSpec
    audio: np.ndarray  # float32 mono, peak -1 dBFS
    sr: int
    melody: list[Note]  # sorted, non-overlapping
    envelope: tuple[np.ndarray, np.ndarray]  # breakpoints (time s, gain dB), linear in dB between
    stems: Optional[dict] = None  # name -> float32, summing to ``audio``

    def intensity_db(self, times_s) -> np.ndarray:
        """The intensity curve in dB (max 0 dB): the gain applied to the levelled mix, so measured
        RMS dB of the audio ≈ this + a constant (the peak normalization, left out here)."""
        return np.interp(times_s, *self.envelope)

    def melody_pitch_class(self, times_s) -> np.ndarray:
        t = np.asarray(times_s, dtype=float)
        if not self.melody:
            return np.full(t.shape, -1, dtype=int)
        on, off, pitch = (np.array(x) for x in zip(*[n[:3] for n in self.melody]))
        i = np.searchsorted(on, t, side="right") - 1
        j = np.clip(i, 0, None)
        return np.where((i >= 0) & (t < off[j]), pitch[j] % 12, -1)

    def frame_labels(self, hop: int, n_frames: int) -> dict:
        t = np.arange(n_frames) * hop / self.sr  # centered STFT: frame i is centered on sample i*hop
        return {"melody": self.melody_pitch_class(t).astype(np.int16),
                "intensity_db": self.intensity_db(t).astype(np.float32)}


# ---------------------------------------------------------------- composition (sr-free)
def _in_range(pc: int, lo: int, hi: int) -> int:
    m = lo + (int(pc) - lo) % 12  # the pitch class placed in [lo, lo + 11]
    return m if m <= hi else m - 12


def _compose(seed: int, duration_s: float, style: Optional[str] = None):
    rng = np.random.default_rng(seed)
    name = style or str(rng.choice(sorted(STYLES)))
    st = STYLES[name]
    mode = "major" if rng.random() < st.major_prob else "minor"
    key, tempo = int(rng.integers(12)), int(rng.integers(st.tempo[0], st.tempo[1] + 1))
    prog = st.progressions[rng.integers(len(st.progressions))]
    spec = SynthTrackSpec(seed, name, mood_for(mode, tempo), key, mode, tempo, float(duration_s), prog)

    # A few linear-in-dB segments with at least MIN_SWING_DB of swing, so the label is learnable.
    n_seg = int(rng.integers(3, 6))
    times = np.linspace(0, duration_s, n_seg + 1)
    times[1:-1] += rng.uniform(-0.3, 0.3, n_seg - 1) * duration_s / n_seg
    levels = rng.uniform(-MAX_SWING_DB, 0, n_seg + 1)
    if np.ptp(levels) < MIN_SWING_DB:
        levels[np.argmin(levels)] -= MIN_SWING_DB - np.ptp(levels)
    envelope = (times, levels - levels.max())

    scale = np.array(SCALES[mode])
    beat = 60.0 / tempo
    n_spans = int(np.ceil(duration_s / (st.chord_beats * beat)))
    mel_notes = np.array([m for m in range(*MELODY_RANGE) if (m - key) % 12 in scale])
    idx = int(np.argmin(np.abs(mel_notes - _in_range(key, 65, 76))))
    parts: dict[str, list[Note]] = {"melody": [], "chords": [], "bass": []}
    for s in range(n_spans):
        deg = prog[s % len(prog)]
        chord = [(key + scale[(deg + 2 * j) % 7]) % 12 for j in range(3)]
        t0 = s * st.chord_beats * beat
        for b, length in st.pad_rhythm:
            for pc in chord:
                parts["chords"].append(Note(t0 + b * beat, t0 + (b + length) * beat,
                                            _in_range(pc, *PAD_RANGE)))
        for b, length, step in st.bass_rhythm:
            pc = (key + scale[(deg + step) % 7]) % 12
            parts["bass"].append(Note(t0 + b * beat, t0 + (b + length) * beat * GATE,
                                      _in_range(pc, *BASS_RANGE)))
        pos = 0.0
        while pos < st.chord_beats - 1e-9:
            length = min(float(rng.choice(st.rhythms)), st.chord_beats - pos)
            if rng.random() >= st.rest_prob:
                idx = int(np.clip(idx + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(mel_notes) - 1))
                if pos % 2 == 0:  # strong beats land on a chord tone, so melody and harmony agree
                    near = [i for i in (idx, idx - 1, idx + 1)
                            if 0 <= i < len(mel_notes) and mel_notes[i] % 12 in chord]
                    idx = near[0] if near else idx
                on, vel = t0 + pos * beat, float(rng.uniform(0.8, 1.0))
                parts["melody"].append(Note(on, on + length * beat * GATE, int(mel_notes[idx]), vel))
            pos += length
    drums = []
    for bar in range(int(np.ceil(duration_s / (4 * beat))) if st.drums else 0):
        for drum, steps in st.drums.items():
            drums += [(bar * 4 * beat + k * beat / 4, drum, float(rng.uniform(0.75, 1.0))) for k in steps]
    # Crop to the duration; a note cut at the end still ends exactly where its label ends.
    parts = {p: [n._replace(offset=min(n.offset, duration_s)) for n in ns if n.onset < duration_s]
             for p, ns in parts.items()}
    return spec, parts, [d for d in drums if d[0] < duration_s], envelope


# ---------------------------------------------------------------- rendering
def _drum_kit(sr: int, rng: np.random.Generator) -> dict:
    tk, ts, th = (np.arange(int(sec * sr)) / sr for sec in (0.35, 0.2, 0.06))
    sweep = 45 + 110 * np.exp(-tk / 0.04)  # falling pitch = the "thump"
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-tk / 0.12)
    snare = (0.6 * rng.standard_normal(ts.size) * np.exp(-ts / 0.06)
             + 0.5 * np.sin(2 * np.pi * 185 * ts) * np.exp(-ts / 0.05))
    hat = np.diff(rng.standard_normal(th.size + 1)) * np.exp(-th / 0.015) * 0.5  # diff = crude high-pass
    return {"kick": kick, "snare": snare, "hat": hat}


def _leveller(mix: np.ndarray, sr: int, window_s: float = LEVEL_WINDOW_S, max_boost_db: float = 12.0):
    """Gain that flattens the mix's short-term power (rests, pad swells, sparse bars), so that the
    measured loudness trend of the output follows the intensity envelope, not the arrangement."""
    block = max(1, sr // 50)
    n_blk = -(-mix.size // block)
    power = np.mean(np.pad(mix, (0, n_blk * block - mix.size)).reshape(n_blk, block) ** 2, axis=1)
    k = max(1, int(window_s * 50))
    smooth = np.convolve(np.pad(power, k // 2, mode="edge"), np.ones(k) / k, mode="valid")[:n_blk]
    level = np.sqrt(np.maximum(smooth, power.mean() * 10 ** (-max_boost_db / 10)))
    return np.interp(np.arange(mix.size), (np.arange(n_blk) + 0.5) * block, 1 / level)


def _add(buf: np.ndarray, sig: np.ndarray, start: int) -> None:
    end = min(buf.size, start + sig.size)
    if end > start:
        buf[start:end] += sig[: end - start]


def render_synth_track(seed: int, sr: int = 22050, duration_s: float = 24.0, *,
                       style: Optional[str] = None, stems: bool = False) -> SynthTrack:
    """Render the track for ``seed`` (optionally forcing ``style``); ``stems=True`` also keeps the
    per-part signals (melody, chords, bass, drums), scaled like the mix and summing to it."""
    spec, parts, drums, envelope = _compose(seed, duration_s, style)
    st = STYLES[spec.style]
    n = int(round(duration_s * sr))
    out = {p: np.zeros(n) for p in ("melody", "chords", "bass", "drums")}
    voices = {"melody": st.lead, "chords": st.pad, "bass": st.bass}
    for part, notes in parts.items():
        for note in notes:
            hz = 440.0 * 2 ** ((note.pitch - 69) / 12)
            start = int(round(note.onset * sr))
            length = int(round(note.offset * sr)) - start
            if length > 0:
                _add(out[part], note.velocity * voices[part](hz, length, sr), start)
    kit = _drum_kit(sr, np.random.default_rng([seed, 1]))  # own stream: drum noise never shifts the score
    for t0, drum, vel in drums:
        _add(out["drums"], vel * kit[drum], int(round(t0 * sr)))

    out = {p: x * st.gains[p] for p, x in out.items()}
    gain = 10 ** (np.interp(np.arange(n) / sr, *envelope) / 20) * _leveller(sum(out.values()), sr)
    out = {p: x * gain for p, x in out.items()}
    mix = sum(out.values())
    scale = PEAK / max(float(np.max(np.abs(mix))), 1e-9)
    stem_out = {p: (x * scale).astype(np.float32) for p, x in out.items()} if stems else None
    return SynthTrack(spec, (mix * scale).astype(np.float32), sr, parts["melody"], envelope, stem_out)


# ---------------------------------------------------------------- Track source
def track_seed(seed: int, i: int) -> int:
    """Seed of track ``i``: depends on (seed, i) only, so track i is the same for any n_tracks."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


@functools.lru_cache(maxsize=1)  # one slot: load() then frame_labels() of the same track render once
def _cached_render(seed: int, sr: int, duration_s: float) -> SynthTrack:
    return render_synth_track(seed, sr, duration_s)


# Module-level functions bound with partial (not lambdas), so Tracks pickle into worker processes.
def _load(seed: int, duration_s: float, sr: int) -> np.ndarray:
    return _cached_render(seed, sr, duration_s).audio.copy()  # callers may write into it


def _frame_labels(seed: int, duration_s: float, sr: int, hop: int, n_samples: int) -> dict:
    return _cached_render(seed, sr, duration_s).frame_labels(hop, 1 + n_samples // hop)


def synth_tracks(n_tracks: int, seed: int = 0, duration_s: float = 24.0) -> list[Track]:
    """``n_tracks`` synthetic tracks; track i depends only on (seed, i)."""
    tracks = []
    for i in range(n_tracks):
        s = track_seed(seed, i)
        tracks.append(Track(
            track_id=f"synth-{seed}-{i:05d}", source_file=f"synth://{seed}/{i}",
            tags=_compose(s, duration_s)[0].tags,
            load=functools.partial(_load, s, duration_s),
            frame_labels=functools.partial(_frame_labels, s, duration_s)))
    return tracks
