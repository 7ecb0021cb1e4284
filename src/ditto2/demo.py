"""`make demo`: the whole DITTO-2 story on real music. Grows with each stage; today it reports readiness."""
from __future__ import annotations

import argparse
from pathlib import Path

from ditto2.data.datamodule import MelShardDataModule

STAGES = [
    ("teacher (base diffusion model)", "checkpoints/tiny/teacher", "make pretrain"),
    ("CM student", "checkpoints/tiny/cm", "make distill-cm"),
    ("CTM student", "checkpoints/tiny/ctm", "make distill-ctm"),
    ("in-domain CLAP", "checkpoints/tiny/clap", "make clap"),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shards", required=True)
    args = p.parse_args(argv)
    dm = MelShardDataModule(args.shards, preset="tiny")
    print(f"\nshards ready at {args.shards}:")
    for split, s in dm.index["splits"].items():
        print(f"  {split:5s} {s['n_tracks']:3d} tracks {s['n_clips']:5d} clips {s['hours_audio']:.2f} h")
    print("tags:", {k: v[1:] for k, v in dm.vocab.values.items()})
    for what, path, how in STAGES:
        found = Path(path + ".safetensors").exists()
        print(f"  {what:32s} {'ready' if found else 'missing — produce it with `' + how + '`'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
