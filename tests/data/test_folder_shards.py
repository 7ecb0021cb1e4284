import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from ditto2.audio.mel import mel_preset
from ditto2.data.shards import ShardOptions, assign_splits, build_shards
from ditto2.data.sources.folder import folder_tracks

CFG = mel_preset("tiny")


def build(folder, out, **kw):
    tracks, skipped = folder_tracks(str(folder["root"]), str(folder["root"] / "tags.csv"))
    return build_shards(tracks, out, CFG, ShardOptions(shard_size=4), prior_skipped=skipped, progress=False, **kw), tracks


def test_bad_files_are_reported_and_good_clips_all_present(audio_folder, tmp_path):
    summary, _ = build(audio_folder, tmp_path / "s")
    reasons = {Path(s["file"]).name: s["reason"] for s in summary["skipped"]}
    for name, why in audio_folder["bad"].items():
        assert name in reasons, f"{name} not reported"
        assert why in reasons[name], (name, reasons[name])
    assert len(reasons) == len(audio_folder["bad"])
    report = (tmp_path / "s" / "skipped.tsv").read_text()
    assert all(name in report for name in audio_folder["bad"])
    clips = [json.loads(line) for line in open(tmp_path / "s" / "clips.jsonl")]
    root = str(audio_folder["root"])
    for name, n_samples in audio_folder["good"].items():
        mine = [c for c in clips if c["source_file"].replace(root + "/", "") == name]
        assert len(mine) == n_samples // CFG.clip_samples, name  # back-to-back clips, none silent


def test_splits_by_track_and_tags(audio_folder, tmp_path):
    build(audio_folder, tmp_path / "s")
    clips = [json.loads(line) for line in open(tmp_path / "s" / "clips.jsonl")]
    split_of = {}
    for c in clips:
        assert split_of.setdefault(c["track_id"], c["split"]) == c["split"], "a track in two splits"
    assert set(split_of.values()) == {"train", "val", "test"}
    a = next(c for c in clips if c["source_file"].endswith("a.wav"))
    assert a["tags"]["genre"] == "rock" and a["tags"]["tempo"] == "120"
    assert a["caption"] == "A happy rock song at 120 beats per minute."
    b = next(c for c in clips if c["source_file"].endswith("b.flac"))
    assert isinstance(b["tags"]["tempo"], float) and 30 < b["tags"]["tempo"] < 300  # estimated


def test_assign_splits_is_stable_and_complete():
    ids = [f"t{i}" for i in range(50)]
    s1 = assign_splits(ids, 0.1, 0.1, 0)
    assert s1 == assign_splits(list(reversed(ids)), 0.1, 0.1, 0)
    counts = {k: list(s1.values()).count(k) for k in ("train", "val", "test")}
    assert counts == {"train": 40, "val": 5, "test": 5}
    assert assign_splits(ids, 0.1, 0.1, 1) != s1


def test_normalization_uses_train_statistics(audio_folder, tmp_path):
    build(audio_folder, tmp_path / "s")
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    train = np.concatenate([load_file(str(tmp_path / "s" / "shards" / n))["mel"].astype(np.float64)
                            for n in index["splits"]["train"]["shards"]])
    assert abs(train.mean()) < 1e-2 and abs(train.std() - 0.5) < 1e-2
    assert index["mel"] == CFG.to_dict()


def _snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "report.json" and ".work" not in p.parts}


def test_interrupted_build_resumes_to_identical_output(audio_folder, tmp_path):
    clean, tracks = build(audio_folder, tmp_path / "clean")

    class Interrupt(BaseException):
        pass

    victim = tracks[3]
    original = victim.load

    def dying_load(sr):
        raise Interrupt()

    victim.load = dying_load
    with pytest.raises(Interrupt):
        build_shards(tracks, tmp_path / "resumed", CFG, ShardOptions(shard_size=4), progress=False)
    assert not (tmp_path / "resumed" / "index.json").exists()
    cached_before = len(list((tmp_path / "resumed" / ".work").glob("*.safetensors")))
    assert cached_before == 3
    victim.load = original
    summary, _ = build(audio_folder, tmp_path / "resumed")
    assert summary["tracks_processed_this_run"] == len(tracks) - 3
    assert _snapshot(tmp_path / "clean") == _snapshot(tmp_path / "resumed")
    again, _ = build(audio_folder, tmp_path / "resumed")
    assert again["tracks_processed_this_run"] == len(audio_folder["bad"]) - 1  # failures retried, not cached
    assert _snapshot(tmp_path / "clean") == _snapshot(tmp_path / "resumed")


def test_other_settings_in_same_dir_are_refused(audio_folder, tmp_path):
    build(audio_folder, tmp_path / "s")
    tracks, _ = folder_tracks(str(audio_folder["root"]))
    with pytest.raises(ValueError, match="other settings"):
        build_shards(tracks, tmp_path / "s", CFG, ShardOptions(shard_size=8), progress=False)
