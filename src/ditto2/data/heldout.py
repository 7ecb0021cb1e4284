"""Held-out clips of a shard set (test split by default): normalized mels + their index rows, chosen
reproducibly by seed, one clip per track first so that a small set spans many tracks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file


def clip_order(shards: str | Path, split: str = "test", seed: int = 0, exclude=()) -> list[dict]:
    """The index rows of a split in the order ``held_out_clips`` takes them (by seed: one clip per track first,
    then the rest), leaving out the clips whose ``clip_id`` is in ``exclude``."""
    with open(Path(shards) / "clips.jsonl") as f:
        clips = [c for c in map(json.loads, f) if c["split"] == split and c["clip_id"] not in set(exclude)]
    rng = np.random.default_rng(seed)
    by_track: dict[str, list] = {}
    for c in clips:
        by_track.setdefault(c["track_id"], []).append(c)
    tracks = sorted(by_track)
    rng.shuffle(tracks)
    order = [by_track[t][rng.integers(len(by_track[t]))] for t in tracks]
    return order + [c for c in clips if c not in order]


def load_mels(shards: str | Path, rows: list[dict]) -> torch.Tensor:
    """(N, 1, n_mels, frames) normalized mels of index rows."""
    root, cache, mels = Path(shards), {}, []
    for c in rows:
        if c["shard"] not in cache:
            cache[c["shard"]] = load_file(str(root / "shards" / c["shard"]))
        mels.append(torch.from_numpy(cache[c["shard"]]["mel"][c["row"]].astype(np.float32)))
    return torch.stack(mels)


def held_out_clips(shards: str, n: int, seed: int, split: str = "test") -> tuple[torch.Tensor, list[dict]]:
    """n clips of a split, chosen by seed (different tracks first), as normalized mels + their index rows."""
    order = clip_order(shards, split, seed)
    if len(order) < n:
        raise ValueError(f"{shards} has {len(order)} {split} clips; {n} needed")
    return load_mels(shards, order[:n]), order[:n]


def write_subset(src: str | Path, out: str | Path, n: int, split: str = "test", seed: int = 0,
                 shard_size: int = 256) -> Path:
    """A self-contained shard set of ``n`` clips of ``src``'s ``split`` (chosen as ``held_out_clips``
    chooses), e.g. a small evaluation set to carry to another machine. Mels are copied bit for bit
    (float16); the index keeps the source's mel config, statistics and vocabulary."""
    from safetensors.numpy import save_file

    src, out = Path(src), Path(out)
    if (out / "index.json").exists():
        raise FileExistsError(f"{out} already holds a shard set")
    index = json.loads((src / "index.json").read_text())
    mels, clips = held_out_clips(src, n, seed, split)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    rows, names = [], []
    for s, start in enumerate(range(0, n, shard_size)):
        name = f"{split}-{s:05d}.safetensors"
        save_file({"mel": mels[start : start + shard_size].numpy().astype(np.float16)}, str(out / "shards" / name))
        names.append(name)
        rows += [{**c, "shard": name, "row": i} for i, c in enumerate(clips[start : start + shard_size])]
    with open(out / "clips.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    tracks = {c["track_id"] for c in clips}
    index["splits"] = {k: {"n_clips": 0, "n_tracks": 0, "shards": []} for k in index["splits"]}
    index["splits"][split] = {"n_clips": n, "n_tracks": len(tracks), "shards": names}
    index["labels"] = []
    index["subset_of"] = {"source": str(src), "split": split, "seed": seed}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return out
