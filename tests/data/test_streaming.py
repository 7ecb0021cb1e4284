"""Streaming shards (litdata): a converted copy gives the same clips, keeps the contract, and trains."""
import json

import pytest
import torch

from ditto2.data.datamodule import MelShardDataModule, MelShardDataset
from ditto2.data.streaming import to_streaming

litdata = pytest.importorskip("litdata")


@pytest.fixture(scope="module")
def streamed(synth_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("stream") / "synth-tiny"
    counts = to_streaming(synth_tiny, out, chunk_bytes="1MB")
    return out, counts


def test_the_streamed_copy_holds_the_same_clips(synth_tiny, streamed):
    out, counts = streamed
    for split in ("train", "val", "test"):
        local = MelShardDataset(synth_tiny, split)
        assert counts[split] == len(local)
        if not len(local):
            continue
        stream = litdata.StreamingDataset(str(out / split))
        by_id = {local[i]["clip_id"]: local[i] for i in range(len(local))}
        seen = set()
        for item in stream:
            ref = by_id[item["clip_id"]]
            assert torch.equal(item["mel"], ref["mel"]) and torch.equal(item["tags"], ref["tags"])
            assert item["caption"] == ref["caption"]
            seen.add(item["clip_id"])
        assert seen == set(by_id)


def test_a_copy_of_another_shard_set_is_refused(synth_tiny, streamed, tmp_path):
    import shutil

    out, _ = streamed
    other = tmp_path / "other"
    shutil.copytree(out, other)
    index = json.loads((other / "index.json").read_text())
    index["stats"]["mean"] += 1.0
    (other / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="another shard set"):
        MelShardDataModule(str(synth_tiny), stream=str(other))
    with pytest.raises(FileNotFoundError, match="ditto2 stream"):
        MelShardDataModule(str(synth_tiny), stream=str(tmp_path / "nowhere"))


def test_training_reads_the_streamed_copy(synth_tiny, streamed, tmp_path):
    from ditto2.cli import main

    out, _ = streamed
    main(["fit", "--config", "experiments/pretrain/tiny.yaml", "--data.root", str(synth_tiny), "--data.stream", str(out),
          "--data.batch_size", "2", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
          "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "2",
          "--trainer.max_time", "null", "--checkpoint.every_n_train_steps=2", "--model.init_args.n_log_samples", "0",
          "--model.init_args.unet_overrides",
          "{base_channels: 8, channel_mults: [1, 2], attn_levels: [1], num_heads: 2}"])
    ckpt = torch.load(tmp_path / "logs" / "pretrain-tiny" / "main" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
