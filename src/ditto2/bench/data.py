"""`make bench-data`: shard-building speed on real music, as a multiple of real time, to a results file."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from ditto2.audio.mel import mel_preset
from ditto2.data.shards import ShardOptions, build_shards
from ditto2.data.sources.debian_music import debian_music_tracks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cache-dir", default="data/cache/debian-music")
    p.add_argument("--packages", nargs="*")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="results/bench-data.json")
    args = p.parse_args(argv)
    tracks, skipped = debian_music_tracks(args.cache_dir, args.packages)  # download/unpack is not timed
    work = Path(tempfile.mkdtemp(prefix="ditto2-bench-data-"))
    try:
        t0 = time.perf_counter()
        summary = build_shards(tracks, work, mel_preset(args.preset), ShardOptions(), workers=args.workers,
                               prior_skipped=skipped, source="debian-music")
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    hours = summary["hours_audio"]
    result = {
        "preset": args.preset, "workers": args.workers, "cpus": os.cpu_count(), "machine": platform.machine(),
        "tracks": summary["n_tracks"], "skipped_files": len(summary["skipped"]),
        "hours_audio": hours, "wall_seconds": round(wall, 1), "x_real_time": round(hours * 3600 / wall, 1),
        "clips": summary["n_clips"], "mb_per_hour_audio": summary["mb_per_hour_audio"],
        "splits": {k: {"tracks": v["n_tracks"], "clips": v["n_clips"], "hours_audio": v["hours_audio"]}
                   for k, v in summary["splits"].items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
