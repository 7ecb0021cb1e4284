import pytest
import torch
from torch.utils.data import DistributedSampler

from ditto2.audio.mel import MelConfigMismatchError, mel_preset
from ditto2.data.datamodule import MelShardDataModule
from ditto2.data.shards import ShardOptions, build_shards
from ditto2.data.sources.folder import folder_tracks


@pytest.fixture(scope="module")
def shard_dir(audio_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    tracks, skipped = folder_tracks(str(audio_folder["root"]), str(audio_folder["root"] / "tags.csv"))
    build_shards(tracks, out, mel_preset("tiny"), ShardOptions(shard_size=3), prior_skipped=skipped, progress=False)
    return out


def test_batches_shapes_and_tag_ids(shard_dir):
    dm = MelShardDataModule(str(shard_dir), batch_size=2, preset="tiny")
    batch = next(iter(dm.train_dataloader()))
    assert batch["mel"].shape == (2, 1, 64, 256) and batch["mel"].dtype == torch.float32
    assert batch["tags"].shape == (2, 3) and batch["tags"].dtype == torch.long
    assert len(batch["caption"]) == 2 and all(c.startswith("A") for c in batch["caption"])
    sizes = dm.tag_vocab_sizes
    assert all((batch["tags"][:, i] < sizes[i]).all() for i in range(3))
    assert dm.vocab.values["genre"][0] == "<null>"  # id 0 is reserved for CFG dropout
    # a clip without a genre tag gets the null id
    ds = dm.datasets["train"]
    for item in (ds[i] for i in range(len(ds))):
        if "rock" not in item["caption"] and "folk" not in item["caption"]:
            assert item["tags"][0] == 0


def test_shuffle_is_seeded(shard_dir):
    ids = lambda dm: [c for b in dm.train_dataloader() for c in b["clip_id"]]
    a, b = MelShardDataModule(str(shard_dir), batch_size=2, seed=3), MelShardDataModule(str(shard_dir), batch_size=2, seed=3)
    assert ids(a) == ids(b)
    assert ids(a) != ids(MelShardDataModule(str(shard_dir), batch_size=2, seed=4))


def test_lazy_and_in_memory_agree(shard_dir):
    a = MelShardDataModule(str(shard_dir), in_memory=True); a.setup()
    b = MelShardDataModule(str(shard_dir), in_memory=False); b.setup()
    for split in ("train", "val", "test"):
        for i in range(len(a.datasets[split])):
            assert torch.equal(a.datasets[split][i]["mel"], b.datasets[split][i]["mel"])


def test_mel_config_mismatch_is_a_clear_error(shard_dir):
    with pytest.raises(MelConfigMismatchError, match="n_mels: expected 160"):
        MelShardDataModule(str(shard_dir), preset="paper")


def test_each_ddp_rank_reads_its_own_part(shard_dir):
    dm = MelShardDataModule(str(shard_dir))
    dm.setup()
    ds = dm.datasets["train"]
    parts = [set(ds[i]["clip_id"] for i in DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0))
             for r in (0, 1)]
    assert parts[0].isdisjoint(parts[1]) or len(ds) % 2  # padding repeats at most one clip
    assert parts[0] | parts[1] == {c["clip_id"] for c in ds.clips}


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ditto2 shards"):
        MelShardDataModule(str(tmp_path))


def test_held_out_build_uses_the_models_contract(audio_folder, shard_dir, tmp_path):
    """Clips for evaluating a model: only its held-out tracks, its statistics, its tag ids."""
    import json

    dm = MelShardDataModule(str(shard_dir))
    info = dm.data_info()
    assert info["held_out"]["test"] and info["held_out"]["val"]
    tracks, _ = folder_tracks(str(audio_folder["root"]), str(audio_folder["root"] / "tags.csv"))
    build_shards(tracks, tmp_path / "eval", mel_preset("tiny"), ShardOptions(shard_size=3), progress=False, reuse=info)
    ev = MelShardDataModule(str(tmp_path / "eval"))
    assert ev.index["splits"]["train"]["n_clips"] == 0
    held = set(info["held_out"]["test"]) | set(info["held_out"]["val"])
    clips = [json.loads(line) for line in open(tmp_path / "eval" / "clips.jsonl")]
    assert {c["track_id"] for c in clips} == held and all(c["split"] == "test" for c in clips)
    assert ev.index["stats"] == info["stats"] and ev.index["vocab"] == info["vocab"]
    # the same clip has the same normalized mel as in the model's own shards
    ev.setup(); dm.setup()
    a = {ev.datasets["test"][i]["clip_id"]: ev.datasets["test"][i]["mel"] for i in range(len(ev.datasets["test"]))}
    for split in ("val", "test"):
        ds = dm.datasets[split]
        for i in range(len(ds)):
            assert torch.equal(a[ds[i]["clip_id"]], ds[i]["mel"])
