"""Any directory of audio files (also inside .zip/.pk3 archives), with an optional tags CSV."""
from __future__ import annotations

import csv
import hashlib
import os
import zipfile
from functools import partial
from pathlib import Path
from typing import Optional

from ditto2.audio.io import AUDIO_EXTENSIONS, decode_bytes
from ditto2.data.sources.base import AudioDecodeError, Track

ARCHIVE_EXTENSIONS = (".zip", ".pk3")
ARCHIVE_SEP = "::"  # "archive.pk3::member.ogg" names a file inside an archive


def _read(source_file: str) -> bytes:
    if ARCHIVE_SEP in source_file:
        archive, member = source_file.split(ARCHIVE_SEP, 1)
        try:
            with zipfile.ZipFile(archive) as z:
                return z.read(member)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise AudioDecodeError(f"cannot read archive member: {e}") from None
    with open(source_file, "rb") as f:
        return f.read()


def load_audio(source_file: str, sr: int):
    return decode_bytes(_read(source_file), source_file, sr)


def make_track(source_file: str, track_id: str, tags: dict) -> Track:
    # a partial of a module-level function pickles, so decoding can run in worker processes
    return Track(track_id=track_id, source_file=source_file, tags=dict(tags), load=partial(load_audio, source_file))


def list_audio(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """All audio files under root, sorted, archive members expanded; plus unreadable archives."""
    found, bad = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            low = name.lower()
            if low.endswith(AUDIO_EXTENSIONS):
                found.append(path)
            elif low.endswith(ARCHIVE_EXTENSIONS):
                try:
                    with zipfile.ZipFile(path) as z:
                        members = sorted(m for m in z.namelist() if m.lower().endswith(AUDIO_EXTENSIONS))
                    found.extend(f"{path}{ARCHIVE_SEP}{m}" for m in members)
                except (zipfile.BadZipFile, OSError) as e:
                    bad.append((path, f"unreadable archive: {e}"))
    return found, bad


def read_tags_csv(path: Optional[str]) -> dict[str, dict]:
    """CSV with a ``file`` column (path relative to the audio dir, or a base name) + tag columns."""
    if not path:
        return {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "file" not in reader.fieldnames:
            raise ValueError(f"tags CSV {path} needs a 'file' column; it has {reader.fieldnames}")
        return {row["file"]: {k: v for k, v in row.items() if k != "file" and v not in (None, "")} for row in reader}


def stable_track_id(prefix: str, relpath: str) -> str:
    return f"{prefix}-{hashlib.sha1(relpath.encode()).hexdigest()[:12]}"


def folder_tracks(audio_dir: str, tags_csv: Optional[str] = None, default_tags: Optional[dict] = None):
    """Returns (tracks, skipped) where skipped lists (file, reason) for unreadable archives."""
    root = Path(audio_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"audio dir {audio_dir} does not exist")
    table = read_tags_csv(tags_csv)
    files, skipped = list_audio(root)
    tracks = []
    for path in files:
        rel = os.path.relpath(path, root)
        tags = dict(default_tags or {})
        tags.update(table.get(rel, table.get(os.path.basename(path.split(ARCHIVE_SEP)[-1]), {})))
        tracks.append(make_track(path, stable_track_id("folder", rel), tags))
    return tracks, skipped
