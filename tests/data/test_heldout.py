"""Held-out clips and the self-contained evaluation subset built from them."""
import json

import pytest
import torch

from ditto2.data.heldout import held_out_clips, write_subset


def test_subset_holds_the_same_clips_bit_for_bit(synth_tiny, tmp_path):
    n = json.loads((synth_tiny / "index.json").read_text())["splits"]["test"]["n_clips"]
    assert n >= 2
    out = write_subset(synth_tiny, tmp_path / "sub", n, shard_size=1)  # one clip per shard: row bookkeeping
    index = json.loads((out / "index.json").read_text())
    assert index["splits"]["test"]["n_clips"] == n and index["splits"]["train"]["n_clips"] == 0
    assert index["mel"] == json.loads((synth_tiny / "index.json").read_text())["mel"]
    src_mels, src_clips = held_out_clips(synth_tiny, n, 0)
    sub_mels, sub_clips = held_out_clips(out, n, 0)
    by_id = {c["clip_id"]: m for c, m in zip(src_clips, src_mels)}
    assert sorted(by_id) == sorted(c["clip_id"] for c in sub_clips)
    assert all(torch.equal(by_id[c["clip_id"]], m) for c, m in zip(sub_clips, sub_mels))
    with pytest.raises(FileExistsError):
        write_subset(synth_tiny, out, n)
    with pytest.raises(ValueError, match="needed"):
        write_subset(synth_tiny, tmp_path / "too-many", n + 1)


def test_clip_order_leaves_out_excluded_clips_and_keeps_the_rest_in_order(synth_tiny):
    from ditto2.data.heldout import clip_order

    full = clip_order(synth_tiny, "test", seed=0)
    drawn = {c["clip_id"] for c in clip_order(synth_tiny, "test", seed=5)[:2]}
    rest = clip_order(synth_tiny, "test", seed=0, exclude=drawn)
    assert {c["clip_id"] for c in rest} == {c["clip_id"] for c in full} - drawn and len(rest) == len(full) - len(drawn)
