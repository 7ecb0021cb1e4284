from ditto2.audio.mel import mel_preset
from ditto2.data.datamodule import MelShardDataModule
from ditto2.data.shards import ShardOptions, build_shards
from ditto2.data.sources.synth import synth_tracks


def test_synth_shards_are_deterministic_and_carry_exact_labels(tmp_path):
    cfg = mel_preset("tiny")
    for out in ("a", "b"):
        build_shards(synth_tracks(4, seed=5, duration_s=13.0), tmp_path / out, cfg, ShardOptions(), progress=False)
    for name in ("index.json", "clips.jsonl", "shards/train-00000.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    dm = MelShardDataModule(str(tmp_path / "a"), batch_size=2, preset="tiny")
    batch = next(iter(dm.train_dataloader()))
    assert batch["melody"].shape == (2, cfg.frames) and batch["intensity_db"].shape == (2, cfg.frames)
    assert batch["melody"].min() >= -1 and batch["melody"].max() <= 11 and (batch["melody"] >= 0).any()
    assert all(c.endswith("beats per minute.") for c in batch["caption"])
