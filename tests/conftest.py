"""Shared fixtures: small real audio folders with every kind of bad file, built in a temp dir."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
# Small ops on 2 cores: a second OpenMP thread spin-waits against any other busy process and can
# make a test 5-50x slower; one thread is steady.
torch.set_num_threads(1)
SR = 22050


def tone_track(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A few harmonics with a beat-like amplitude pulse: non-silent, tonal, different per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(0.2 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in (1, 2, 3))
    pulse = 0.6 + 0.4 * (np.sin(2 * np.pi * 2.0 * t) > 0)
    return (x * pulse + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory):
    """Six good tracks (wav/flac/ogg, one inside a .pk3) + every kind of bad file, and a tags CSV."""
    root = tmp_path_factory.mktemp("audio")
    good = {}
    specs = [("a.wav", 13.0, 220), ("b.flac", 19.0, 330), ("c.ogg", 13.0, 262), ("sub/d.wav", 25.0, 392),
             ("e.wav", 13.0, 440), ("f.flac", 13.0, 494)]
    for i, (name, sec, f0) in enumerate(specs):
        path = root / name
        path.parent.mkdir(exist_ok=True)
        x = tone_track(sec, f0, i)
        sf.write(path, x, SR)
        good[name] = len(x)
    # an archive holding a good track (nexuiz-style .pk3)
    sf.write(root / "inner.ogg", tone_track(13.0, 587, 9), SR)
    with zipfile.ZipFile(root / "pack.pk3", "w") as z:
        z.write(root / "inner.ogg", "sound/cdtracks/inner.ogg")
    os.remove(root / "inner.ogg")
    good["pack.pk3::sound/cdtracks/inner.ogg"] = int(13.0 * SR)
    bad = {}
    ogg = (root / "c.ogg").read_bytes()
    (root / "truncated.ogg").write_bytes(ogg[: len(ogg) // 2]); bad["truncated.ogg"] = "truncated"
    (root / "empty.wav").write_bytes(b""); bad["empty.wav"] = "empty"
    (root / "notes.mp3").write_text("this is not audio, just text with an audio extension\n" * 20)
    bad["notes.mp3"] = "cannot decode"
    rng = np.random.default_rng(0)
    (root / "garbage.flac").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    bad["garbage.flac"] = "cannot decode"
    sf.write(root / "short.wav", tone_track(2.0, 300, 7), SR); bad["short.wav"] = "shorter than one clip"
    nan = tone_track(13.0, 300, 8); nan[1000:1010] = np.nan
    sf.write(root / "nan.wav", nan, SR, subtype="FLOAT"); bad["nan.wav"] = "non-finite"
    wav = (root / "a.wav").read_bytes()
    (root / "cut.wav").write_bytes(wav[: len(wav) * 2 // 3]); bad["cut.wav"] = "truncated"
    (root / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip"); bad["broken.zip"] = "unreadable archive"
    (root / "tags.csv").write_text("file,genre,mood,tempo\na.wav,rock,happy,120\nb.flac,folk,sad,\nsub/d.wav,rock,calm,90\n")
    return {"root": root, "good": good, "bad": bad}


from model_fixtures import *  # noqa: E402,F401,F403  (synth shards + small model bundles)
