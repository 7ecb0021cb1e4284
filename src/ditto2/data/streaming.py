"""Shard sets that stream (litdata): ``to_streaming`` turns a shard folder into litdata's chunked format, one
folder per split, and ``streaming_split`` reads a split back from a local folder, a shared filesystem or object
storage (``s3://bucket/prefix``), chunk by chunk, so no node needs the whole set on its disk.

The contract (mel config, statistics, vocabulary, splits: ``index.json``, ``clips.jsonl``) is unchanged: the
streamed copy carries both files, and the DataModule still reads them from its local ``root``; a copy whose
contract differs from the root's is refused before any compute.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

SPLITS = ("train", "val", "test")


def _require_litdata():
    try:
        import litdata
    except ImportError as e:  # pragma: no cover - the message is the point
        raise ImportError("streaming shards need litdata: pip install --no-deps 'litdata>=0.2.70,<0.3' "
                          "(see the README: its torchvision requirement would replace a CPU torch)") from e
    return litdata


def _clip(args: tuple) -> dict:
    """One clip of a local shard set as a litdata sample (what ``MelShardDataset`` gives, tensors as tensors)."""
    from ditto2.data.datamodule import MelShardDataset

    root, split, i = args
    ds = _clip.cache.get((root, split))
    if ds is None:
        ds = _clip.cache[(root, split)] = MelShardDataset(root, split, in_memory=False)
    return ds[i]


_clip.cache = {}


def to_streaming(root: str | Path, out: str | Path, chunk_bytes: str = "64MB", workers: int = 1) -> dict:
    """Convert the shard folder ``root`` into ``out/{train,val,test}`` (litdata ``optimize``) plus ``out/index.json``
    and ``out/clips.jsonl``; -> {split: clips}. ``out`` can then be copied to object storage as is."""
    from ditto2.data.datamodule import MelShardDataset, read_index

    litdata = _require_litdata()
    root, out = Path(root), Path(out)
    index = read_index(root)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        if split not in index["splits"]:
            continue
        n = len(MelShardDataset(root, split, in_memory=False))
        counts[split] = n
        if n == 0:
            continue
        litdata.optimize(fn=_clip, inputs=[(str(root), split, i) for i in range(n)], output_dir=str(out / split),
                         chunk_bytes=chunk_bytes, num_workers=workers, mode="overwrite", verbose=False,
                         start_method="spawn" if workers > 1 else None)
    for name in ("index.json", "clips.jsonl"):
        shutil.copyfile(root / name, out / name)
    return counts


def check_contract(root: str | Path, stream: str) -> None:
    """A local streamed copy must carry the root's contract and clip counts (a remote one is trusted: copy it from
    a checked local one)."""
    from ditto2.data.datamodule import read_index

    local = Path(stream)
    if "://" in stream:
        return
    if not (local / "index.json").exists():
        raise FileNotFoundError(f"no streamed shards at {stream} (index.json missing): make them with `ditto2 stream`")
    mine, theirs = read_index(root), read_index(local)
    for key in ("mel", "stats", "vocab"):
        if mine.get(key) != theirs.get(key):
            raise ValueError(f"the streamed shards at {stream} were made from another shard set than {root} "
                             f"(their {key} differs): convert {root} again with `ditto2 stream`")
    with open(Path(root) / "clips.jsonl") as f:
        expected = {s: 0 for s in SPLITS}
        for c in map(json.loads, f):
            expected[c["split"]] = expected.get(c["split"], 0) + 1
    for split, n in expected.items():
        chunks = local / split / "index.json"
        have = sum(c["chunk_size"] for c in json.loads(chunks.read_text())["chunks"]) if chunks.exists() else 0
        if have != n:
            raise ValueError(f"{stream}/{split} holds {have} clips, {root} has {n}: convert the shards again")


def streaming_split(stream: str, split: str, shuffle: bool, seed: int, cache_dir: str | None = None):
    """A litdata ``StreamingDataset`` over ``<stream>/<split>`` (local path or URI). Under DDP it hands each rank
    its own part of the clips by itself (Lightning adds no sampler to it)."""
    litdata = _require_litdata()
    return litdata.StreamingDataset(f"{stream.rstrip('/')}/{split}", shuffle=shuffle, seed=seed, drop_last=shuffle,
                                    cache_dir=cache_dir)
