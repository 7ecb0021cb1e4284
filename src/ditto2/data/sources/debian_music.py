"""Real recordings from Debian's game-music packages: apt-get download + dpkg -x, no system install."""
from __future__ import annotations

import fnmatch
import glob
import json
import os
import shutil
import subprocess
import zipfile
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

from ditto2.data.sources.folder import ARCHIVE_SEP, make_track, stable_track_id


def load_manifest() -> dict:
    return json.loads(resources.files("ditto2.data.sources").joinpath("debian_music.json").read_text())["packages"]


class AptUnavailableError(RuntimeError):
    pass


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        raise AptUnavailableError(
            f"'{tool}' is not available on this machine, so the debian-music source cannot fetch packages. "
            "Bring audio files yourself instead: ditto2 shards folder --audio-dir DIR --out OUT"
        )


def fetch_package(name: str, cache_dir: Path) -> Path:
    """Download (once) and unpack (once) one package; returns its unpacked root."""
    debs, root = cache_dir / "debs", cache_dir / "unpacked" / name
    if (root / ".complete").exists():
        return root
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        _need("apt-get")
        r = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"apt-get download {name} failed: {r.stderr.strip()[-400:]} "
                               "(run 'apt-get update' first, or use the folder source)")
        found = sorted(debs.glob(f"{name}_*.deb"))
    _need("dpkg")
    tmp = root.with_name(name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["dpkg", "-x", str(found[-1]), str(tmp)], check=True)
    (tmp / ".complete").touch()
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def _files(root: Path, patterns: Sequence[str]) -> list[str]:
    out = []
    for pattern in patterns:
        if ARCHIVE_SEP in pattern:
            archive_glob, member_glob = pattern.split(ARCHIVE_SEP, 1)
            for archive in sorted(glob.glob(str(root / archive_glob))):
                with zipfile.ZipFile(archive) as z:
                    out += [f"{archive}{ARCHIVE_SEP}{m}" for m in sorted(z.namelist()) if fnmatch.fnmatch(m, member_glob)]
        else:
            out += sorted(glob.glob(str(root / pattern)))
    return out


def _mood(entry: dict, path: str) -> str:
    stem = os.path.basename(path.split(ARCHIVE_SEP)[-1])
    for key, mood in entry.get("moods", {}).items():
        if key.lower() in stem.lower():
            return mood
    return entry["mood"]


def debian_music_tracks(cache_dir: str, packages: Optional[Sequence[str]] = None,
                        max_tracks_per_package: Optional[int] = None):
    """Returns (tracks, skipped); tags: genre, mood (curated manifest), package; tempo is estimated later."""
    manifest = load_manifest()
    names = list(packages) if packages else list(manifest)
    unknown = [n for n in names if n not in manifest]
    if unknown:
        raise ValueError(f"no manifest entry for {unknown}; known packages: {sorted(manifest)}")
    tracks = []
    for name in names:
        entry = manifest[name]
        root = fetch_package(name, Path(cache_dir))
        files = _files(root, entry["files"])
        if not files:
            raise RuntimeError(f"package {name} unpacked to {root} but no files match {entry['files']}")
        for path in files[:max_tracks_per_package]:
            rel = os.path.relpath(path, root)
            tags = {"genre": entry["genre"], "mood": _mood(entry, path), "package": name}
            tracks.append(make_track(path, stable_track_id(name, rel), tags))
    return tracks, []
