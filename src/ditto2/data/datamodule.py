"""`MelShardDataModule`: the one DataModule that pretraining, CM and CTM distillation all read."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors.numpy import load_file
from torch.utils.data import DataLoader, Dataset

from ditto2.audio.mel import MelConfig, MelNormalizer, mel_preset
from ditto2.data.tags import TagVocab


def read_index(root: str | Path) -> dict:
    path = Path(root) / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"no shard index at {path}; build one with `ditto2 shards ...`")
    return json.loads(path.read_text())


def held_out_tracks(root: str | Path) -> dict[str, list[str]]:
    """Track ids of the val and test splits: what a model trained on these shards never saw."""
    out: dict[str, set] = {"val": set(), "test": set()}
    with open(Path(root) / "clips.jsonl") as f:
        for c in map(json.loads, f):
            if c["split"] in out:
                out[c["split"]].add(c["track_id"])
    return {k: sorted(v) for k, v in out.items()}


class MelShardDataset(Dataset):
    """Clips of one split. Items: mel (1, n_mels, frames) float32, tags (n_fields,) long, caption str,
    clip_id str, and any exact labels the source provided (e.g. melody (frames,) for synth)."""

    def __init__(self, root: str | Path, split: str, in_memory: bool = True):
        self.root = Path(root)
        self.index = read_index(root)
        if split not in self.index["splits"]:
            raise ValueError(f"unknown split {split!r}; index has {sorted(self.index['splits'])}")
        with open(self.root / "clips.jsonl") as f:
            self.clips = [c for c in map(json.loads, f) if c["split"] == split]
        self.labels = list(self.index.get("labels", []))
        self.in_memory = in_memory
        self._all: Optional[dict] = None
        if in_memory and self.clips:
            parts = [load_file(str(self.root / "shards" / s)) for s in self.index["splits"][split]["shards"]]
            self._all = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        self._load = lru_cache(maxsize=4)(self._load_shard)

    def _load_shard(self, name: str) -> dict:
        return load_file(str(self.root / "shards" / name))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        arrays, row = (self._all, i) if self._all is not None else (self._load(clip["shard"]), clip["row"])
        item = {
            "mel": torch.from_numpy(arrays["mel"][row].astype(np.float32)),
            "tags": torch.tensor(clip["tag_ids"], dtype=torch.long),
            "caption": clip["caption"],
            "clip_id": clip["clip_id"],
        }
        for name in self.labels:
            item[name] = torch.from_numpy(np.asarray(arrays[name][row]))
        return item


class MelShardDataModule(pl.LightningDataModule):
    """Train / val / test loaders over a shard directory built by `ditto2 shards`.

    ``preset`` (or ``mel``) is the mel config the model expects; a shard set built with another
    config is an error before any compute. Under DDP, Lightning swaps in a DistributedSampler so each
    rank reads its own part; shuffling is seeded so runs are repeatable.

    ``stream``: read the clips from a litdata copy of the shards (``ditto2 stream``; a local folder, a shared
    filesystem, or ``s3://...``) instead of ``root``'s shard files; ``root`` still supplies the contract (its
    index.json and clips.jsonl, a few MB). litdata then splits the clips between ranks; ``stream_cache`` is where
    remote chunks are kept (bounded by litdata's cache size).
    """

    def __init__(
        self,
        root: str,
        batch_size: int = 16,
        num_workers: int = 0,
        preset: Optional[str] = None,
        seed: int = 0,
        in_memory: bool = True,
        eval_batch_size: Optional[int] = None,
        stream: Optional[str] = None,
        stream_cache: Optional[str] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.index = read_index(root)
        self.mel_config = MelConfig.from_dict(self.index["mel"])
        if preset is not None:
            mel_preset(preset).check_matches(self.mel_config, what=f"shards at {root}")
        self.normalizer = MelNormalizer.from_dict(self.index["stats"])
        self.vocab = TagVocab.from_dict(self.index["vocab"])
        if stream:
            from ditto2.data.streaming import check_contract

            check_contract(root, stream)
        self.datasets: dict = {}

    def data_info(self) -> dict:
        """What a model must carry to read and write this data (see ditto2.models.bundle)."""
        return {"mel": self.mel_config.to_dict(), "stats": self.normalizer.to_dict(), "vocab": self.vocab.to_dict(),
                "held_out": held_out_tracks(self.hparams.root)}

    @property
    def tag_vocab_sizes(self) -> list[int]:
        return self.vocab.sizes

    def setup(self, stage: Optional[str] = None) -> None:
        h = self.hparams
        for split in ("train", "val", "test"):
            if split in self.datasets:
                continue
            if h.stream:
                from ditto2.data.streaming import streaming_split

                self.datasets[split] = streaming_split(h.stream, split, split == "train", h.seed, h.stream_cache)
            else:
                self.datasets[split] = MelShardDataset(h.root, split, h.in_memory)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        ds = self.datasets[split]
        if len(ds) == 0:
            raise ValueError(f"split {split!r} of {self.hparams.root} has no clips")
        bs = self.hparams.batch_size if shuffle else (self.hparams.eval_batch_size or self.hparams.batch_size)
        if self.hparams.stream:  # litdata shuffles (seeded) and splits between ranks itself
            from litdata import StreamingDataLoader

            return StreamingDataLoader(ds, batch_size=min(bs, len(ds)), num_workers=self.hparams.num_workers)
        return DataLoader(
            ds, batch_size=min(bs, len(ds)), shuffle=shuffle, drop_last=shuffle and len(ds) >= bs,
            num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0,
            generator=torch.Generator().manual_seed(self.hparams.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
