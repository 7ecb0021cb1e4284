"""What a person types or uploads on the page -> the controls' targets (``ControlSpec``s of an ITO config).

Intensity: points ``seconds:dB`` (linear between them; preset shapes fill them in). Melody: note names
(``C4 E4 G4 - C5``, ``-`` a rest, ``:2`` a note twice as long) or a MIDI / audio file. Structure: a form string
(``ABBA``) or a reference recording. Painting: a recording and the offset of the model's window in it. Text: a
caption. Every error is a ``ControlTargetError`` with one readable line, raised before any compute.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from ditto2.controls import ControlTargetError

# the page's controls, each with its experiments/ito/<control>.yaml; "intensity+melody" steers both at once
PAGE_CONTROLS = ("intensity", "melody", "structure", "outpainting", "inpainting", "text", "intensity+melody")
DB_LIMITS = (-80.0, 0.0)  # what a person may draw: from near silence to full scale


def intensity_shapes(seconds: float) -> dict[str, str]:
    """Preset curves as editable ``seconds:dB`` points over a clip of ``seconds``."""
    t, h = round(seconds, 2), round(seconds / 2, 2)
    third, two = round(seconds / 3, 2), round(2 * seconds / 3, 2)
    return {"crescendo": f"0:-35, {t}:-15", "decrescendo": f"0:-15, {t}:-35", "swell": f"0:-35, {h}:-15, {t}:-35",
            "dip": f"0:-15, {h}:-35, {t}:-15", "steady": f"0:-25, {t}:-25",
            "steps": f"0:-35, {third}:-35, {third + 0.05:.2f}:-25, {two}:-25, {two + 0.05:.2f}:-15, {t}:-15"}


def parse_points(text: str, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``"0:-30, 2.5:-15, 5.9:-25"`` -> (times, dB), sorted by time; one point is a flat curve."""
    pairs = [p for p in re.split(r"[,;\n]+", text or "") if p.strip()]
    if not pairs:
        raise ControlTargetError("intensity: give points as seconds:dB, e.g. 0:-30, 3:-15")
    times, levels = [], []
    for p in pairs:
        m = re.fullmatch(r"\s*([-+]?\d*\.?\d+)\s*[:=]\s*([-+]?\d*\.?\d+)\s*", p)
        if not m:
            raise ControlTargetError(f"intensity: {p.strip()!r} is not seconds:dB (e.g. 2.5:-20)")
        t, db = float(m.group(1)), float(m.group(2))
        if not 0.0 <= t <= seconds + 1e-6:
            raise ControlTargetError(f"intensity: time {t:g} s is outside the clip (0 to {seconds:.2f} s)")
        if not DB_LIMITS[0] <= db <= DB_LIMITS[1]:
            raise ControlTargetError(f"intensity: {db:g} dB is outside {DB_LIMITS[0]:g} to {DB_LIMITS[1]:g} dB")
        times.append(t)
        levels.append(db)
    order = np.argsort(times, kind="stable")
    return np.asarray(times)[order], np.asarray(levels)[order]


def points_curve(text: str, seconds: float, n_frames: int) -> list[float]:
    """The points, linear in between and flat beyond the ends, at each of the model's ``n_frames`` frames."""
    times, levels = parse_points(text, seconds)
    frame_t = np.arange(n_frames) * seconds / n_frames
    return [round(float(v), 3) for v in np.interp(frame_t, times, levels)]


