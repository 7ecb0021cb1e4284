"""Tracks -> normalized log-mel shards + clip index + skip report. Atomic, resumable, deterministic.

Two stages. (1) Each track is decoded, cut into clips and turned into raw log-mels, which are cached
per track under ``OUT/.work/`` (the expensive part; a rerun skips cached tracks). (2) From the caches,
dataset statistics are computed on the train split and every shard, the index and the report are
rewritten in a fixed order, each file via a temporary name and ``os.replace``. A run killed at any
point leaves either old complete files or none, and a rerun produces byte-identical output.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import librosa
import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from ditto2.audio.mel import LogMel, MelConfig, MelNormalizer
from ditto2.data.sources.base import AudioDecodeError, Track
from ditto2.data.tags import TagVocab, caption

log = logging.getLogger(__name__)
INDEX_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ShardOptions:
    clip_hop_s: Optional[float] = None  # None: back-to-back clips (hop = clip length)
    silence_db: float = -50.0  # clips whose RMS (dBFS) is below this are dropped
    shard_size: int = 256  # clips per shard file
    val_frac: float = 0.1
    test_frac: float = 0.1
    split_seed: int = 0
    target_std: float = 0.5  # normalized data std; EDM's σ_data


# ---------------------------------------------------------------- splits (by track, never by clip)
def assign_splits(track_ids: Sequence[str], val_frac: float, test_frac: float, seed: int) -> dict[str, str]:
    """Order tracks by a seeded hash of their id, then take test, val, train in that order.

    With three or more tracks every split gets at least one track.
    """
    order = sorted(track_ids, key=lambda t: hashlib.sha1(f"{seed}:{t}".encode()).hexdigest())
    n = len(order)
    n_test = max(1, round(n * test_frac)) if n >= 3 and test_frac > 0 else 0
    n_val = max(1, round(n * val_frac)) if n >= 3 and val_frac > 0 else 0
    out = {}
    for i, t in enumerate(order):
        out[t] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


# ---------------------------------------------------------------- stage 1: one track -> raw clips
def _estimate_tempo(logmel: np.ndarray, cfg: MelConfig, max_seconds: float = 120.0) -> float:
    """Beat-tracking tempo from the log-mel we already have, on at most the middle two minutes."""
    n = int(max_seconds * cfg.sample_rate / cfg.hop_length)
    start = max(0, (logmel.shape[-1] - n) // 2)
    db = logmel[:, start : start + n] * (20.0 / math.log(10.0))
    onset = librosa.onset.onset_strength(S=db, sr=cfg.sample_rate, hop_length=cfg.hop_length)
    tempo = librosa.feature.tempo(onset_envelope=onset, sr=cfg.sample_rate, hop_length=cfg.hop_length)
    return float(np.round(np.atleast_1d(tempo)[0], 1))


def process_track(track: Track, cfg: MelConfig, opts: ShardOptions) -> dict:
    """Decode and cut one track. Returns raw log-mel clips + metadata; raises AudioDecodeError.

    The log-mel is computed once over the whole track and sliced, so clip offsets are whole hops;
    a clip's edge frames therefore see the neighbouring audio instead of reflect padding.
    """
    audio = track.load(cfg.sample_rate)
    n = cfg.clip_samples
    if len(audio) < n:
        raise AudioDecodeError(f"shorter than one clip ({len(audio) / cfg.sample_rate:.2f} s < {cfg.clip_seconds:.2f} s)")
    hop_frames = cfg.frames if opts.clip_hop_s is None else max(1, round(opts.clip_hop_s * cfg.sample_rate / cfg.hop_length))
    starts = np.arange(0, (len(audio) - n) // cfg.hop_length + 1, hop_frames)
    power = np.square(audio, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(power)])
    offsets = starts * cfg.hop_length
    rms_db = 10 * np.log10((csum[offsets + n] - csum[offsets]) / n + 1e-24)
    keep = rms_db >= opts.silence_db
    with torch.no_grad():
        whole = LogMel(cfg)(torch.from_numpy(audio)).numpy()
    empty = np.zeros((0, cfg.n_mels, cfg.frames), np.float32)
    mels = np.stack([whole[:, s : s + cfg.frames] for s in starts[keep]]) if keep.any() else empty
    tags = dict(track.tags)
    if tags.get("tempo") in (None, ""):
        tags["tempo"] = _estimate_tempo(whole, cfg)
    out = {
        "mel": mels.astype(np.float32),
        "offsets": offsets[keep].astype(np.int64),
        "n_silent": int((~keep).sum()),
        "seconds": len(audio) / cfg.sample_rate,
        "tags": tags,
    }
    if track.frame_labels is not None:
        labels = track.frame_labels(cfg.sample_rate, cfg.hop_length, len(audio))
        for name, arr in labels.items():
            cut = [arr[s : s + cfg.frames] for s in starts[keep]]
            out[f"label_{name}"] = np.stack(cut) if cut else np.zeros((0, cfg.frames), arr.dtype)
    return out


def _cache_path(work: Path, track_id: str) -> Path:
    return work / f"{hashlib.sha1(track_id.encode()).hexdigest()[:16]}.safetensors"


def _atomic_save(tensors: dict, path: Path, metadata: Optional[dict] = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_cache(result: dict, track: Track, path: Path) -> None:
    tensors = {k: np.ascontiguousarray(v) for k, v in result.items() if isinstance(v, np.ndarray)}
    meta = {"track_id": track.track_id, "source_file": track.source_file, "tags": result["tags"],
            "n_silent": result["n_silent"], "seconds": result["seconds"],
            "labels": sorted(k[6:] for k in tensors if k.startswith("label_"))}
    _atomic_save(tensors, path, {"meta": json.dumps(meta, sort_keys=True)})


_WORKER_STATE: dict = {}


def _worker_init(cfg, opts):
    torch.set_num_threads(1)
    _WORKER_STATE.update(cfg=cfg, opts=opts)


def _worker_run(track: Track):
    try:
        return track.track_id, process_track(track, _WORKER_STATE["cfg"], _WORKER_STATE["opts"]), None
    except AudioDecodeError as e:
        return track.track_id, None, str(e)


# ---------------------------------------------------------------- stage 2: caches -> shards + index
def build_shards(
    tracks: Sequence[Track],
    out_dir: str | os.PathLike,
    cfg: MelConfig,
    opts: ShardOptions = ShardOptions(),
    *,
    workers: int = 1,
    prior_skipped: Sequence[tuple[str, str]] = (),
    source: str = "",
    progress: bool = True,
    reuse: Optional[dict] = None,
    held_out_only: bool = True,
) -> dict:
    """Build (or resume) the shard set in ``out_dir``; returns the summary written to report.json.

    ``reuse`` = a model's data contract (``{"stats", "vocab", "held_out"}``, as in a model bundle):
    only the tracks that model never trained on are built, all into the "test" split, normalized
    with the model's statistics and encoded with its tag vocabulary — clips for evaluating it.
    ``held_out_only=False`` builds every track of the source that way (a user's own folder as ITO
    references for that model).
    """
    if reuse is not None and held_out_only:
        held = set(reuse.get("held_out", {}).get("test", [])) | set(reuse.get("held_out", {}).get("val", []))
        if not held:
            raise ValueError("the model's data contract lists no held-out tracks (export it with --shards)")
        tracks = [t for t in tracks if t.track_id in held]
        if not tracks:
            raise ValueError("none of the model's held-out tracks are in this source; to use your own music with "
                             "the model's statistics, build it with --stats-of instead of --held-out-of")
    t0 = time.time()
    out, work = Path(out_dir), Path(out_dir) / ".work"
    work.mkdir(parents=True, exist_ok=True)
    ids = [t.track_id for t in tracks]
    if len(set(ids)) != len(ids):
        raise ValueError("track ids must be unique")
    _check_previous_config(out, cfg, opts)
    todo = [t for t in tracks if not _cache_path(work, t.track_id).exists()]
    skipped = [{"file": f, "reason": r} for f, r in prior_skipped]
    failed: dict[str, str] = {}
    by_id = {t.track_id: t for t in tracks}
    bar = tqdm(total=len(todo), desc="decode+mel", unit="track", disable=not progress)
    if workers > 1 and todo and _picklable(todo[0]):
        with ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(cfg, opts)) as pool:
            for tid, result, err in pool.map(_worker_run, todo, chunksize=1):
                _finish(tid, result, err, by_id, work, failed)
                bar.update()
    else:
        for t in todo:
            try:
                _finish(t.track_id, process_track(t, cfg, opts), None, by_id, work, failed)
            except AudioDecodeError as e:
                _finish(t.track_id, None, str(e), by_id, work, failed)
            bar.update()
    bar.close()
    # failures are not cached: a rerun tries them again (and reports them again)
    skipped += [{"file": by_id[tid].source_file, "reason": r} for tid, r in failed.items()]
    good = [t for t in tracks if t.track_id not in failed and _cache_path(work, t.track_id).exists()]
    summary = _write_dataset(good, out, work, cfg, opts, skipped, source, progress, reuse)
    summary["seconds_wall"] = round(time.time() - t0, 2)
    summary["tracks_processed_this_run"] = len(todo)
    _atomic_write_text(json.dumps(summary, indent=1, sort_keys=True), out / "report.json")
    return summary


def _picklable(track: Track) -> bool:
    try:
        pickle.dumps(track)
        return True
    except Exception:
        log.info("track loaders are not picklable; decoding in one process")
        return False


def _finish(tid, result, err, by_id, work, failed):
    if err is not None:
        failed[tid] = err
        log.warning("skipped %s: %s", by_id[tid].source_file, err)
    else:
        _write_cache(result, by_id[tid], _cache_path(work, tid))


def _check_previous_config(out: Path, cfg: MelConfig, opts: ShardOptions) -> None:
    """Caches made with other settings must not be mixed in silently."""
    stamp = out / ".work" / "config.json"
    current = json.dumps({"mel": cfg.to_dict(), "opts": opts.__dict__}, sort_keys=True)
    if stamp.exists() and stamp.read_text() != current:
        raise ValueError(f"{out} holds shards built with other settings ({stamp}); use a new --out or delete it")
    _atomic_write_text(current, stamp)


def _read_meta(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return json.loads(f.metadata()["meta"])


def _train_statistics(tracks, splits, work: Path, target_std: float) -> MelNormalizer:
    """Mean / std over every train-split log-mel value, accumulated in float64."""
    total, total_sq, count = 0.0, 0.0, 0
    for t in tracks:
        if splits[t.track_id] == "train":
            m = load_file(str(_cache_path(work, t.track_id)))["mel"].astype(np.float64)
            total, total_sq, count = total + m.sum(), total_sq + (m**2).sum(), count + m.size
    if count == 0:
        raise ValueError("no usable clips in the train split; see the skip report")
    mean = total / count
    return MelNormalizer(float(mean), float(math.sqrt(max(total_sq / count - mean**2, 1e-12))), target_std)


def _write_dataset(tracks, out: Path, work: Path, cfg, opts, skipped, source, progress, reuse=None) -> dict:
    """Streams track caches into shards; memory holds one shard and one track at a time."""
    metas = {t.track_id: _read_meta(_cache_path(work, t.track_id)) for t in tracks}
    if reuse is None:
        splits = assign_splits([t.track_id for t in tracks], opts.val_frac, opts.test_frac, opts.split_seed)
        normalizer = _train_statistics(tracks, splits, work, opts.target_std)
        vocab = TagVocab.build(m["tags"] for m in metas.values())
    else:
        splits = {t.track_id: "test" for t in tracks}
        normalizer, vocab = MelNormalizer.from_dict(reuse["stats"]), TagVocab.from_dict(reuse["vocab"])
    label_names = sorted({k for m in metas.values() for k in m.get("labels", [])})
    label_names = [k for k in label_names if all(k in m.get("labels", []) for m in metas.values())]

    shards_dir = out / "shards"
    shards_dir.mkdir(exist_ok=True)
    index = {"version": INDEX_VERSION, "source": source, "mel": cfg.to_dict(), "stats": normalizer.to_dict(),
             "options": opts.__dict__, "vocab": vocab.to_dict(), "labels": label_names, "splits": {},
             "reused_model_contract": reuse is not None}
    clip_rows, written = [], set()
    bar = tqdm(total=len(tracks), desc="write shards", unit="track", disable=not progress)
    for split in SPLITS:
        members = [t for t in tracks if splits[t.track_id] == split]
        shard_names: list[str] = []
        buf: list[tuple] = []

        def flush(final: bool) -> None:
            while buf and (final or len(buf) >= opts.shard_size):
                chunk, buf[:] = buf[: opts.shard_size], buf[opts.shard_size :]
                name = f"{split}-{len(shard_names):05d}.safetensors"
                mel = np.stack([normalizer.normalize(c[1]) for c in chunk])[:, None].astype(np.float16)
                tensors = {"mel": mel, **{k: np.stack([c[2][k] for c in chunk]) for k in label_names}}
                _atomic_save(tensors, shards_dir / name)
                written.add(name)
                shard_names.append(name)
                for row, (clip_row, _, _) in enumerate(chunk):
                    clip_rows.append({**clip_row, "shard": name, "row": row})

        n_clips, hours = 0, 0.0
        for t in members:
            arrays, meta = load_file(str(_cache_path(work, t.track_id))), metas[t.track_id]
            hours += meta["seconds"] / 3600
            for j, off in enumerate(arrays["offsets"].tolist()):
                row = {"clip_id": f"{t.track_id}@{off}", "split": split, "track_id": t.track_id,
                       "source_file": meta["source_file"], "offset_s": round(off / cfg.sample_rate, 4),
                       "tags": meta["tags"], "tag_ids": vocab.encode(meta["tags"]), "caption": caption(meta["tags"])}
                buf.append((row, arrays["mel"][j], {k: arrays["label_" + k][j] for k in label_names}))
            n_clips += arrays["mel"].shape[0]
            flush(final=False)
            bar.update()
        flush(final=True)
        index["splits"][split] = {"shards": shard_names, "n_clips": n_clips, "n_tracks": len(members),
                                  "hours_audio": round(hours, 4), "hours_clips": round(n_clips * cfg.clip_seconds / 3600, 4)}
    bar.close()
    for stale in shards_dir.glob("*.safetensors"):
        if stale.name not in written:
            stale.unlink()
    _atomic_write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in clip_rows), out / "clips.jsonl")
    _atomic_write_text(json.dumps(index, indent=1, sort_keys=True), out / "index.json")
    _atomic_write_text("file\treason\n" + "".join(f"{s['file']}\t{s['reason']}\n" for s in skipped), out / "skipped.tsv")
    shard_bytes = sum((shards_dir / n).stat().st_size for n in written)
    audio_h = sum(v["hours_audio"] for v in index["splits"].values())
    return {"source": source, "splits": index["splits"], "skipped": skipped, "n_tracks": len(tracks),
            "n_clips": len(clip_rows), "hours_audio": round(audio_h, 4), "shard_bytes": shard_bytes,
            "mb_per_hour_audio": round(shard_bytes / 1e6 / audio_h, 2) if audio_h else None}