NOTE_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_notes(text: str) -> list[tuple[int, float]]:
    """``"C4 E4 G4:2 - Bb3"`` -> [(pitch class, length)]; a rest (``-``, ``r``, ``rest``) is pitch class -1.
    Octaves are accepted and ignored: the melody control follows the pitch class (chroma)."""
    tokens = [t for t in re.split(r"[\s,]+", text or "") if t]
    if not tokens:
        raise ControlTargetError("melody: type notes such as C4 E4 G4 C5 (- for a rest, :2 for a longer note)")
    out = []
    for tok in tokens:
        m = re.fullmatch(r"(?i)(?:([A-G])([#b]?)(-?\d)?|(-|r|rest))(?::(\d*\.?\d+))?", tok)
        if not m:
            raise ControlTargetError(f"melody: {tok!r} is not a note (C, F#4, Bb3, - for a rest, :2 for length)")
        length = float(m.group(5)) if m.group(5) else 1.0
        if length <= 0:
            raise ControlTargetError(f"melody: {tok!r} has no length")
        if m.group(4):
            out.append((-1, length))
            continue
        pc = NOTE_PC[m.group(1).upper()] + {"#": 1, "b": -1, "": 0}[m.group(2)]
        out.append((pc % 12, length))
    if all(pc < 0 for pc, _ in out):
        raise ControlTargetError("melody: only rests; type at least one note")
    return out


def notes_values(text: str, n_frames: int) -> list[int]:
    """The notes spread over the clip in proportion to their lengths -> a pitch class (or -1) per frame."""
    notes = parse_notes(text)
    bounds = np.cumsum([0.0] + [length for _, length in notes])
    pos = (np.arange(n_frames) + 0.5) / n_frames * bounds[-1]
    idx = np.searchsorted(bounds, pos, side="right") - 1
    return [int(notes[i][0]) for i in idx]


def kept_upload(path: Optional[str], run_dir: Path, what: str) -> str:
    """A copy of an uploaded file in the run's folder (so its config reproduces the run), or a readable error."""
    if not path:
        raise ControlTargetError(f"{what}: upload a file first")
    src = Path(path)
    if not src.is_file():
        raise ControlTargetError(f"{what}: the upload {src.name} is gone; upload it again")
    run_dir.mkdir(parents=True, exist_ok=True)
    dst = run_dir / f"upload-{src.name}"
    shutil.copyfile(src, dst)
    return str(dst)


def page_targets(control: str, page: dict, seconds: float, n_frames: int, run_dir: Path) -> dict[str, dict]:
    """The page's fields (``page``: intensity_points, melody_notes, melody_file, form, structure_file, recording,
    offset, caption) for ``control`` -> each control's target arguments (the ``target`` of its ControlSpec),
    uploads copied into ``run_dir``."""
    if control not in PAGE_CONTROLS:
        raise ControlTargetError(f"unknown control {control!r}; choose one of {', '.join(PAGE_CONTROLS)}")
    offset = float(page.get("offset") or 0.0)
    if offset < 0:
        raise ControlTargetError("the offset into a recording must be >= 0 seconds")
    if "+" in control:
        return {k: v for part in control.split("+") for k, v in page_targets(part, page, seconds, n_frames,
                                                                             run_dir).items()}
    if control == "intensity":
        return {"intensity": {"values": points_curve(page.get("intensity_points", ""), seconds, n_frames)}}
    if control == "melody":
        if page.get("melody_file"):
            return {"melody": {"path": kept_upload(page["melody_file"], run_dir, "melody"), "offset": offset}}
        return {"melody": {"values": notes_values(page.get("melody_notes", ""), n_frames)}}
    if control == "structure":
        if page.get("structure_file"):
            return {"structure": {"path": kept_upload(page["structure_file"], run_dir, "structure"), "offset": offset}}
        form = (page.get("form") or "").strip().upper()
        if not (form.isascii() and form.isalpha() and 2 <= len(form) <= 16 and len(set(form)) >= 2):
            raise ControlTargetError(f"structure: type a form of 2 to 16 letters with at least two kinds, e.g. ABBA "
                                     f"(got {form!r})")
        return {"structure": {"form": form}}
    if control in ("outpainting", "inpainting"):
        return {control: {"path": kept_upload(page.get("recording"), run_dir, control), "offset": offset}}
    caption = (page.get("caption") or "").strip()
    if not caption:
        raise ControlTargetError("text: type a caption, e.g. 'A calm ambient song at 70 beats per minute.'")
    return {"text": {"captions": [caption]}}
